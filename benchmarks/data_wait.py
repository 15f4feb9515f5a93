"""data_wait_frac and samples/s on an `arrays` data set with default train settings, video encoder training.

    python benchmarks/data_wait.py [--pairs N] [--epochs E] [--num-workers W]

Writes an arrays data set (memory-mapped .npy: EEG 23 channels x 4 s at 200 Hz, video 16 frames of
128x160 uint8) to a temporary directory and trains labram_base (head_only, features cached) with
swin3d_t's last block (last_k, k=1) at 8 x 32^2 (resize 36), a size that trains in minutes on a
2-core CPU, twice in this process: with full frames, resized and cropped on the training device
every step (peftzoo_engine.video_cache.prepare replaced by the identity), and with the clips cached once at
the input size. Everything else is the schema's defaults (batch 64, num_workers 0 unless
--num-workers). Per-epoch numbers come from each run's metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from run_recipe import TUAB, train_recipe  # benchmarks/ is on sys.path when this file runs as a script

from peftzoo_engine import video_cache
from recipes import schema

FRAMES, HEIGHT, WIDTH, SECONDS, SFREQ, PAIRS_PER_RECORDING = 16, 128, 160, 4, 200, 8
VIDEO_ENCODER = {"name": "swin3d_t", "frames": 8, "size": 32, "resize": 36}


def write_arrays(root: Path, pairs: int) -> None:
    """Random EEG (microvolts) and video frames in the arrays layout, written chunk by chunk."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(root / "eeg.npy", (rng.standard_normal((pairs, len(TUAB), SECONDS * SFREQ)) * 20).astype(np.float32))
    video = np.lib.format.open_memmap(
        root / "video.npy", mode="w+", dtype=np.uint8, shape=(pairs, FRAMES, HEIGHT, WIDTH, 3)
    )
    for start in range(0, pairs, 64):
        video[start : start + 64] = rng.integers(0, 256, video[start : start + 64].shape, dtype=np.uint8)
    video.flush()
    del video
    np.save(root / "groups.npy", np.arange(pairs, dtype=np.int64) // PAIRS_PER_RECORDING)
    (root / "meta.json").write_text(json.dumps({"sfreq": SFREQ, "channels": TUAB, "fps": 8}))


def run(recipe: dict, out: Path) -> dict:
    wall, lines, _ = train_recipe(recipe, out)
    return {
        "wall_s": wall,
        "epochs": [r for r in lines if r["type"] == "epoch"],
        "clips_cached": any((out / "runs" / ".cache").rglob("video-clips-*.npy")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=None, help="train.num_workers (default: the schema's)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    train = {"epochs": args.epochs}
    if args.num_workers is not None:
        train["num_workers"] = args.num_workers
    defaults = schema.TrainConfig(**train)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pairs"
        write_arrays(data, args.pairs)
        recipe = {
            "name": "data_wait_bench",
            "data": {"name": "arrays", "path": str(data), "val_fraction": 0.2},
            "eeg": {"encoder": "labram_base", "strategy": "head_only", "head": {"name": "mlp", "hidden": [512]}},
            "video": {"encoder": VIDEO_ENCODER, "strategy": {"name": "last_k", "k": 1}, "head": "linear"},
            "train": train,
            "eval": {"every_epochs": args.epochs},
        }
        with mock.patch.object(video_cache, "prepare", lambda encoder, paired, *rest, **options: paired):
            full = run(recipe, Path(tmp) / "full")
        cached = run(recipe, Path(tmp) / "cached")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"arrays, {args.pairs} pairs: EEG {len(TUAB)} ch x {SECONDS} s at {SFREQ} Hz, "
        f"video {FRAMES} x {HEIGHT}x{WIDTH} uint8; "
        f"labram_base head_only + swin3d_t last_k k=1 at {VIDEO_ENCODER['frames']} x {VIDEO_ENCODER['size']}^2; "
        f"batch {defaults.batch_size}, "
        f"num_workers {defaults.num_workers}, {device}"
    )
    print(
        "| epoch | data_wait_frac, full frames | data_wait_frac, cached clips "
        "| samples/s, full frames | samples/s, cached clips |"
    )
    print("|---|---|---|---|---|")
    for a, b in zip(full["epochs"], cached["epochs"]):
        print(
            f"| {a['epoch']} | {a['data_wait_frac']:.3f} | {b['data_wait_frac']:.3f} "
            f"| {a['samples_per_s']:.1f} | {b['samples_per_s']:.1f} |"
        )
    print(
        f"whole run incl. evaluation (s): full frames {full['wall_s']:.1f}, "
        f"cached clips {cached['wall_s']:.1f} (includes caching them once)"
    )
    if not cached["clips_cached"]:
        print("warning: the cached-clips run wrote no video clips: train.py does not call video_cache.prepare")
    if full["clips_cached"]:
        print("warning: the full-frames run cached clips: train.py calls prepare other than as video_cache.prepare")


if __name__ == "__main__":
    main()
