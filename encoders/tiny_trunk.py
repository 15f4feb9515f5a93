"""The plain transformer trunk that both tiny encoders (tiny_eeg, tiny_video) run on their tokens.

The tiny encoders stand in for LaBraM and Video Swin in tests and demos, with the same input
contracts; they differ only in how they turn input into tokens. Their trunk options, its check and
its blocks (timm's ViT `Block`, with a fused qkv that the adapters reach) are defined here once.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from timm.models.vision_transformer import Block
from torch import nn

from encoders.base import EncoderConfig, drop_path_rates


class TinyTrunkConfig(EncoderConfig):
    dim: int = Field(64, gt=0)
    depth: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    mlp_ratio: float = Field(2.0, gt=0)
    drop_path: float = Field(0.0, ge=0, lt=1)
    """Stochastic depth of the last block; off in eval mode."""

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> TinyTrunkConfig:
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        return self


def trunk_blocks(config: TinyTrunkConfig) -> nn.ModuleList:
    """`depth` pre-norm ViT blocks of width `dim`, stochastic depth rising to `drop_path`."""
    return nn.ModuleList(
        Block(config.dim, config.heads, mlp_ratio=config.mlp_ratio, qkv_bias=True, drop_path=r)
        for r in drop_path_rates(config.drop_path, config.depth)
    )
