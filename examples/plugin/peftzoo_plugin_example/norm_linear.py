"""`norm_linear`: LayerNorm, then a bias-free Linear (ImageBind's modality heads)."""

from __future__ import annotations

import torch
from torch import nn

from adapters.heads.base import Head, HeadConfig


class NormLinearHead(Head):
    """LayerNorm then bias-free Linear, as ImageBind's modality heads."""

    description = "LayerNorm then bias-free Linear, as ImageBind's modality heads"
    Config = HeadConfig

    def __init__(self, config: HeadConfig, *, in_dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.proj = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(self.norm(x)))
