"""Reading weights from local files, safely, and reporting what did not match.

Weights are never downloaded. `.safetensors` is read with safetensors; `.pt`/`.pth` with
`torch.load(weights_only=True)`, and a file that needs full unpickling (which can run arbitrary
code) is refused unless the caller explicitly trusts it.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from registry.errors import UserError


class CheckpointError(UserError):
    """A checkpoint file that is missing, unreadable or of the wrong layout."""


def read_file(path: str | Path, *, trust: bool = False) -> Any:
    """The object stored in a checkpoint file (a state dict or a dict that holds one)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; give the path of a local weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds Python objects beyond tensors, and unpickling them can run "
            f"arbitrary code; if you trust the file, set `trust_checkpoint: true` for this encoder "
            f"({str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} could not be read: {exc}") from None


@dataclasses.dataclass
class LoadReport:
    """Keys of the model the file did not fill, and keys of the file the model did not take."""

    missing: list[str]
    unexpected: list[str]
    ignored: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        def fmt(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "") if keys else "none"

        return f"missing: {fmt(self.missing)}; unexpected: {fmt(self.unexpected)}; ignored: {len(self.ignored)} keys"


def load_into(model: nn.Module, state: dict[str, torch.Tensor]) -> LoadReport:
    """Non-strict load with shape checks: a shape mismatch is an error, never a silent skip."""
    own = model.state_dict()
    bad = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if bad:
        raise CheckpointError(
            "checkpoint does not fit this architecture (check the architecture options): " + "; ".join(bad[:5])
        )
    result = model.load_state_dict(state, strict=False)
    return LoadReport(missing=list(result.missing_keys), unexpected=list(result.unexpected_keys))
