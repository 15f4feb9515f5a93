"""Video clips at the video encoder's input size, sampled, resized and cropped once and kept on disk.

When the video encoder trains, the frozen-feature cache cannot help, and every step would read the
full-resolution frames and resize and crop them again, with the same result each epoch. The
geometric part of the preprocessing (uniform frame sampling, short-side resize, center crop, all on
uint8) is therefore done once per data set, batched, and stored as a memory-mappable .npy of
(N, frames, size, size, 3) uint8; the loader then reads these small clips and the model only
normalizes them (bit-equal to preprocessing the full frames on the same device). The file is keyed
by the content of the video array (peftzoo_engine/cache/content.py), the geometric spec (frames, size,
resize), the code and library versions that compute it and the device type, written through a
temporary file renamed into place with a manifest written last, checked when read, and recomputed
with a warning when damaged (peftzoo_engine/cache/store.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from encoders.base import VideoEncoder
from encoders.video_preprocess import VideoPreprocess
from peftzoo_data.base import PairedData, PairTorchDataset
from peftzoo_engine.cache import content, store
from peftzoo_engine.cache.code import code_identity
from peftzoo_engine.display import progress
from registry.component import name_of
from registry.errors import UserError

logger = logging.getLogger(__name__)

COMPUTING_CODE = ("peftzoo_engine.video_cache", "peftzoo_data.base")
"""This module's loop and the loader that feeds it: their code is part of every key."""


class VideoCacheError(UserError, OSError):
    """The cache directory cannot hold the clips."""


def key_spec(
    preprocessing: VideoPreprocess, data: PairedData, device: torch.device, cache_dir: Path | None
) -> tuple[dict, str] | None:
    """(what the clips depend on, a description of the data); None when the data has no fingerprint.

    With a cache directory the video array is keyed by its content (peftzoo_engine/cache/content.py);
    without one only the data's own fingerprint is at hand (the clips stay in memory then).
    """
    if data.fingerprint is None:
        return None
    if cache_dir is None:
        identity, description = {"fingerprint": data.fingerprint, "shape": list(data.video.shape)}, "in memory"
    else:
        identity, description = content.identity(data.video, data.fingerprint, store.ensure_directory(cache_dir))
    spec = {
        "data": identity,
        "frames": preprocessing.frames,
        "size": preprocessing.size,
        "resize": preprocessing.resize_to,
        "code": code_identity([preprocessing], COMPUTING_CODE),
        "device": device.type,  # float resizing may round differently on another device type
    }
    return spec, description


cache_key = store.spec_key


@torch.no_grad()
def clip_batches(
    preprocessing: VideoPreprocess, data: PairedData, device: torch.device, batch_size: int, num_workers: int
):
    """uint8 clips (B, frames, size, size, 3) as numpy arrays, every pair in index order."""
    dataset = PairTorchDataset(data, np.arange(len(data)), load_eeg=False)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        # Its own generator: iterating a loader draws a seed from the global RNG otherwise, and
        # only the process that computes an entry (the others read it) would draw it.
        generator=torch.Generator(),
    )
    for batch in progress(loader, "resizing video clips"):
        clips = preprocessing.sample_resize_crop(batch["video"].to(device, non_blocking=True))
        yield clips.cpu().numpy()


