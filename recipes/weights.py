"""Trainable weights as safetensors, with the resolved recipe and base checkpoint hashes as metadata."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from recipes.cache.hashing import file_digest
from recipes.rundir import atomic_write
from registry.errors import UserError


@lru_cache(maxsize=16)
def _sha256(path: str, mtime: float, size: int) -> str:
    return file_digest(Path(path))  # mtime and size key the cache: a rewritten file is hashed again


def sha256_of(path: str | None) -> str | None:
    """sha256 of a base checkpoint file (cached per path, mtime and size), None without one."""
    if not path:
        return None
    p = Path(path).expanduser()
    st = p.stat()
    return _sha256(str(p.resolve()), st.st_mtime, st.st_size)


def trained_names(model: nn.Module) -> set[str]:
    """What a weights file holds: parameters trainable in any training stage (`ever_trainable`), or now."""
    ever = getattr(model, "ever_trainable", None)
    return set(ever) if ever else {n for n, p in model.named_parameters() if p.requires_grad}


def save_trainable(model: nn.Module, path: Path, metadata: dict[str, Any]) -> int:
    """Write every trained parameter; returns the number of tensors written."""
    names = trained_names(model)
    state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if n in names}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    atomic_write(path, save(state, metadata=meta))
    return len(state)


def _unreadable(path: str | Path, exc: Exception) -> UserError:
    return UserError(
        f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc}); it is truncated or damaged "
        f"(a copy cut short?): copy it again, or use the run's other weights (--checkpoint best|last)"
    )


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file; a missing, truncated or non-safetensors file is one UserError."""
    if not Path(path).is_file():
        raise UserError(f"{path} is missing; give a finished run directory (python -m recipes.run prints it)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a trainable-weights file, JSON values decoded."""
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    out: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_trainable(model: nn.Module, path: str | Path) -> list[str]:
    """Copy saved trainable weights into `model`, built with the same recipe; returns the names loaded.

    The model must have been composed with the same strategies (so the adapter parameters exist and
    are trainable); anything else is an error naming what differs, never a partial load.
    """
    state = read_state(path)
    params = dict(model.named_parameters())
    trained = trained_names(model)
    unknown = sorted(k for k in state if k not in params)
    frozen = sorted(k for k in state if k in params and k not in trained)
    missing = sorted(n for n in trained if n not in state)
    shapes = sorted(k for k in state if k in params and tuple(state[k].shape) != tuple(params[k].shape))
    problems = [
        (unknown, "saved but absent from this model"),
        (frozen, "saved but frozen in this model"),
        (missing, "trainable in this model but not saved"),
        (shapes, "saved with another shape"),
    ]
    found = [f"{what}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}" for keys, what in problems if keys]
    if found:
        raise UserError(f"{path} does not fit this model (build it from the run's recipe.yaml): " + "; ".join(found))
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)
    return sorted(state)
