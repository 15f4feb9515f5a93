"""`npz_folder`: a folder of .npz files, one EEG/video pair each, plus meta.json.

    FOLDER/meta.json      {"sfreq": 200, "channels": [...], "fps": 8}
    FOLDER/*.npz          eeg float (C, T) microvolts; video uint8 (F, H, W, 3) RGB;
                          optional group (int: recording id), split ("train" / "val" / "test")

The pairs are packed once into memory-mapped .npy files in a cache folder (keyed by every file's
name, size and modification time), so training reads them like the `arrays` data set and never
holds the whole folder in memory; a changed folder is packed again. Packing writes to a temporary
folder that is renamed into place when complete, so an interrupted pack leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from peftzoo_data.base import DataError, DatasetConfig, PairedData, PairedDataset, group_split, splits_from_labels


class NpzFolderConfig(DatasetConfig):
    path: str
    """Folder of *.npz pairs and meta.json."""
    cache_dir: str | None = None
    """Where the packed arrays go; default FOLDER/.npz_folder_cache."""


class NpzFolder(PairedDataset):
    """Paired EEG/video from a folder of .npz files (one pair each) and meta.json, packed and memory-mapped."""

    description = "Paired EEG/video from a folder of .npz files (one pair each) and meta.json"
    Config = NpzFolderConfig

    @classmethod
    def from_config(cls, config: NpzFolderConfig, *, seed: int = 0, **context) -> PairedData:
        root = Path(config.path).expanduser()
        cache = Path(config.cache_dir).expanduser() if config.cache_dir else root / ".npz_folder_cache"
        return load(root, cache, config.val_fraction, seed)

    @staticmethod
    def conformance_example(directory: Path) -> dict:
        """A small folder for the conformance kit: 12 pairs in 6 groups of 2."""
        write_example(directory / "pairs", n=12)
        return {"path": str(directory / "pairs"), "val_fraction": 0.25}


def write_example(folder: Path, n: int, channels=("Fp1", "Fp2", "Cz", "Oz"), samples: int = 200, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"sfreq": 200, "channels": list(channels), "fps": 8}))
    for i in range(n):
        np.savez(
            folder / f"pair_{i:05d}.npz",
            eeg=(rng.standard_normal((len(channels), samples)) * 20).astype(np.float32),
            video=rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8),
            group=i // 2,
        )


def _read_meta(root: Path) -> dict:
    path = root / "meta.json"
    if not path.is_file():
        raise DataError(f'{path} is missing; write {{"sfreq": 200, "channels": [...], "fps": 8}} beside the .npz files')
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from None
    missing = [k for k in ("sfreq", "channels") if k not in meta]
    if missing:
        raise DataError(f"{path} lacks {missing}; it needs sfreq (Hz) and channels (names in EEG row order)")
    return meta


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _read_pair(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            pair = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} could not be read as .npz ({exc}); save pairs with np.savez") from None
    missing = [k for k in ("eeg", "video") if k not in pair]
    if missing:
        raise DataError(f"{path} lacks {missing}; each .npz holds eeg (C, T) and video (F, H, W, 3)")
    return pair


def _pack(files: list[Path], target: Path, n_channels: int) -> None:
    first = _read_pair(files[0])
    eeg_shape, video_shape = first["eeg"].shape, first["video"].shape
    if len(eeg_shape) != 2 or eeg_shape[0] != n_channels:
        raise DataError(
            f"{files[0]}: eeg has shape {eeg_shape}; it must be ({n_channels} channels from meta.json, samples)"
        )
    if len(video_shape) != 4 or video_shape[-1] != 3:
        raise DataError(f"{files[0]}: video has shape {video_shape}; it must be (frames, height, width, 3) RGB")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".packing-", dir=target.parent))
    try:
        n = len(files)
        eeg = np.lib.format.open_memmap(tmp / "eeg.npy", "w+", np.float32, (n, *eeg_shape))
        video = np.lib.format.open_memmap(tmp / "video.npy", "w+", np.uint8, (n, *video_shape))
        groups = np.arange(n, dtype=np.int64)
        splits = np.full(n, "", dtype="<U5")
        for i, f in enumerate(files):
            pair = first if i == 0 else _read_pair(f)
            if pair["eeg"].shape != eeg_shape or pair["video"].shape != video_shape:
                raise DataError(
                    f"{f}: eeg {pair['eeg'].shape} / video {pair['video'].shape} differ from {files[0].name}'s "
                    f"{eeg_shape} / {video_shape}; all pairs must have one shape"
                )
            if pair["video"].dtype != np.uint8:
                raise DataError(f"{f}: video is {pair['video'].dtype}; save frames as uint8 RGB")
            eeg[i], video[i] = pair["eeg"].astype(np.float32), pair["video"]
            if "group" in pair:
                groups[i] = int(pair["group"])
            if "split" in pair:
                splits[i] = str(pair["split"])
        eeg.flush(), video.flush()
        del eeg, video
        np.save(tmp / "groups.npy", groups)
        if (splits != "").any():
            if (splits == "").any():
                raise DataError(
                    f"some .npz files in {files[0].parent} have a `split` and others do not; give all or none"
                )
            np.save(tmp / "split.npy", splits)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load(root: Path, cache: Path, val_fraction: float, seed: int) -> PairedData:
    if not root.is_dir():
        raise DataError(f"data.path {str(root)!r} is not a folder; point it at the folder of .npz pairs and meta.json")
    meta = _read_meta(root)
    files = sorted(root.glob("*.npz"))
    if not files:
        raise DataError(f"{root} holds no .npz files; write one np.savez(eeg=..., video=...) per pair")
    key = _fingerprint(files)
    packed = cache / key
    if not (packed / "eeg.npy").is_file():
        _pack(files, packed, len(meta["channels"]))
    eeg = np.load(packed / "eeg.npy", mmap_mode="r")
    video = np.load(packed / "video.npy", mmap_mode="r")
    groups = np.load(packed / "groups.npy")
    if (packed / "split.npy").is_file():
        splits = splits_from_labels(np.load(packed / "split.npy"), groups)
    else:
        splits = group_split(groups, val_fraction, seed)
    return PairedData(
        eeg=eeg,
        video=video,
        sfreq=float(meta["sfreq"]),
        channels=list(meta["channels"]),
        fps=float(meta.get("fps", 8.0)),
        groups=groups,
        splits=splits,
        fingerprint=f"npz_folder:{key}",
    )
