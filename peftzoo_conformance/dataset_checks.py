"""Dataset checks: the arrays have the documented shapes, dtypes and units (docs/reference/arrays.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import registry
from peftzoo_conformance import probes
from peftzoo_conformance.errors import ConformanceError, named_check, require

KIND = "datasets"
# Scalp EEG in microvolts has a standard deviation of a few to a few hundred; volts give ~1e-5.
EEG_STD_MICROVOLTS = (0.05, 5000.0)


def build_small(name: str, directory: Path):
    component = registry.get(KIND, name)
    options = probes.dataset_options(name, component, directory)
    if options is None:
        return None
    return registry.build(KIND, {"name": name, **options}, seed=0)


@named_check("dataset_arrays", KIND)
def check_arrays(name: str, directory: Path) -> bool:
    """False when the kit cannot build a small instance (required options and no conformance_example)."""
    data = build_small(name, directory)
    if data is None:
        return False

    def need(ok: bool, message: str) -> None:
        require(ok, "dataset_arrays", KIND, name, message)

    for attr in ("eeg", "video", "sfreq", "channels", "fps", "groups", "splits"):
        need(hasattr(data, attr), f"from_config must return peftzoo_data.base.PairedData; `{attr}` is missing")
    n = len(data.eeg)
    need(n > 0, "no pairs")
    need(
        data.eeg.ndim == 3 and data.eeg.dtype == np.float32,
        f"eeg must be float32 (N, C, T), got {data.eeg.dtype} {data.eeg.shape}",
    )
    need(
        data.video.ndim == 5 and data.video.shape[-1] == 3 and data.video.dtype == np.uint8,
        f"video must be uint8 (N, F, H, W, 3) RGB, got {data.video.dtype} {data.video.shape}",
    )
    need(len(data.video) == n, f"{n} EEG windows but {len(data.video)} videos")
    need(
        isinstance(data.channels, list)
        and all(isinstance(c, str) for c in data.channels)
        and len(data.channels) == data.eeg.shape[1],
        f"channels must be {data.eeg.shape[1]} names (str), got {data.channels!r}",
    )
    need(float(data.sfreq) > 0 and float(data.fps) > 0, f"sfreq ({data.sfreq}) and fps ({data.fps}) must be positive")
    groups = np.asarray(data.groups)
    need(
        groups.shape == (n,) and groups.dtype == np.int64,
        f"groups must be int64 (N,), got {groups.dtype} {groups.shape}",
    )
    std = float(np.asarray(data.eeg[: min(n, 64)], dtype=np.float64).std())
    low, high = EEG_STD_MICROVOLTS
    need(
        low <= std <= high,
        f"EEG standard deviation is {std:.3g}; EEG must be in microvolts (std {low:g} to {high:g}); "
        f"{'volts? multiply by 1e6' if std < low else 'scale it to microvolts'}",
    )
    seen: dict[int, str] = {}
    for split, idx in data.splits.items():
        idx = np.asarray(idx)
        need(split in ("train", "val", "test"), f"split {split!r} is not one of train/val/test")
        need(
            idx.dtype.kind == "i"
            and bool((np.diff(idx) > 0).all())
            and (len(idx) == 0 or (idx[0] >= 0 and idx[-1] < n)),
            f"split {split!r} must hold sorted, unique indices in [0, {n})",
        )
        for g in np.unique(groups[idx]):
            if seen.setdefault(int(g), split) != split:
                raise ConformanceError(
                    "dataset_arrays", KIND, name, f"group {int(g)} is in both {seen[int(g)]!r} and {split!r}"
                )
    need(len(data.splits.get("train", [])) > 0, "the train split is empty")
    return True
