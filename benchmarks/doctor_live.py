"""Cost of the live doctor (peftzoo_tools.doctor.live) inside training, measured side by side in one process.

    python benchmarks/doctor_live.py [--rounds R] [--epochs E]

1. Per call: `after_step` (every step), `log` of a train line, `log` of an epoch line (the curve
   checks run there) with a run's worth of history, each timed over many calls.
2. Whole runs: the bundled head_only_tiny recipe with the feature cache on (about a millisecond a
   step, so any per-step cost shows) trained with the live doctor and with it replaced by a no-op,
   alternating R rounds; compares samples/s over the training epochs (the epoch lines).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from run_recipe import train_recipe  # benchmarks/ is on sys.path when this file runs as a script

import peftzoo_tools.doctor.live as live
from peftzoo_tools.doctor.live import LiveDoctor
from recipes import schema


class _NullRun:
    def log(self, record) -> None:
        pass


class NoDoctor(LiveDoctor):
    """The trainer's doctor with every check removed: only run.log remains."""

    def after_step(self, step, finite):
        return []

    def observe(self, line):
        return []

    def after_eval(self, *args, **kwargs):
        return []

    def start(self, model, eeg=None):
        return []


def per_call(n: int = 20000) -> dict[str, float]:
    recipe = yaml.safe_load(schema.resolve("head_only_tiny").read_text())
    doctor = LiveDoctor(recipe, total_steps=n, splits={"train": 480})
    run = _NullRun()
    out = {}
    t = time.perf_counter()
    for step in range(1, n + 1):
        doctor.after_step(step, True)
    out["after_step_us"] = 1e6 * (time.perf_counter() - t) / n
    t = time.perf_counter()
    for step in range(1, n + 1):
        doctor.log(
            run,
            {
                "type": "train",
                "epoch": 1 + step // 100,
                "step": step,
                "train/loss": 4.0 - step / n,
                "lr": 1e-3,
                "logit_scale": 14.0,
            },
        )
    out["log_train_line_us"] = 1e6 * (time.perf_counter() - t) / n
    t = time.perf_counter()
    k = 20
    for epoch in range(k):
        doctor.log(
            run,
            {
                "type": "epoch",
                "epoch": epoch,
                "step": n,
                "data_wait_frac": 0.05,
                "samples_per_s": 1e4,
                "skipped_steps": 0,
            },
        )
    out[f"log_epoch_line_ms_with_{n}_train_lines"] = 1e3 * (time.perf_counter() - t) / k
    return out


def whole_runs(rounds: int, epochs: int) -> dict[str, float]:
    recipe = yaml.safe_load(schema.resolve("head_only_tiny").read_text())
    recipe["train"]["epochs"] = epochs
    recipe["train"]["log_every"] = 1
    rates: dict[str, list[float]] = {"with doctor": [], "no-op doctor": []}
    real = live.LiveDoctor  # what the run command's LiveDoctorCallback builds
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            pair = [("with doctor", real), ("no-op doctor", NoDoctor)]
            for name, cls in pair if r % 2 == 0 else pair[::-1]:  # alternate which goes first
                live.LiveDoctor = cls
                try:
                    _, lines, _ = train_recipe(recipe, Path(tmp) / f"{name.replace(' ', '_')}{r}")
                finally:
                    live.LiveDoctor = real
                rates[name] += [line["samples_per_s"] for line in lines if line.get("type") == "epoch"][1:]
    for k, v in rates.items():
        print(f"{k}: samples/s per epoch {[round(x) for x in v]}")
    return {f"{k} samples/s (median)": statistics.median(v) for k, v in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    for key, value in per_call().items():
        print(f"{key:45s} {value:10.3f}", flush=True)
    for key, value in whole_runs(args.rounds, args.epochs).items():
        print(f"{key:45s} {value:10.1f}")


if __name__ == "__main__":
    main()
