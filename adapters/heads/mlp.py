"""`mlp`: Linear -> activation -> dropout ... -> Linear, never starting or ending with an activation.

An activation on the encoder output, or a ReLU at the end, pins embeddings to a cone (all cosines
>= 0 for a final ReLU) and was one of the original convergence bugs; the layer order here makes
both impossible.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveInt
from torch import nn

from adapters.heads import batched
from adapters.heads.base import Head, HeadConfig

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class MLPConfig(HeadConfig):
    hidden: list[PositiveInt] = Field(default_factory=lambda: [512], min_length=1)
    """Sizes of the hidden layers."""
    activation: Literal["gelu", "relu", "silu"] = "gelu"
    layer_norm: bool = False
    """LayerNorm on the output (as in NICE's projection); off by default."""


class MLPHead(Head):
    """MLP projection (Linear, activation, dropout, ..., Linear); no activation at either end."""

    description = "MLP projection (Linear, activation, dropout, ..., Linear); no activation at either end"
    Config = MLPConfig

    def __init__(self, config: MLPConfig, *, in_dim: int, out_dim: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(config.dropout)]
        sizes = [in_dim, *config.hidden]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), _ACTIVATIONS[config.activation](), nn.Dropout(config.dropout)]
        layers.append(nn.Linear(sizes[-1], out_dim))
        if config.layer_norm:
            layers.append(nn.LayerNorm(out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def batched_forward(
        self, params: dict[str, torch.Tensor], x: torch.Tensor, trials: int, training: bool
    ) -> torch.Tensor:
        """The head of T trials at once (adapters/heads/batched.py: it joins batched sweeps)."""
        return batched.sequential([(f"net.{i}", m) for i, m in enumerate(self.net)], params, x, trials, training)
