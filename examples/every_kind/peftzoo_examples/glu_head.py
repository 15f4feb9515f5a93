"""`glu`: LayerNorm, then a gated linear unit (GLU) projection to the shared space."""

from __future__ import annotations

import torch
from torch import nn

from adapters.heads import batched
from adapters.heads.base import Head, HeadConfig


class GLUHead(Head):
    """LayerNorm then a gated (GLU) projection: out = W1 x * sigmoid(W2 x)."""

    description = "LayerNorm then a gated (GLU) projection to the shared space"
    Config = HeadConfig

    def __init__(self, config: HeadConfig, *, in_dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.proj = nn.Linear(in_dim, 2 * out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.glu(self.proj(self.dropout(self.norm(x))), dim=-1)

    def batched_forward(
        self, params: dict[str, torch.Tensor], x: torch.Tensor, trials: int, training: bool
    ) -> torch.Tensor:
        """T trials' heads at once, feature-major (N last): the hook that lets this head join a batched sweep."""
        x = batched.layer_norm(x, params["norm.weight"], params["norm.bias"], self.norm.eps, trials)
        x = batched.dropout(x, float(self.dropout.p), trials, training)
        value, gate = batched.linear(x, params["proj.weight"], params["proj.bias"]).chunk(2, dim=1)
        return value * torch.sigmoid(gate)  # nn.functional.glu over the feature dimension
