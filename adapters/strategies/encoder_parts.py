"""What strategies read from an encoder: its own optional methods, else the plugin contract's defaults.

docs/plugins.md makes `attention_modules()`, `bias_parameters()`, `final_norm()` and `layer_ids()`
optional for encoders; the built-in bases (encoders/base.py) implement them, a plugin encoder that
does not subclass them may not. Strategies ask here, never the encoder directly, so both work.
"""

from __future__ import annotations

import torch
from torch import nn


def attention_modules(encoder: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every attention with fused `qkv` and `proj` Linear sub-modules."""
    own = getattr(encoder, "attention_modules", None)
    if callable(own):
        return list(own())
    return [(n, m) for n, m in encoder.named_modules()
            if isinstance(getattr(m, "qkv", None), nn.Linear) and isinstance(getattr(m, "proj", None), nn.Linear)]


def bias_parameters(encoder: nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of every bias term: names ending in `bias` (`proj.bias`, `q_bias`, a BatchNorm's bias)."""
    own = getattr(encoder, "bias_parameters", None)
    if callable(own):
        return list(own())
    return [(n, p) for n, p in encoder.named_parameters() if n.split(".")[-1].endswith("bias")]


def final_norm(encoder: nn.Module) -> nn.Module | None:
    """The norm after the last block (trained by last_k): the encoder's `final_norm()`, else a `fc_norm`
    or `norm` sub-module with parameters, else None (a CNN pooling its last block has none)."""
    own = getattr(encoder, "final_norm", None)
    if callable(own):
        return own()
    for attr in ("fc_norm", "norm"):
        module = getattr(encoder, attr, None)
        if isinstance(module, nn.Module) and any(True for _ in module.parameters()):
            return module
    return None


def layer_ids(encoder: nn.Module) -> dict[str, int]:
    """Layer index of every parameter for layer-wise lr decay: the encoder's `layer_ids()`, else by its
    `blocks`: i+1 inside block i, 0 for parameters registered before the first block's (a stem), L+1 after."""
    own = getattr(encoder, "layer_ids", None)
    if callable(own):
        return dict(own())
    blocks = list(encoder.blocks)
    in_block = {id(p): i + 1 for i, block in enumerate(blocks) for p in block.parameters()}
    out, seen_block = {}, False
    for name, p in encoder.named_parameters():
        if id(p) in in_block:
            seen_block = True
            out[name] = in_block[id(p)]
        else:
            out[name] = len(blocks) + 1 if seen_block else 0
    return out
