"""Learned key/value prefixes for one attention layer (prefix tuning, Li & Liang 2021).

An attention that supports prefixes has a `prefix` attribute (None until a strategy sets one) and,
when it is set, prepends `prefix(batch)` keys and values to its own before the softmax; queries
are unchanged. With `reparam`, the prefixes are produced by a small MLP from a learned embedding,
the reparameterization the paper found necessary for stable optimization.
"""

from __future__ import annotations

import torch
from torch import nn


class PrefixKV(nn.Module):
    def __init__(self, length: int, dim: int, num_heads: int, reparam_hidden: int | None = None):
        super().__init__()
        self.length, self.dim, self.num_heads = length, dim, num_heads
        if reparam_hidden:
            self.embedding = nn.Parameter(torch.randn(length, dim) * 0.02)
            self.mlp = nn.Sequential(nn.Linear(dim, reparam_hidden), nn.Tanh(), nn.Linear(reparam_hidden, 2 * dim))
        else:
            self.key = nn.Parameter(torch.randn(length, dim) * 0.02)
            self.value = nn.Parameter(torch.randn(length, dim) * 0.02)

    def forward(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (batch, heads, length, head_dim)."""
        if hasattr(self, "mlp"):
            key, value = self.mlp(self.embedding).chunk(2, dim=-1)
        else:
            key, value = self.key, self.value
        shape = (1, self.length, self.num_heads, self.dim // self.num_heads)
        key = key.reshape(shape).transpose(1, 2).expand(batch, -1, -1, -1)
        value = value.reshape(shape).transpose(1, 2).expand(batch, -1, -1, -1)
        return key, value