def write_npy(path: Path, shape: tuple[int, ...], batches) -> str:
    """Stream uint8 batches into `path` (a temporary file) as one .npy, fsynced; its sha256.

    The file is removed when anything (an error, Ctrl-C, SIGTERM raised by the trainer) stops the
    loop, so no partial file stays behind.
    """
    nbytes = int(np.prod(shape))
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if nbytes > free:
        raise VideoCacheError(
            f"the video clips need {nbytes / 2**30:.1f} GiB but {path.parent} has {free / 2**30:.1f} GiB free; "
            f"free space there or point train.cache_dir at a larger disk"
        )
    digest = hashlib.sha256()
    try:
        with open(path, "wb") as f:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
            f.write(header.getvalue())
            digest.update(header.getvalue())
            written = 0
            for clips in batches:
                chunk = np.ascontiguousarray(clips, dtype=np.uint8)
                if chunk.shape[1:] != shape[1:]:
                    raise ValueError(f"clips of shape {chunk.shape[1:]} where {shape[1:]} were expected")
                f.write(chunk.data)
                digest.update(chunk.data)
                written += len(chunk)
            if written != shape[0]:
                raise ValueError(f"{written} clips were made for {shape[0]} pairs")
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def read(entry: store.Entry, shape: tuple[int, ...]) -> np.ndarray | None:
    """The entry's clips as a read-only memory map, checked against its manifest and `shape`; None if absent.

    The header, shape, dtype and size are checked on every read; the sha256 only when the file was
    touched since it was written (store.Entry.verify). Raises store.Damaged naming what is wrong.
    """
    manifest = entry.manifest()
    if manifest is None:
        return None
    try:
        clips = np.load(entry.data_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise store.Damaged(f"it is not a readable .npy file ({exc})") from None
    if (
        not isinstance(clips, np.memmap)
        or clips.dtype != np.uint8
        or clips.shape != shape
        or not clips.flags.c_contiguous
    ):
        raise store.Damaged(
            f"it holds {getattr(clips, 'shape', '?')} {getattr(clips, 'dtype', '?')} where this key implies {shape} "
            f"uint8"
        )
    if int(clips.offset) + clips.nbytes != entry.data_path.stat().st_size:
        raise store.Damaged(f"its size does not match its {shape} header")
    entry.verify(manifest)
    return clips


def split_preprocessing(encoder) -> VideoPreprocess | None:
    """The encoder's preprocessing as a uint8 part (`sample_resize_crop`) and a `normalize` part, where
    it declares that its `preprocess` is exactly that pair (docs/plugins.md): `preprocess_split = True`,
    or the `VideoEncoder` base's own `preprocess` (= its `preprocessing`) not overridden. Else None:
    a plugin's own `preprocess` is then the only way its frames are prepared, so no clip cache."""
    preprocessing = getattr(encoder, "preprocessing", None)
    if not (
        callable(getattr(preprocessing, "sample_resize_crop", None))
        and callable(getattr(preprocessing, "normalize", None))
    ):
        return None
    declared = getattr(encoder, "preprocess_split", None)
    if declared is None:
        declared = getattr(type(encoder), "preprocess", None) is VideoEncoder.preprocess
    return preprocessing if declared else None


def prepare(
    encoder: VideoEncoder,
    data: PairedData,
    cache_dir: Path | None,
    batch_size: int,
    num_workers: int = 0,
    device: torch.device = torch.device("cpu"),  # noqa: B008 - an immutable, intended default
) -> PairedData:
    """`data` with its video replaced by clips at `encoder`'s input size (`video_at_input_size`).

    The clips are read from `cache_dir` when there and sound, else computed on `device` and written
    there (another process computing the same entry is waited for); a read-only memory map either
    way. Data without a fingerprint (or no `cache_dir`) gets them in memory. An encoder that does
    not declare its preprocessing split (`split_preprocessing`) gets `data` unchanged: its own
    `preprocess` runs on the frames of each batch.
    """
    preprocessing = split_preprocessing(encoder)
    if preprocessing is None:
        logger.info("video clips: %s has its own preprocess; frames are preprocessed per batch", name_of(encoder))
        return data
    shape = (len(data), preprocessing.frames, preprocessing.size, preprocessing.size, 3)
    found = key_spec(preprocessing, data, device, cache_dir)
    key = cache_key(found[0]) if found is not None else None
    fingerprint = f"{data.fingerprint}:video-clips-{key}" if key else None
    if key is None or cache_dir is None:
        clips = np.concatenate(list(clip_batches(preprocessing, data, device, batch_size, num_workers)))
        return dataclasses.replace(data, video=clips, video_at_input_size=True, fingerprint=fingerprint)
    entry = store.Entry(Path(cache_dir), f"video-clips-{key}", ".npy")

    def compute_and_publish(entry: store.Entry) -> np.ndarray:
        temporary = entry.temporary()
        sha256 = write_npy(temporary, shape, clip_batches(preprocessing, data, device, batch_size, num_workers))
        entry.publish(
            temporary,
            {
                "kind": "video-clips",
                "sha256": sha256,
                "shape": list(shape),
                "dtype": "uint8",
                "describe": {
                    "side": "video",
                    "encoder": name_of(encoder),
                    "data": found[1],
                    "pairs": len(data),
                    "device": device.type,
                    "clips": f"{preprocessing.frames}x{preprocessing.size}x{preprocessing.size}",
                },
                "spec": found[0],
            },
        )
        logger.info(
            "video clips at input size %s: computed for %d pairs, cached at %s", shape[1:], len(data), entry.data_path
        )
        return np.load(entry.data_path, mmap_mode="r", allow_pickle=False)

    clips = store.read_or_compute(
        entry, lambda entry: read(entry, shape), compute_and_publish, f"video clips at input size {shape[1:]}"
    )
    return dataclasses.replace(data, video=clips, video_at_input_size=True, fingerprint=fingerprint)
