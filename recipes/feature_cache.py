"""Pooled features of frozen encoders, computed once per data set and kept on disk.

When a side's encoder does not train in a stage (head_only, or a stage where it is frozen) and its
inputs are not augmented, its features are the same every epoch: computing them once (batched, no
grad, on the training device) turns each epoch into head-only compute (SigLiT and LiT precompute
frozen towers the same way). The key covers everything the features depend on: the side, the
encoder's architecture and preprocessing options, a hash of its current weights (checkpoint and any
frozen adapters of earlier stages), the data's fingerprint and channels, and the autocast dtype.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from recipes.data.base import PairedData, PairTorchDataset
from recipes.evaluate import eval_mode
from recipes.model import Tower
from recipes.rundir import atomic_write

logger = logging.getLogger(__name__)


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over every tensor of the module's state dict (names, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_key(side: str, tower: Tower, data: PairedData, dtype: torch.dtype | None) -> str | None:
    if data.fingerprint is None:
        return None
    encoder = tower.encoder
    spec = {
        "side": side,
        "encoder": getattr(encoder, "name", type(encoder).__name__),
        "config": encoder.cfg.model_dump(mode="json", exclude={"checkpoint", "trust_checkpoint"}),
        "input_spec": repr(encoder.input_spec),
        "weights": weights_digest(encoder),
        "data": data.fingerprint,
        "channels": list(data.channels) if side == "eeg" else None,
        "n": len(data),
        "dtype": str(dtype),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]


@torch.no_grad()
def compute(side: str, tower: Tower, channels: list[str], data: PairedData, device: torch.device, batch_size: int,
            num_workers: int, dtype: torch.dtype | None) -> torch.Tensor:
    """Features (N, D) float32 of every pair, in index order."""
    dataset = PairTorchDataset(data, np.arange(len(data)), load_eeg=side == "eeg", load_video=side == "video")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda")
    out = []
    with eval_mode(tower.encoder):
        for batch in tqdm(loader, desc=f"caching {side} features", leave=False, disable=None):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                if side == "eeg":
                    feats = tower.encoder(batch["eeg"].to(device, non_blocking=True), channels=channels)
                else:
                    clip = tower.encoder.preprocess(batch["video"].to(device, non_blocking=True))
                    feats = tower.encoder(clip)
            out.append(feats.float())
    return torch.cat(out)


def features(side: str, tower: Tower, data: PairedData, device: torch.device, cache_dir: Path | None, batch_size: int,
             num_workers: int = 0, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The side's cached features on `device`: read from `cache_dir` when there, else computed (and written)."""
    key = cache_key(side, tower, data, dtype) if cache_dir is not None else None
    path = cache_dir / f"{side}-{key}.safetensors" if key else None
    if path is not None and path.is_file():
        logger.info("%s features: loaded from %s", side, path)
        return load_file(str(path))["features"].to(device)
    feats = compute(side, tower, list(data.channels), data, device, batch_size, num_workers, dtype)
    if path is not None:
        atomic_write(path, save({"features": feats.cpu().contiguous()}))
        logger.info("%s features: computed for %d pairs, cached at %s", side, len(feats), path)
    return feats
