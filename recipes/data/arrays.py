"""`arrays`: a directory of numpy arrays (design section 6), memory-mapped, never loaded whole.

    eeg.npy     float32 (N, C, T), microvolts
    video.npy   uint8 (N, F, H, W, 3), RGB
    meta.json   {"sfreq": 200, "channels": [...], "fps": 8}
    groups.npy  optional int64 (N,): recording or trial id
    split.npy   optional (N,) strings train / val / test
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from recipes.data.base import DataError, DatasetConfig, PairedData, PairedDataset, group_split, splits_from_labels


class ArraysConfig(DatasetConfig):
    path: str
    """Directory holding eeg.npy, video.npy, meta.json (and optional groups.npy, split.npy)."""


class ArrayPairs(PairedDataset):
    """Paired EEG/video arrays from a directory (eeg.npy, video.npy, meta.json), memory-mapped."""

    description = "Paired EEG/video arrays from a directory (eeg.npy, video.npy, meta.json), memory-mapped"
    Config = ArraysConfig

    @classmethod
    def from_config(cls, config: ArraysConfig, *, seed: int = 0, **context) -> PairedData:
        return load(Path(config.path).expanduser(), config.val_fraction, seed)


def _load_npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path} is missing; an arrays data set needs {what}")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path} could not be read as a plain numpy array ({exc}); save it with np.save") from None


def load(root: Path, val_fraction: float, seed: int) -> PairedData:
    if not root.is_dir():
        raise DataError(f"data.path {str(root)!r} is not a directory; point it at the folder with eeg.npy, video.npy, meta.json")
    eeg = _load_npy(root / "eeg.npy", "eeg.npy, float32 (N, channels, samples) in microvolts")
    video = _load_npy(root / "video.npy", "video.npy, uint8 (N, frames, height, width, 3)")
    if eeg.dtype != np.float32:
        raise DataError(f"{root / 'eeg.npy'} is {eeg.dtype}; save it as float32 (eeg.astype(np.float32))")
    if video.dtype != np.uint8:
        raise DataError(f"{root / 'video.npy'} is {video.dtype}; save it as uint8 RGB frames")
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise DataError(f"{meta_path} is missing; write {{\"sfreq\": 200, \"channels\": [...], \"fps\": 8}}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{meta_path} is not valid JSON: {exc}") from None
    missing = [k for k in ("sfreq", "channels") if k not in meta]
    if missing:
        raise DataError(f"{meta_path} lacks {missing}; it needs sfreq (Hz) and channels (names in EEG row order)")
    n = len(eeg)
    groups = np.arange(n, dtype=np.int64)
    if (root / "groups.npy").is_file():
        groups = np.asarray(_load_npy(root / "groups.npy", "groups.npy"))
        if groups.shape != (n,) or not np.issubdtype(groups.dtype, np.integer):
            raise DataError(f"groups.npy must be integers of shape ({n},), got {groups.dtype} {groups.shape}")
        groups = groups.astype(np.int64)
    if (root / "split.npy").is_file():
        labels = np.asarray(_load_npy(root / "split.npy", "split.npy"))
        if labels.shape != (n,):
            raise DataError(f"split.npy must have shape ({n},), got {labels.shape}")
        splits = splits_from_labels(labels, groups)
    else:
        splits = group_split(groups, val_fraction, seed)
    return PairedData(
        eeg=eeg,
        video=video,
        sfreq=float(meta["sfreq"]),
        channels=[str(c) for c in meta["channels"]],
        fps=float(meta.get("fps", 0.0)),
        groups=groups,
        splits=splits,
        fingerprint=_fingerprint(root),
    )


def _fingerprint(root: Path) -> str:
    """The folder's files by path, size and modification time: changes when any file is rewritten."""
    stats = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.iterdir()) if p.is_file()}
    return hashlib.sha256(json.dumps({"arrays": str(root.resolve()), "files": stats}, sort_keys=True).encode()).hexdigest()
