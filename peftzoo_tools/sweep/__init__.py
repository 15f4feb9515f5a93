"""Sweeps: many trials of one recipe, each an ordinary run directory inside one sweep directory.

`python -m recipes.sweep` (peftzoo_tools.sweep.cli). Modules: space (axes, grid, random draws), plan (the
trials, validated up front), record (sweep.json), trials (one trial's command and result), prepass
(shared frozen features), local / ray_backend (where trials run), summary (the table).
"""
