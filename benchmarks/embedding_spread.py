"""The embedding-collapse statistics at real sizes: what healthy and collapsed runs score.

    python benchmarks/embedding_spread.py [--recipes head_only_tiny head_only_labram_swin]

`embedding_collapse` (peftzoo_tools/doctor/embedding_checks.py) was first tuned on the tiny test encoders
(embed_dim 32). This trains the bundled head_only_labram_swin recipe (LaBraM-Base features of 200
dims, Video Swin-T features of 768, random init, heads to embed_dim 256, synthetic data; CPU) and
head_only_tiny (embed_dim 128), each healthy and with a planted collapse, and prints per side of
the validation embeddings:

- spread: lightly's std_of_l2_normalized x sqrt(d) (healthy ~1, collapsed 0; fact 4),
- mean_cos: mean off-diagonal cosine,
- erank: effective rank (exp of the entropy of the normalized singular values of the centred
  embeddings, Roy & Vetterli 2007; fact 4: collapsed below 2),
- R@1 (validation, eeg->video) of the run.

Runs: `healthy` (as bundled), `untrained` (the healthy run's model before its first step: heads at
their initialization), `constant_video` (every clip the same: video_signal 0, video_noise 0) and
`lr_too_high` (train.lr 0.3: the heads diverge onto one direction). All frozen-encoder runs share
one feature cache, so each encoder embeds the data once.

Output of one run (2 CPU cores shared with three other jobs; 28 min for head_only_labram_swin,
5 min for head_only_tiny), quoted in peftzoo_tools/doctor/embedding_checks.py and docs/benchmarks.md:

    head_only_tiny         healthy         eeg    d= 128 spread=0.974 mean_cos=0.010 erank= 28.22 R@1=0.758
    head_only_tiny         healthy         video  d= 128 spread=0.957 mean_cos=0.026 erank= 25.81 R@1=0.758
    head_only_tiny         untrained       eeg    d= 128 spread=0.450 mean_cos=0.782 erank= 38.99 R@1=nan
    head_only_tiny         untrained       video  d= 128 spread=0.438 mean_cos=0.790 erank= 21.26 R@1=nan
    head_only_tiny         constant_video  eeg    d= 128 spread=0.059 mean_cos=0.996 erank= 36.51 R@1=0.000
    head_only_tiny         constant_video  video  d= 128 spread=0.000 mean_cos=1.000 erank=  1.00 R@1=0.000
    head_only_tiny         lr_too_high     eeg    d= 128 spread=0.167 mean_cos=0.962 erank=  4.24 R@1=0.042
    head_only_tiny         lr_too_high     video  d= 128 spread=0.190 mean_cos=0.954 erank=  6.36 R@1=0.042
    head_only_labram_swin  healthy         eeg    d= 256 spread=0.958 mean_cos=0.035 erank= 38.26 R@1=0.469
    head_only_labram_swin  healthy         video  d= 256 spread=0.921 mean_cos=0.086 erank= 31.89 R@1=0.469
    head_only_labram_swin  untrained       eeg    d= 256 spread=0.287 mean_cos=0.914 erank= 45.64 R@1=nan
    head_only_labram_swin  untrained       video  d= 256 spread=0.417 mean_cos=0.802 erank= 30.12 R@1=nan
    head_only_labram_swin  constant_video  eeg    d= 256 spread=0.032 mean_cos=0.999 erank= 45.79 R@1=0.000
    head_only_labram_swin  constant_video  video  d= 256 spread=0.000 mean_cos=1.000 erank=  1.00 R@1=0.000
    head_only_labram_swin  lr_too_high     eeg    d= 256 spread=0.005 mean_cos=1.000 erank=  4.71 R@1=0.016
    head_only_labram_swin  lr_too_high     video  d= 256 spread=0.320 mean_cos=0.887 erank=  5.23 R@1=0.016
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml
from run_recipe import train_recipe  # benchmarks/ is on sys.path when this file runs as a script

from peftzoo_tools.doctor.embedding_checks import effective_rank, spread
from peftzoo_tools.doctor.run_reader import read_run
from recipes import schema

VARIANTS = {
    "healthy": {},
    "constant_video": {"data.video_signal": 0.0, "data.video_noise": 0.0},
    "lr_too_high": {"train.lr": 0.3},
}


def stats(z: torch.Tensor) -> dict[str, float]:
    ratio, mean_cos = spread(z)
    return {"d": z.shape[1], "spread": ratio, "mean_cos": mean_cos, "erank": effective_rank(z)}


def embeddings(run_dir: Path, trained: bool) -> dict[str, torch.Tensor]:
    """Validation embeddings (all of the split, at most 256) of the run's model, trained or as it started."""
    from peftzoo_tools.doctor import model_probe

    probe, why = model_probe.rebuild(read_run(run_dir))
    if probe is None:
        raise SystemExit(why)
    if not trained:
        model_probe._seed(probe.recipe.seed)
        import registry

        probe.model = model_probe._build(probe.recipe, probe.data, registry.default()).eval()
        probe.model.channels = tuple(probe.data.channels)
    val = probe.data.split("val")
    idx = val[model_probe.sample_indices(len(val), 256)]
    eeg, video = model_probe.embed(probe, idx)
    return {"eeg": eeg, "video": video}


def set_key(recipe: dict, dotted: str, value) -> None:
    node = recipe
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def measure(name: str, tmp: Path) -> list[tuple[str, str, str, dict, float]]:
    rows = []
    for variant, changes in VARIANTS.items():
        recipe = yaml.safe_load(schema.resolve(name).read_text())
        recipe["train"]["cache_dir"] = str(tmp / "cache")
        for key, value in changes.items():
            set_key(recipe, key, value)
        wall, lines, run_dir = train_recipe(recipe, tmp / f"{name}-{variant}")
        r1 = [line["val/eeg_to_video/R@1"] for line in lines if line.get("type") == "eval"][-1]
        print(f"# {name} {variant}: trained in {wall:.0f} s", flush=True)
        for trained in [True, False] if variant == "healthy" else [True]:
            label = variant if trained else "untrained"
            for side, z in embeddings(run_dir, trained).items():
                rows.append((name, label, side, stats(z), r1 if trained else float("nan")))
                s = rows[-1][3]
                print(
                    f"{name:22s} {label:15s} {side:6s} d={s['d']:4d} spread={s['spread']:.3f} "
                    f"mean_cos={s['mean_cos']:.3f} erank={s['erank']:6.2f} R@1={rows[-1][4]:.3f}",
                    flush=True,
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipes",
        nargs="+",
        default=["head_only_tiny", "head_only_labram_swin"],
        help="bundled frozen-encoder recipes to measure (default: both)",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    np.random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipes:
            measure(name, Path(tmp))
    print(f"(1/sqrt(d) at d=256: {1 / math.sqrt(256):.4f})")


if __name__ == "__main__":
    main()
