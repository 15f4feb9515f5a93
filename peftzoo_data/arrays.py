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
import math
from pathlib import Path

import numpy as np

from peftzoo_data.base import DataError, DatasetConfig, PairedData, PairedDataset, group_split, splits_from_labels


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

    @classmethod
    def conformance_example(cls, directory: Path, n: int = 12) -> dict:
        """The conformance kit's hook (docs/plugins.md): a small arrays directory in `directory`, and the
        options that read it. Pairs of one group come in twos, so the group-aware split is exercised."""
        rng = np.random.default_rng(0)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "eeg.npy", (rng.standard_normal((n, 4, 200)) * 20).astype(np.float32))  # microvolts
        np.save(directory / "video.npy", rng.integers(0, 256, (n, 2, 8, 8, 3), dtype=np.uint8))
        np.save(directory / "groups.npy", np.repeat(np.arange(n // 2), 2).astype(np.int64))
        (directory / "meta.json").write_text(json.dumps({"sfreq": 200, "channels": ["Fp1", "Fp2", "Cz", "Oz"], "fps": 8}))
        return {"path": str(directory), "val_fraction": 0.25}


NPY_MAGIC = b"\x93NUMPY"


def _load_npy(path: Path, what: str) -> np.ndarray:
    """A memory-mapped .npy array, or one message saying what the file is instead."""
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a file; an arrays data set needs {what} there")
    if not path.is_file():
        raise DataError(f"{path} is missing; an arrays data set needs {what}")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path} is empty (0 bytes): the save or copy did not finish; write it again with np.save")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head.startswith(NPY_MAGIC):
        kind = "a text file" if _looks_like_text(head) else ("a pickle" if head[:1] == b"\x80" else "not a .npy file")
        raise DataError(
            f"{path} is {kind} (it starts {head[:24]!r}), not a numpy .npy array; save the array with np.save (not np.savetxt, pickle or torch.save)"
        )
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "pickled" in str(exc) or "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise DataError(f"{path} holds Python objects (an object array), not numbers; save a numeric array with np.save") from None
        raise DataError(f"{path} is truncated or damaged ({exc}); write it again with np.save") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is truncated or damaged ({exc}); write it again with np.save") from None


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c.isspace() for c in text)


def _read_meta(path: Path, n_channels: int) -> tuple[float, list[str], float]:
    """(sfreq, channels, fps) from meta.json, each checked: one message per fault, naming the key and the fix."""
    example = '{"sfreq": 200, "channels": ["Fp1", ...], "fps": 8}'
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a file; write {example}")
    if not path.is_file():
        raise DataError(f"{path} is missing; write {example}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path} holds a {type(meta).__name__} ({meta!r:.40}), not an object; write {example}")
    missing = [k for k in ("sfreq", "channels") if k not in meta]
    if missing:
        raise DataError(f"{path} lacks {missing}; it needs sfreq (Hz) and channels (names in EEG row order)")

    def positive_number(key: str) -> float:
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise DataError(f"{path}: {key} must be a positive number (e.g. {key}: {200 if key == 'sfreq' else 8}), got {value!r}")
        return float(value)

    channels = meta["channels"]
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise DataError(f"{path}: channels must be a list of channel names (strings) in EEG row order, got {channels!r:.80}")
    if len(channels) != n_channels:
        raise DataError(f"{path}: channels names {len(channels)} channels but eeg.npy has {n_channels} rows per pair; give one name per row")
    fps = positive_number("fps") if "fps" in meta else 0.0
    return positive_number("sfreq"), list(channels), fps


def load(root: Path, val_fraction: float, seed: int) -> PairedData:
    if not root.is_dir():
        raise DataError(f"data.path {str(root)!r} is not a directory; point it at the folder with eeg.npy, video.npy, meta.json")
    eeg = _load_npy(root / "eeg.npy", "eeg.npy, float32 (N, channels, samples) in microvolts")
    video = _load_npy(root / "video.npy", "video.npy, uint8 (N, frames, height, width, 3)")
    if eeg.dtype != np.float32:
        raise DataError(f"{root / 'eeg.npy'} is {eeg.dtype}; save it as float32 (eeg.astype(np.float32))")
    if video.dtype != np.uint8:
        raise DataError(f"{root / 'video.npy'} is {video.dtype}; save it as uint8 RGB frames")
    if eeg.ndim != 3:
        raise DataError(f"{root / 'eeg.npy'} has shape {eeg.shape}; it must be (pairs, channels, samples)")
    n = len(eeg)
    if n == 0:
        raise DataError(f"{root / 'eeg.npy'} holds 0 pairs (shape {eeg.shape}); write the paired windows into it")
    sfreq, channels, fps = _read_meta(root / "meta.json", eeg.shape[1])
    groups = np.arange(n, dtype=np.int64)
    if (root / "groups.npy").exists():
        groups = np.asarray(_load_npy(root / "groups.npy", "groups.npy"))
        if groups.shape != (n,) or not np.issubdtype(groups.dtype, np.integer):
            raise DataError(f"groups.npy must be integers of shape ({n},), got {groups.dtype} {groups.shape}")
        groups = groups.astype(np.int64)
    if (root / "split.npy").exists():
        labels = np.asarray(_load_npy(root / "split.npy", "split.npy"))
        if labels.shape != (n,):
            raise DataError(f"split.npy must have shape ({n},), got {labels.shape}")
        splits = splits_from_labels(labels, groups)
    else:
        splits = group_split(groups, val_fraction, seed)
    return PairedData(
        eeg=eeg,
        video=video,
        sfreq=sfreq,
        channels=channels,
        fps=fps,
        groups=groups,
        splits=splits,
        fingerprint=_fingerprint(root),
    )


def _fingerprint(root: Path) -> str:
    """The folder's files by path, size and modification time: changes when any file is rewritten."""
    stats = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.iterdir()) if p.is_file()}
    return hashlib.sha256(json.dumps({"arrays": str(root.resolve()), "files": stats}, sort_keys=True).encode()).hexdigest()
