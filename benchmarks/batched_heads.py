"""24 head configurations trained as one batched model against one configuration trained alone.

    python benchmarks/batched_heads.py [--recipe head_only_tiny] [--epochs 200] [--rounds 1] [--in-a-row]

Both sides train on the same cached encoder features (the cache is filled first and not timed):
"one" is a run of the recipe as it is (data, model and `peftzoo_engine.train`, as `peftzoo_tools.run` does);
"batched" is `peftzoo_tools.sweep.batched.train_batched` on a 4 x 3 x 2 grid of train.lr x train.weight_decay x
loss.temperature, 24 trials, each writing its own run directory with per-epoch evaluation, as a sweep's trials
would. The rounds alternate in one process so machine noise hits both alike; the ratio batched / one is the figure
of merit (issue 13 asks for at most 3), next to 24 x one, what 24 ordinary runs in a row would cost; `--in-a-row`
also measures that: the 24 configurations trained one after another as ordinary runs (once, after the rounds).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

import registry
from peftzoo_engine import seed_everything, train
from peftzoo_engine.rundir import RunDir
from peftzoo_tools.sweep.batched import train_batched
from recipes import overrides, schema
from recipes.compose import compose

GRID = {"train.lr": [5e-4, 1e-3, 2e-3, 4e-3], "train.weight_decay": [0.0, 0.05, 0.2], "loss.temperature": [0.05, 0.1]}


def _recipe(name: str, epochs: int, cache: Path, reg, **changes):
    raw = schema.read_yaml(schema.resolve(name))
    args = [f"train.epochs={epochs}", f"train.cache_dir={cache}", "train.device=cpu"]
    args += [
        f"{k}={v}" if k != "loss.temperature" else f"loss={{name: clip, temperature: {v}}}" for k, v in changes.items()
    ]
    return schema.validate(overrides.apply(raw, args), reg)


def _one(recipe, reg, out: Path) -> float:
    start = time.perf_counter()  # as train_batched's time: data, model, training
    seed_everything(recipe.seed)
    data = reg.build("datasets", recipe.data, seed=recipe.seed)
    model = compose(recipe, data, reg)
    train(recipe, model, data, RunDir(out, recipe.name), torch.device("cpu"), reg)
    return time.perf_counter() - start


def _batched(trials, reg, out: Path) -> float:
    start = time.perf_counter()
    train_batched(trials, [out / f"trial-{i:03d}" for i in range(len(trials))], reg)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="head_only_tiny")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--in-a-row", action="store_true", help="also time the 24 configurations as ordinary runs, one after another"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    reg = registry.default()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cache = root / "cache"
        _one(_recipe(args.recipe, 1, cache, reg), reg, root / "warm")  # fills the feature cache, untimed
        one_recipe = _recipe(args.recipe, args.epochs, cache, reg)
        trials = [
            _recipe(args.recipe, args.epochs, cache, reg, **dict(zip(GRID, values)))
            for values in itertools.product(*GRID.values())
        ]
        ones, batches = [], []
        for r in range(args.rounds):
            ones.append(_one(one_recipe, reg, root / f"one-{r}"))
            batches.append(_batched(trials, reg, root / f"batched-{r}"))
        in_a_row = sum(_one(t, reg, root / f"row-{i:03d}") for i, t in enumerate(trials)) if args.in_a_row else None
    one, batched = statistics.median(ones), statistics.median(batches)
    print(
        f"recipe {args.recipe}, {args.epochs} epochs, cached features, {torch.get_num_threads()} threads, "
        f"{args.rounds} round(s), median wall time (1-min load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores at the end):"
    )
    print(f"  one configuration (peftzoo_engine.train):        {one:8.1f} s")
    print(f"  {len(trials)} configurations batched (train_batched):    {batched:8.1f} s   = {batched / one:.2f} x one")
    print(f"  {len(trials)} ordinary runs in a row (24 x one, estimate): {len(trials) * one:8.1f} s")
    if in_a_row is not None:
        print(
            f"  {len(trials)} ordinary runs in a row (measured):        {in_a_row:8.1f} s"
            f"   = {in_a_row / batched:.2f} x batched"
        )


if __name__ == "__main__":
    main()
