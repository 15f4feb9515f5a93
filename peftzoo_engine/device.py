"""The training device and the autocast precision (with fp16's gradient scaler)."""

from __future__ import annotations

import contextlib

import torch

from recipes.errors import RecipeError


def resolve_device(name: str | torch.device, key: str = "train.device") -> torch.device:
    """auto (CUDA when available), cpu, cuda or cuda:N; `key` names the option in messages."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RecipeError(f"{key}: {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RecipeError(f"{key}: {name!r} asked for, but no CUDA device is available; use auto or cpu")
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for train.precision on `device` (None: fp32, no autocast)."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


class Precision:
    """Autocast context and, for fp16, a GradScaler; fp32 is a no-op."""

    def __init__(self, name: str, device: torch.device):
        self.dtype = resolve_precision(name, device)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None

    def autocast(self):
        if (
            self.dtype is None
        ):  # fp32: no context at all (making a disabled torch.autocast asks CUDA whether it is there)
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)
