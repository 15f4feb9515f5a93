"""Video clips at the video encoder's input size, sampled, resized and cropped once and kept on disk.

When the video encoder trains, the frozen-feature cache cannot help, and every step would read the
full-resolution frames and resize and crop them again, with the same result each epoch. The
geometric part of the preprocessing (uniform frame sampling, short-side resize, center crop, all on
uint8) is therefore done once per data set, batched, and stored as a memory-mappable .npy of
(N, frames, size, size, 3) uint8; the loader then reads these small clips and the model only
normalizes them (bit-equal to preprocessing the full frames on the same device). The file is keyed
by the data's fingerprint and the geometric spec (frames, size, resize) and the device type that
computed it, and written through a temporary file renamed into place, so a crash never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from encoders.base import VideoEncoder
from encoders.video_preprocess import VideoPreprocess
from recipes.data.base import PairedData, PairTorchDataset
from registry.errors import UserError

logger = logging.getLogger(__name__)


class VideoCacheError(UserError, OSError):
    """The cache directory cannot hold the clips."""


def cache_key(preprocessing: VideoPreprocess, data: PairedData, device: torch.device) -> str | None:
    """What the clips depend on; None when the data has no fingerprint (kept in memory, not on disk)."""
    if data.fingerprint is None:
        return None
    spec = {
        "data": data.fingerprint,
        "n": len(data),
        "source_frames": list(data.video.shape[1:]),
        "frames": preprocessing.frames,
        "size": preprocessing.size,
        "resize": preprocessing.resize_to,
        "device": device.type,  # float resizing may round differently on another device type
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


@torch.no_grad()
def clip_batches(preprocessing: VideoPreprocess, data: PairedData, device: torch.device, batch_size: int, num_workers: int):
    """uint8 clips (B, frames, size, size, 3) as numpy arrays, every pair in index order."""
    dataset = PairTorchDataset(data, np.arange(len(data)), load_eeg=False)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda")
    for batch in tqdm(loader, desc="resizing video clips", leave=False, disable=None):
        clips = preprocessing.sample_resize_crop(batch["video"].to(device, non_blocking=True))
        yield clips.cpu().numpy()


def write_npy(path: Path, shape: tuple[int, ...], batches) -> None:
    """Stream uint8 batches into `path` as one .npy: a temporary file, fsynced, then renamed into place."""
    nbytes = int(np.prod(shape))
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if nbytes > free:
        raise VideoCacheError(
            f"the video clips need {nbytes / 2**30:.1f} GiB but {path.parent} has {free / 2**30:.1f} GiB free; "
            f"free space there or point train.cache_dir at a larger disk"
        )
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
            for clips in batches:
                f.write(np.ascontiguousarray(clips).tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def prepare(encoder: VideoEncoder, data: PairedData, cache_dir: Path | None, batch_size: int, num_workers: int = 0,
            device: torch.device = torch.device("cpu")) -> PairedData:
    """`data` with its video replaced by clips at `encoder`'s input size (`video_at_input_size`).

    The clips are read from `cache_dir` when there, else computed on `device` and written there; a
    read-only memory map either way. Data without a fingerprint (or no `cache_dir`) gets them in memory.
    """
    preprocessing = encoder.preprocessing
    shape = (len(data), preprocessing.frames, preprocessing.size, preprocessing.size, 3)
    key = cache_key(preprocessing, data, device)
    fingerprint = f"{data.fingerprint}:video-clips-{key}" if key else None
    if key is None or cache_dir is None:
        clips = np.concatenate(list(clip_batches(preprocessing, data, device, batch_size, num_workers)))
        return dataclasses.replace(data, video=clips, video_at_input_size=True, fingerprint=fingerprint)
    path = Path(cache_dir) / f"video-clips-{key}.npy"
    if path.is_file():
        logger.info("video clips at input size %s: loaded from %s", shape[1:], path)
    else:
        write_npy(path, shape, clip_batches(preprocessing, data, device, batch_size, num_workers))
        logger.info("video clips at input size %s: computed for %d pairs, cached at %s", shape[1:], len(data), path)
    clips = np.load(path, mmap_mode="r")
    return dataclasses.replace(data, video=clips, video_at_input_size=True, fingerprint=fingerprint)
