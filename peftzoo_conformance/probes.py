"""Small inputs and small builds for the checks: what to build each component with, and what to feed it.

A component says how the kit should build it with class attributes (all optional):
- `conformance_options: dict` — options for a small, fast build (an encoder's architecture overrides,
  a data set's size); the kit also checks the defaults validate;
- `conformance_example(directory) -> dict` (datasets whose options have required keys, e.g. a
  path): writes a small example into `directory` and returns the options that read it;
- `conformance_encoders: list[dict]` (strategies) — encoder specs to check the strategy on, in
  order; the first the strategy accepts is used. Default: a small `tiny_eeg`, then a small
  `video_swin` for strategies that refuse EEG encoders.
Built-ins that predate these attributes get theirs from BUILTIN_OPTIONS below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

SMALL_TINY_EEG = {"name": "tiny_eeg", "dim": 16, "depth": 1, "heads": 2, "max_patches": 4}
SMALL_VIDEO_SWIN = {
    "name": "video_swin", "embed_dim": 8, "depths": [1, 1], "num_heads": [1, 2], "window_size": [2, 4, 4],
    "frames": 4, "size": 32, "drop_path": 0.0,
}
DEFAULT_STRATEGY_ENCODERS = [SMALL_TINY_EEG, SMALL_VIDEO_SWIN]

_LABRAM = {"depth": 1, "embed_dim": 100, "num_heads": 2, "conv_channels": 4, "drop_path": 0.0}
_SWIN = {k: v for k, v in SMALL_VIDEO_SWIN.items() if k != "name"}
BUILTIN_OPTIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("encoders", "tiny_eeg"): {k: v for k, v in SMALL_TINY_EEG.items() if k != "name"},
    ("encoders", "tiny_video"): {"dim": 16, "depth": 1, "heads": 2, "frames": 4, "size": 16},
    ("encoders", "labram_base"): _LABRAM,
    ("encoders", "labram_large"): _LABRAM,
    ("encoders", "labram_huge"): _LABRAM,
    ("encoders", "video_swin"): _SWIN,
    ("encoders", "swin3d_t"): _SWIN,
    ("encoders", "swin3d_s"): _SWIN,
    ("encoders", "swin3d_b"): _SWIN,
    ("datasets", "synthetic"): {"n": 24, "seconds": 1, "frames": 2, "height": 8, "width": 8},
    ("strategies", "last_k"): {"k": 1},
}

EEG_CHANNELS = ["Fp1", "Fp2", "C3", "Cz", "O1", "Oz"]


def small_options(kind: str, name: str, component: Any) -> dict[str, Any]:
    """The options the kit builds `name` with: the component's own, else the built-in table, else {}."""
    own = getattr(component, "conformance_options", None)
    if isinstance(own, dict):
        return dict(own)
    return dict(BUILTIN_OPTIONS.get((kind, name), {}))


def dataset_options(name: str, component: Any, directory: Path) -> dict[str, Any] | None:
    """Options that build a small instance of dataset `name`, or None when the kit cannot make one."""
    example = getattr(component, "conformance_example", None)
    if callable(example):
        return dict(example(directory))
    if name in BUILTIN_EXAMPLES:
        return BUILTIN_EXAMPLES[name](directory)
    options = small_options("datasets", name, component)
    required = [f for f, info in component.Config.model_fields.items() if info.is_required() and f not in options]
    return None if required else options


def write_arrays_example(directory: Path, n: int = 12) -> dict[str, Any]:
    """A small `arrays` directory (docs/design.md section 6) and the options that read it."""
    import json

    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "eeg.npy", (rng.standard_normal((n, 4, 200)) * 20).astype(np.float32))
    np.save(directory / "video.npy", rng.integers(0, 256, (n, 2, 8, 8, 3), dtype=np.uint8))
    np.save(directory / "groups.npy", np.repeat(np.arange(n // 2), 2).astype(np.int64))
    (directory / "meta.json").write_text(json.dumps({"sfreq": 200, "channels": ["Fp1", "Fp2", "Cz", "Oz"], "fps": 8}))
    return {"path": str(directory), "val_fraction": 0.25}


BUILTIN_EXAMPLES = {"arrays": write_arrays_example}


def eeg_samples(spec: Any) -> int:
    """A window length the EEG input spec accepts: two patches, else two seconds."""
    patch = getattr(spec, "patch_samples", None)
    return int(2 * patch) if patch else int(round(2 * float(spec.sfreq)))


def example_call(encoder: Any, batch: int = 2, seed: int = 1) -> tuple[tuple, dict]:
    """(args, kwargs) of a valid forward call of `encoder`, following its modality and input spec."""
    g = torch.Generator().manual_seed(seed)
    spec = encoder.input_spec
    if encoder.modality == "eeg":
        x = torch.randn(batch, len(EEG_CHANNELS), eeg_samples(spec), generator=g) * 20  # microvolts
        return (x,), {"channels": list(EEG_CHANNELS)}
    frames = torch.randint(0, 256, (batch, spec.frames, spec.size, spec.size, 3), generator=g, dtype=torch.uint8)
    return (encoder.preprocess(frames),), {}


def run(encoder: Any, call: tuple[tuple, dict]) -> torch.Tensor:
    args, kwargs = call
    return encoder(*args, **kwargs)
