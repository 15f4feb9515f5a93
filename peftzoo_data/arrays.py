"""`arrays`: a directory of numpy arrays (docs/reference/arrays.md), memory-mapped, never loaded whole.

    eeg.npy     float32 (N, C, T), microvolts
    video.npy   uint8 (N, F, H, W, 3), RGB
    meta.json   {"sfreq": 200, "channels": [...], "fps": 8}, optional "stimuli": [names by stimulus id]
    stimulus.npy optional int64 (N,): stimulus id; pairs sharing one are never each other's negatives
    groups.npy  optional int64 (N,): the leakage unit (recording, subject, session, block); a split never cuts it
    split.npy   optional (N,) strings train / val / test

Without stimulus.npy an old groups.npy means both (a recording or trial id, as it always did) and
the log says so; without either, every pair is its own group and stimulus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np

from peftzoo_data.base import DataError, DatasetConfig, PairedData, PairedDataset, group_split, splits_from_labels

logger = logging.getLogger(__name__)


class ArraysConfig(DatasetConfig):
    path: str
    """Directory holding eeg.npy, video.npy, meta.json (and optional stimulus.npy, groups.npy, split.npy)."""


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
        (directory / "meta.json").write_text(
            json.dumps({"sfreq": 200, "channels": ["Fp1", "Fp2", "Cz", "Oz"], "fps": 8})
        )
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
            f"{path} is {kind} (it starts {head[:24]!r}), not a numpy .npy array; save the array with np.save (not "
            f"np.savetxt, pickle or torch.save)"
        )
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "pickled" in str(exc) or "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise DataError(
                f"{path} holds Python objects (an object array), not numbers; save a numeric array with np.save"
            ) from None
        raise DataError(f"{path} is truncated or damaged ({exc}); write it again with np.save") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is truncated or damaged ({exc}); write it again with np.save") from None


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c.isspace() for c in text)


def _read_meta(path: Path, n_channels: int) -> tuple[float, list[str], float, dict]:
    """(sfreq, channels, fps, meta) from meta.json, each checked: one message per fault, naming the key and the fix."""
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
            raise DataError(
                f"{path}: {key} must be a positive number (e.g. {key}: {200 if key == 'sfreq' else 8}), got {value!r}"
            )
        return float(value)

    channels = meta["channels"]
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise DataError(
            f"{path}: channels must be a list of channel names (strings) in EEG row order, got {channels!r:.80}"
        )
    if len(channels) != n_channels:
        raise DataError(
            f"{path}: channels names {len(channels)} channels but eeg.npy has {n_channels} rows per pair; give one "
            f"name per row"
        )
    fps = positive_number("fps") if "fps" in meta else 0.0
    return positive_number("sfreq"), list(channels), fps, meta


def _ids(root: Path, name: str, n: int) -> np.ndarray:
    """An optional (N,) integer id file, as int64."""
    ids = np.asarray(_load_npy(root / name, name))
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"{name} must be integers of shape ({n},), got {ids.dtype} {ids.shape}")
    return ids.astype(np.int64)


def _names(meta: dict, key: str, ids: np.ndarray, path: Path, strict: bool = True) -> list[str] | None:
    """meta[key] (names indexed by id) checked to name every id, or None when absent. Not `strict`
    (group_names, which older folders hold unchecked): names that do not fit are left out, not an error."""
    names = meta.get(key)
    if names is None:
        return None
    fits = isinstance(names, list) and all(isinstance(x, str) for x in names)
    covers = fits and (not len(ids) or (ids.min() >= 0 and ids.max() < len(names)))
    if not strict and not covers:
        return None
    if not fits:
        raise DataError(f"{path}: {key} must be a list of names (strings) indexed by id, got {names!r:.80}")
    if not covers:
        raise DataError(
            f"{path}: {key} names {len(names)} ids but the ids run from {int(ids.min())} to {int(ids.max())}; "
            f"give one name per id"
        )
    return list(names)


def load(root: Path, val_fraction: float, seed: int) -> PairedData:
    if not root.is_dir():
        raise DataError(
            f"data.path {str(root)!r} is not a directory; point it at the folder with eeg.npy, video.npy, meta.json"
        )
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
    sfreq, channels, fps, meta = _read_meta(root / "meta.json", eeg.shape[1])
    has_groups, has_stimulus = (root / "groups.npy").exists(), (root / "stimulus.npy").exists()
    groups = _ids(root, "groups.npy", n) if has_groups else np.arange(n, dtype=np.int64)
    stimulus = _ids(root, "stimulus.npy", n) if has_stimulus else None
    if has_stimulus:
        logger.info(
            "%s: stimulus.npy gives the negatives (%d stimuli), groups.npy the leakage unit (%s)",
            root,
            len(np.unique(stimulus)),
            f"{len(np.unique(groups))} groups" if has_groups else "every pair its own",
        )
    elif has_groups:
        logger.info(
            "%s: no stimulus.npy, so groups.npy (%d groups) is read as before, with both meanings: a split never "
            "cuts a group and pairs of one group are not each other's negatives; write stimulus.npy to separate "
            "them",
            root,
            len(np.unique(groups)),
        )
    group_names = _names(meta, "group_names", groups, root / "meta.json", strict=False) if has_groups else None
    # without stimulus.npy the stimulus ids are the group ids, and so are their names
    stimuli = _names(meta, "stimuli", stimulus, root / "meta.json") if has_stimulus else group_names
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
        stimulus=stimulus,
        stimuli=stimuli,
        group_names=group_names,
    )


def _fingerprint(root: Path) -> str:
    """The folder's files by path, size and modification time: changes when any file is rewritten."""
    stats = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.iterdir()) if p.is_file()}
    return hashlib.sha256(
        json.dumps({"arrays": str(root.resolve()), "files": stats}, sort_keys=True).encode()
    ).hexdigest()
