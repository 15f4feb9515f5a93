"""Head-only epoch time on labram_base + swin3d_t with and without the frozen-feature cache.

    python benchmarks/feature_cache.py [--pairs N] [--epochs E]

Both runs train the same head_only recipe on synthetic pairs at the encoders' default input sizes
(EEG: 23 channels x 10 s at 200 Hz; video: 16 frames, resized to 256 and cropped to 224), one after
the other in this process. Epoch time is each run's mean step time per epoch from metrics.jsonl
(`samples_per_s`), so the cached run's one-off feature computation is reported apart.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from run_recipe import TUAB, train_recipe  # benchmarks/ is on sys.path when this file runs as a script


def run(recipe: dict, out: Path) -> dict:
    wall, lines, _ = train_recipe(recipe, out)
    epochs = [r for r in lines if r["type"] == "epoch"]
    return {
        "wall_s": wall,
        "samples_per_s": sum(r["samples_per_s"] for r in epochs) / len(epochs),
        "epochs": len(epochs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    recipe = {
        "name": "cache_bench",
        "data": {
            "name": "synthetic",
            "n": args.pairs,
            "channels": TUAB,
            "seconds": 10,
            "frames": 16,
            "height": 256,
            "width": 256,
            "val_fraction": 0.2,
        },
        "eeg": {"encoder": "labram_base", "strategy": "head_only", "head": {"name": "mlp", "hidden": [512]}},
        "video": {"encoder": "swin3d_t", "strategy": "head_only", "head": "linear"},
        "train": {"epochs": args.epochs, "batch_size": 8, "lr": 1e-3},
        "eval": {"every_epochs": args.epochs},
    }
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for cached in (False, True):
            results[cached] = run(
                {**recipe, "train": {**recipe["train"], "feature_cache": cached}}, Path(tmp) / str(cached)
            )
    n_train = int(args.pairs * 0.8)
    epoch = {k: n_train / v["samples_per_s"] for k, v in results.items()}
    print(f"head_only, labram_base (23 ch x 10 s) + swin3d_t (16 x 224^2), {n_train} training pairs, batch 8, CPU")
    print("| feature cache | epoch time (s) | samples/s | whole run incl. evaluation and caching (s) |")
    print("|---|---|---|---|")
    for cached in (False, True):
        r = results[cached]
        print(f"| {'on' if cached else 'off'} | {epoch[cached]:.3f} | {r['samples_per_s']:.1f} | {r['wall_s']:.1f} |")
    print(f"epoch speedup with the cache: {epoch[False] / epoch[True]:.0f}x")


if __name__ == "__main__":
    main()
