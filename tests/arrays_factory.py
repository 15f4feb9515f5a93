"""Small `arrays` data directories for tests, written the way users write them (np.save, json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CHANNELS = ["FP1", "FP2", "C3", "C4", "O1", "O2"]


def write_arrays(
    root: Path,
    n: int = 16,
    *,
    channels: list[str] | None = None,
    sfreq: float = 200.0,
    seconds: float = 1.0,
    frames: int = 4,
    size: int = 20,
    amplitude_uv: float = 20.0,
    meta: Any = None,
    split: list[str] | None = None,
    groups: np.ndarray | None = None,
    seed: int = 0,
) -> Path:
    """eeg.npy (N, C, T) float32 of about `amplitude_uv` microvolts, video.npy (N, F, size, size, 3) uint8,
    meta.json."""
    rng = np.random.default_rng(seed)
    channels = list(CHANNELS if channels is None else channels)
    root.mkdir(parents=True, exist_ok=True)
    eeg = (rng.standard_normal((n, len(channels), int(sfreq * seconds))) * amplitude_uv).astype(np.float32)
    np.save(root / "eeg.npy", eeg)
    np.save(root / "video.npy", rng.integers(0, 256, (n, frames, size, size, 3), dtype=np.uint8))
    text = json.dumps({"sfreq": sfreq, "channels": channels, "fps": 8} if meta is None else meta)
    (root / "meta.json").write_text(text)
    if split is not None:
        np.save(root / "split.npy", np.asarray(split))
    if groups is not None:
        np.save(root / "groups.npy", np.asarray(groups, dtype=np.int64))
    return root
