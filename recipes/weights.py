"""Trainable weights as safetensors, with the resolved recipe and base checkpoint hashes as metadata."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from safetensors.torch import save
from torch import nn

from recipes.rundir import atomic_write


@lru_cache(maxsize=16)
def _sha256(path: str, mtime: float, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: str | None) -> str | None:
    """sha256 of a base checkpoint file (cached per path, mtime and size), None without one."""
    if not path:
        return None
    p = Path(path).expanduser()
    st = p.stat()
    return _sha256(str(p.resolve()), st.st_mtime, st.st_size)


def save_trainable(model: nn.Module, path: Path, metadata: dict[str, Any]) -> int:
    """Write every parameter that requires grad; returns the number of tensors written."""
    state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    atomic_write(path, save(state, metadata=meta))
    return len(state)
