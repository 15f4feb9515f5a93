"""Benchmark (d): the bundled lora_qv recipe on a GPU in bf16, its samples/s and data_wait_frac.

    python benchmarks/gpu_lora_qv.py [--pairs N] [--epochs E] [--device cuda] [--precision bf16]

Writes an `arrays` data set (memory-mapped .npy, the layout of benchmarks/data_wait.py) of N pairs,
then trains lora_qv.yaml on it with its own hyper-parameters and the schema's loader defaults:
labram_base with LoRA on q and v, swin3d_t frozen (its features cached once, at 16 x 112^2 here).
Per-epoch samples/s and data_wait_frac come from the run's metrics.jsonl; the target is a
data_wait_frac of 5% at most. Without a GPU it says so and exits with status 1 (`--device cpu`
runs the same measurement on the CPU, e.g. to check the script).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch
from data_wait import write_arrays  # benchmarks/ is on sys.path when this file runs as a script

from peftzoo_tools.run import main as run_main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: benchmark (d) needs a GPU (or pass --device cpu)", file=sys.stderr)
        return 1
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pairs"
        write_arrays(data, args.pairs)
        overrides = [
            "data={name: arrays, val_fraction: 0.1, path: " + str(data) + "}",
            "video.encoder={name: swin3d_t, checkpoint: null, frames: 16, size: 112, resize: 128}",
            f"train.epochs={args.epochs}",
            f"train.device={args.device}",
            f"train.precision={args.precision}",
        ]
        start = time.perf_counter()
        if run_main(["lora_qv.yaml", *overrides, "--output-dir", str(Path(tmp) / "runs"), "--quiet"]) != 0:
            return 1
        wall = time.perf_counter() - start
        run_dir = next(p for p in (Path(tmp) / "runs").iterdir() if not p.name.startswith("."))
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    device = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"lora_qv, arrays of {args.pairs} pairs, {args.precision}, {device}")
    print("| epoch | samples/s | data_wait_frac |")
    print("|---|---|---|")
    for r in (r for r in lines if r["type"] == "epoch"):
        print(f"| {r['epoch']} | {r['samples_per_s']:.1f} | {r['data_wait_frac']:.3f} |")
    final = [r for r in lines if r["type"] == "eval"][-1]
    print(
        f"whole run incl. caching the video features and evaluation: {wall:.1f} s; "
        f"val R@1 eeg->video {final['val/eeg_to_video/R@1']:.3f} (chance {final['val/chance_R@1']:.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
