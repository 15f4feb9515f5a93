"""Trainable weights as safetensors, with the resolved recipe and base checkpoint hashes as metadata."""

from __future__ import annotations

import io
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from peftzoo_engine.cache.hashing import file_digest
from peftzoo_engine.rundir import atomic_write
from registry.errors import UserError

logger = logging.getLogger(__name__)


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


def statistics_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The persistent buffers of every module that keeps floating-point statistics (BatchNorm's
    running mean and variance with its batch counter, an EMA codebook...), by full name.

    Training moves them without a gradient, so they are not among the trained parameters; a run
    that dropped them would evaluate with the base encoder's statistics. Integer-only buffers
    (Swin's relative position index) are built from the architecture and are left out.
    """
    out: dict[str, torch.Tensor] = {}
    for prefix, module in model.named_modules():
        own = {
            n: b
            for n, b in module.named_buffers(recurse=False)
            if b is not None and n not in module._non_persistent_buffers_set
        }
        if any(b.is_floating_point() for b in own.values()):
            out.update({f"{prefix}.{n}" if prefix else n: b for n, b in own.items()})
    return out


def strategy_states(model: nn.Module) -> dict[str, dict[str, dict]]:
    """Side -> strategy key -> `Strategy.state_dict()`, for every strategy applied so far (frozen
    ones too); {} for a model without towers (an encoder alone)."""
    return {
        side: {key: strategy.state_dict() for key, (strategy, _) in getattr(model, side).applied.items()}
        for side in ("eeg", "video")
        if hasattr(getattr(model, side, None), "applied")
    }


def strategy_state_path(weights: Path) -> Path:
    """The strategies' state kept beside a weights file: trainable.safetensors -> trainable.strategies.pt."""
    return Path(weights).with_suffix(".strategies.pt")


def _on_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(v) for v in value)
    return value


def save_trainable(model: nn.Module, path: Path, metadata: dict[str, Any]) -> int:
    """Write every trained parameter and the modules' statistics; returns the number of tensors written.

    Strategies that keep state (`Strategy.state_dict()`: a step count, AdaLoRA's rank allocator, a
    plugin's data-dependent init) get it written beside, as `<stem>.strategies.pt` (tensors and plain
    values, read with weights_only=True), first, so the weights file is the last to land.
    """
    names = trained_names(model)
    state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if n in names}
    state.update({n: b.detach().cpu().contiguous() for n, b in statistics_buffers(model).items()})
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    states = {
        side: kept
        for side, by_key in strategy_states(model).items()
        if (kept := {key: _on_cpu(s) for key, s in by_key.items() if s})
    }
    sidecar = strategy_state_path(path)
    if states:
        buffer = io.BytesIO()
        torch.save(states, buffer)
        atomic_write(sidecar, buffer.getvalue())
    elif sidecar.exists():
        sidecar.unlink()  # an older state of a file rewritten in place (best.safetensors)
    atomic_write(path, save(state, metadata=meta))
    return len(state)


def load_strategy_states(model: nn.Module, weights: Path) -> list[str]:
    """The strategies' state saved beside `weights` put back into `model`'s applied strategies;
    returns "side:key" of each loaded; [] when the run kept none."""
    sidecar = strategy_state_path(weights)
    if not sidecar.is_file():
        return []
    try:
        states = torch.load(sidecar, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file: one message, the run is not loaded half-way
        raise UserError(
            f"{sidecar} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'empty'}); "
            f"it is damaged: copy the run again"
        ) from None
    loaded = []
    for side, by_key in states.items():
        applied = getattr(getattr(model, side, None), "applied", None)
        for key, state in by_key.items():
            if applied is None or key not in applied:
                raise UserError(
                    f"{sidecar} holds state of {side} strategy {key}, which this model does not apply; "
                    f"build it from the run's recipe.yaml"
                )
            applied[key][0].load_state_dict(state)
            loaded.append(f"{side}:{key}")
    return loaded


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
    statistics = statistics_buffers(model)
    saved_statistics = {k: state.pop(k) for k in list(state) if k in statistics}
    params = dict(model.named_parameters())
    trained = trained_names(model)
    unknown = sorted(k for k in state if k not in params)
    frozen = sorted(k for k in state if k in params and k not in trained)
    missing = sorted(n for n in trained if n not in state)
    shapes = sorted(k for k in state if k in params and tuple(state[k].shape) != tuple(params[k].shape))
    shapes += sorted(k for k, v in saved_statistics.items() if tuple(v.shape) != tuple(statistics[k].shape))
    problems = [
        (unknown, "saved but absent from this model"),
        (frozen, "saved but frozen in this model"),
        (missing, "trainable in this model but not saved"),
        (shapes, "saved with another shape"),
    ]
    found = [f"{what}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}" for keys, what in problems if keys]
    if found:
        raise UserError(f"{path} does not fit this model (build it from the run's recipe.yaml): " + "; ".join(found))
    if statistics and not saved_statistics:
        logger.warning(
            "%s holds no running statistics (written before peftzoo saved them): %d statistics buffers such as %s "
            "keep the base encoder's values",
            path,
            len(statistics),
            next(iter(statistics)),
        )
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)
        for name, value in saved_statistics.items():
            statistics[name].copy_(value)
    load_strategy_states(model, Path(path))
    return sorted(state) + sorted(saved_statistics)
