"""The defaults of the encoder contract's optional parts (docs/plugins.md), implemented once.

An encoder may define `attention_modules()`, `bias_parameters()`, `final_norm()` and `layer_ids()`;
where it does not, strategies use these defaults (adapters/strategies/encoder_parts.py), and the
built-in base class (encoders/base.py) calls the same functions, so a plugin encoder that does not
subclass it gets exactly what a built-in one gets. They live beside the kinds because encoders/ and
adapters/ are sibling layers that import neither each other: the contract is the registry's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

DEFAULT_NORMS = ("fc_norm", "norm")


def attention_modules(encoder: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every attention with fused `qkv` and `proj` Linear sub-modules."""
    return [
        (n, m)
        for n, m in encoder.named_modules()
        if isinstance(getattr(m, "qkv", None), nn.Linear) and isinstance(getattr(m, "proj", None), nn.Linear)
    ]


def bias_parameters(encoder: nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of every bias term: names ending in `bias` (`proj.bias`, `q_bias`, a BatchNorm's bias)."""
    return [(n, p) for n, p in encoder.named_parameters() if n.split(".")[-1].endswith("bias")]


def final_norm(encoder: nn.Module) -> nn.Module | None:
    """The norm after the last block (trained by last_k): a `fc_norm` or `norm` sub-module with
    parameters (LaBraM's fc_norm, Swin's norm), else None (a CNN pooling its last block has none)."""
    for attr in DEFAULT_NORMS:
        module = getattr(encoder, attr, None)
        if isinstance(module, nn.Module) and any(True for _ in module.parameters()):
            return module
    return None


def layer_ids(
    encoder: nn.Module, blocks: Sequence[nn.Module] | None = None, embedding_prefixes: Sequence[str] | None = None
) -> dict[str, int]:
    """Layer index of every parameter, for layer-wise lr decay, with L = len(blocks):

    - a parameter of block i is layer i + 1;
    - one outside the blocks is the stem, layer 0, or the top, layer L + 1. Which: where the encoder
      declares `embedding_prefixes` (the built-in base class does), a name starting with one is the
      stem and every other the top (as LaBraM's official optimizer factory, which puts time_embed at
      the top); without the declaration, by registration order: before the first block's
      parameters is the stem, after it the top.
    """
    blocks = list(encoder.blocks if blocks is None else blocks)
    if embedding_prefixes is None:
        embedding_prefixes = getattr(encoder, "embedding_prefixes", None)
    in_block = {id(p): i + 1 for i, block in enumerate(blocks) for p in block.parameters()}
    top = len(blocks) + 1
    out: dict[str, int] = {}
    seen_block = False
    for name, p in encoder.named_parameters():
        if id(p) in in_block:
            seen_block = True
            out[name] = in_block[id(p)]
        elif embedding_prefixes is not None:
            out[name] = 0 if name.startswith(tuple(embedding_prefixes)) else top
        else:
            out[name] = top if seen_block else 0
    return out
