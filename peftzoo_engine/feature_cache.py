"""Pooled features of frozen encoders, computed once per data set and kept on disk.

When a side's encoder does not train in a stage (head_only, or a stage where it is frozen) and its
inputs are not augmented, its features are the same every epoch: computing them once (batched, no
grad, on the training device) turns each epoch into head-only compute (SigLiT and LiT precompute
frozen towers the same way). The key covers everything the features depend on: the side, the
encoder's architecture and preprocessing options, a hash of its current weights (checkpoint and any
frozen adapters of earlier stages), the content of the side's data array (peftzoo_engine/cache/content.py:
a file's sha256, remembered beside the cache; synthetic data's generating config) and its channels
and rate, the code and library versions that compute them (peftzoo_engine/cache/code.py), the device type
and the autocast dtype. Entries are written atomically with a manifest last and checked when read
(size, sha256, shape): a damaged one is named in a warning and recomputed (peftzoo_engine/cache/store.py).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch.utils.data import DataLoader

from peftzoo_data.base import PairedData, PairTorchDataset
from peftzoo_engine.cache import content, store
from peftzoo_engine.cache.code import code_identity
from peftzoo_engine.display import progress
from peftzoo_model.metrics import eval_mode
from peftzoo_model.model import Tower
from registry.component import name_of

logger = logging.getLogger(__name__)

COMPUTING_CODE = ("peftzoo_engine.feature_cache", "peftzoo_data.base")
"""This module's compute loop and the loader that feeds it: their code is part of every key."""


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over every tensor of the module's state dict (names, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def key_spec(
    side: str, tower: Tower, data: PairedData, device: torch.device, dtype: torch.dtype | None, cache_dir: Path
) -> tuple[dict, str] | None:
    """(everything the features depend on, a description of the data); None: the data cannot be keyed."""
    array = data.eeg if side == "eeg" else data.video
    found = content.identity(array, data.fingerprint, cache_dir)
    if found is None:
        return None
    data_identity, data_description = found
    encoder = tower.encoder
    spec = {
        "side": side,
        "encoder": name_of(encoder),
        "config": encoder.cfg.model_dump(mode="json", exclude={"checkpoint", "trust_checkpoint"}),
        "input_spec": repr(getattr(encoder, "input_spec", None)),
        "weights": weights_digest(encoder),
        "data": data_identity,
        "channels": list(data.channels) if side == "eeg" else None,
        "rate": data.sfreq if side == "eeg" else data.fps,
        "code": code_identity(
            [encoder] + ([encoder.preprocessing] if hasattr(encoder, "preprocessing") else []), COMPUTING_CODE
        ),
        "device": device.type,
        "dtype": str(dtype),
    }
    return spec, data_description


cache_key = store.spec_key


@torch.no_grad()
def compute(
    side: str,
    tower: Tower,
    channels: list[str],
    data: PairedData,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    dtype: torch.dtype | None,
) -> torch.Tensor:
    """Features (N, D) float32 of every pair, in index order (held in memory until complete)."""
    dataset = PairTorchDataset(data, np.arange(len(data)), load_eeg=side == "eeg", load_video=side == "video")
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
    out = []
    with eval_mode(tower.encoder):
        for batch in progress(loader, f"caching {side} features"):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                if side == "eeg":
                    feats = tower.encoder(batch["eeg"].to(device, non_blocking=True), channels=channels)
                else:
                    clip = tower.encoder.preprocess(batch["video"].to(device, non_blocking=True))
                    feats = tower.encoder(clip)
            out.append(feats.float())
    return torch.cat(out)


def read(entry: store.Entry, shape: tuple[int, int | None]) -> torch.Tensor | None:
    """The entry's features, checked against its manifest and the shape its key implies; None if absent.

    Raises store.Damaged naming what is wrong (size, checksum, format, shape or dtype).
    """
    manifest = entry.manifest()
    if manifest is None:
        return None
    raw = entry.data_path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != manifest.get("sha256"):
        raise store.Damaged("its bytes do not match the sha256 written with it")
    try:
        tensors = load(raw)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise store.Damaged(f"it is not a readable safetensors file ({exc})") from None
    feats = tensors.get("features")
    if feats is None:
        raise store.Damaged("it holds no 'features' tensor")
    n, dim = shape
    if (
        feats.dtype != torch.float32
        or feats.ndim != 2
        or feats.shape[0] != n
        or (dim is not None and feats.shape[1] != dim)
    ):
        want = f"({n}, {dim if dim is not None else 'D'}) float32"
        raise store.Damaged(f"it holds {tuple(feats.shape)} {feats.dtype} features where this key implies {want}")
    return feats


def features(
    side: str,
    tower: Tower,
    data: PairedData,
    device: torch.device,
    cache_dir: Path | None,
    batch_size: int,
    num_workers: int = 0,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The side's cached features on `device`: read from `cache_dir` when there and sound, else computed (and written).

    Another process computing the same entry is waited for, and its result read. An exception while
    computing (Ctrl-C, SIGTERM raised by the trainer's handler) leaves no entry and no temporary file.
    """
    found = (
        key_spec(side, tower, data, device, dtype, store.ensure_directory(cache_dir)) if cache_dir is not None else None
    )
    if found is None:
        return compute(side, tower, list(data.channels), data, device, batch_size, num_workers, dtype)
    spec, data_description = found
    entry = store.Entry(Path(cache_dir), f"{side}-{cache_key(spec)}", ".safetensors")
    shape = (len(data), getattr(tower.encoder, "feature_dim", None))

    def compute_and_publish(entry: store.Entry) -> torch.Tensor:
        feats = compute(side, tower, list(data.channels), data, device, batch_size, num_workers, dtype)
        raw = save({"features": feats.cpu().contiguous()})
        entry.publish_bytes(
            raw,
            {
                "kind": "features",
                "sha256": hashlib.sha256(raw).hexdigest(),
                "shape": list(feats.shape),
                "dtype": "float32",
                "describe": {
                    "side": side,
                    "encoder": spec["encoder"],
                    "data": data_description,
                    "pairs": len(data),
                    "device": device.type,
                    "dtype": str(dtype),
                },
                "spec": spec,
            },
        )
        logger.info("%s features: computed for %d pairs, cached at %s", side, len(feats), entry.data_path)
        return feats

    feats = store.read_or_compute(entry, lambda entry: read(entry, shape), compute_and_publish, f"{side} features")
    return feats.to(device)  # read ones are on the CPU; computed ones are on `device` already (no copy)
