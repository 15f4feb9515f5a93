"""The comparison table: the recipe keys that differ between runs, then final and best metrics."""

from __future__ import annotations

import json
from typing import Any

from peftzoo_tools.compare.runs import Run

DEFAULT_METRICS = ("val/eeg_to_video/R@1", "val/video_to_eeg/R@1", "val/loss")
IGNORED_KEYS = ("train.cache_dir", "train.num_workers", "train.log_every", "train.loggers", "train.device")
"""Keys that do not change what a run learns (where files go, how they are loaded and logged)."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def differing_keys(runs: list[Run]) -> list[str]:
    flat = [flatten(r.recipe) for r in runs]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    if len(runs) < 2:
        return []
    return [
        k
        for k in keys
        if k not in IGNORED_KEYS
        and len({json.dumps(f.get(k, "<absent>"), sort_keys=True, default=str) for f in flat}) > 1
    ]


def lower_is_better(metric: str) -> bool:
    return "loss" in metric or "rank" in metric


def best(run: Run, metric: str) -> tuple[float, int] | None:
    """(best value over eval epochs, its epoch) in the metric's direction."""
    points = [(e[metric], e.get("epoch")) for e in run.evals() if isinstance(e.get(metric), (int, float))]
    if not points:
        return None
    return (min if lower_is_better(metric) else max)(points, key=lambda p: p[0])


def rows(runs: list[Run], metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (strings), best first by the first metric's best value."""
    keys = differing_keys(runs)
    flat = [flatten(r.recipe) for r in runs]
    header = ["run", *keys, "status"]
    for m in metrics:
        header += [f"final {m}", f"best {m}"]
    first = metrics[0] if metrics else None

    def order(item):
        b = best(item[0], first) if first else None
        if b is None:
            return (1, 0.0)
        return (0, b[0] if lower_is_better(first) else -b[0])

    out = []
    for run, f in sorted(zip(runs, flat), key=order):
        row = [run.name, *(_fmt(f.get(k, "")) for k in keys), str(run.info.get("status", "?"))]
        for m in metrics:
            final = run.final().get(m)
            b = best(run, m)
            row += [_fmt(final) if final is not None else "-", f"{b[0]:.4f} (ep {b[1]})" if b else "-"]
        out.append(row)
    return header, out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def text(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
    return "\n".join(lines)
