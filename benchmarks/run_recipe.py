"""What the benchmarks share: train a recipe given as a dict through the CLI, and read its metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

from peftzoo_tools.run import main as run_main

# The 23 channels of the TUH abnormal corpus, a common LaBraM fine-tuning montage.
TUAB = [
    "FP1",
    "FP2",
    "F3",
    "F4",
    "C3",
    "C4",
    "P3",
    "P4",
    "O1",
    "O2",
    "F7",
    "F8",
    "T3",
    "T4",
    "T5",
    "T6",
    "A1",
    "A2",
    "FZ",
    "CZ",
    "PZ",
    "T1",
    "T2",
]


def train_recipe(recipe: dict, out: Path) -> tuple[float, list[dict], Path]:
    """(wall seconds, metrics.jsonl lines, run directory) of `python -m recipes.run` on `recipe` under `out`."""
    out.mkdir(parents=True)
    path = out / "recipe.yaml"
    path.write_text(json.dumps(recipe))  # JSON is YAML
    start = time.perf_counter()
    if run_main([str(path), "--output-dir", str(out / "runs"), "--quiet"]) != 0:
        raise SystemExit(f"the benchmark's recipe failed to train (see above); recipe: {path}")
    wall = time.perf_counter() - start
    run_dir = next(p for p in (out / "runs").iterdir() if not p.name.startswith("."))
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return wall, lines, run_dir
