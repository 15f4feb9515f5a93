"""What strategies read from an encoder: its own optional methods, else the plugin contract's defaults.

docs/plugins.md makes `attention_modules()`, `bias_parameters()`, `final_norm()` and `layer_ids()`
optional for encoders; the built-in bases (encoders/base.py) implement them, a plugin encoder that
does not subclass them may not. Strategies ask here, never the encoder directly, so both work; the
defaults are registry/encoder_contract.py's, the same functions the built-in bases call.
"""

from __future__ import annotations

import torch
from torch import nn

from registry import encoder_contract


def _own(encoder: nn.Module, method: str):
    own = getattr(encoder, method, None)
    return own if callable(own) else None


def attention_modules(encoder: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every attention with fused `qkv` and `proj` Linear sub-modules."""
    own = _own(encoder, "attention_modules")
    return list(own()) if own else encoder_contract.attention_modules(encoder)


def bias_parameters(encoder: nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of every bias term."""
    own = _own(encoder, "bias_parameters")
    return list(own()) if own else encoder_contract.bias_parameters(encoder)


def final_norm(encoder: nn.Module) -> nn.Module | None:
    """The norm after the last block (trained by last_k), or None."""
    own = _own(encoder, "final_norm")
    return own() if own else encoder_contract.final_norm(encoder)


def layer_ids(encoder: nn.Module) -> dict[str, int]:
    """Layer index of every parameter for layer-wise lr decay (registry.encoder_contract.layer_ids's rule)."""
    own = _own(encoder, "layer_ids")
    return dict(own()) if own else encoder_contract.layer_ids(encoder)
