"""`linear`: one Linear layer, as in CLIP and LiT (an MLP gave them no gain)."""

from __future__ import annotations

import torch
from torch import nn

from adapters.heads import batched
from adapters.heads.base import Head, HeadConfig


class LinearHead(Head):
    """Linear projection (dropout, then Linear), as in CLIP."""

    description = "Linear projection (dropout, then Linear), as in CLIP"
    Config = HeadConfig

    def __init__(self, config: HeadConfig, *, in_dim: int, out_dim: int):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.proj = nn.Linear(in_dim, out_dim)
        nn.init.normal_(self.proj.weight, std=in_dim**-0.5)  # CLIP's projection init
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(x))

    def batched_forward(
        self, params: dict[str, torch.Tensor], x: torch.Tensor, trials: int, training: bool
    ) -> torch.Tensor:
        """The head of T trials at once (adapters/heads/batched.py: it joins batched sweeps)."""
        return batched.sequential([("dropout", self.dropout), ("proj", self.proj)], params, x, trials, training)
