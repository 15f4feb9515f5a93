"""`tiny_video`: a small video transformer with Video Swin's input contract, for tests and demos.

Takes (B, 3, T, H, W) normalized clips like the real video encoders, embeds 3-D patches with a
Conv3d, runs pre-norm timm blocks with fused qkv and mean-pools, at a size that trains on CPU.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from timm.layers import trunc_normal_
from torch import nn

from encoders.base import (
    KINETICS_MEAN,
    KINETICS_STD,
    InputSpecError,
    VideoEncoder,
    VideoInputSpec,
    check_parameter_memory,
    transformer_parameters,
)
from encoders.tiny_trunk import TinyTrunkConfig, trunk_blocks


class TinyVideoConfig(TinyTrunkConfig):
    patch_size: tuple[int, int, int] = (2, 8, 8)
    frames: int = Field(8, gt=0)
    """Frames sampled uniformly from each clip."""
    size: int = Field(32, gt=0)
    """Side of the square center crop."""
    resize: int | None = Field(None, gt=0)
    """Short side before cropping; None is size * 256 / 224."""

    @model_validator(mode="after")
    def _fits_patches(self) -> TinyVideoConfig:
        pt, ph, pw = self.patch_size
        if min(self.patch_size) < 1:
            raise ValueError(f"patch_size {list(self.patch_size)} must be positive in every dimension")
        if self.frames % pt or self.size % ph or self.size % pw:
            raise ValueError(
                f"frames {self.frames} and size {self.size} must be multiples of the patch {self.patch_size}"
            )
        tokens = (self.frames // pt) * (self.size // ph) * (self.size // pw)
        check_parameter_memory(
            transformer_parameters(self.dim, self.depth, self.mlp_ratio) + (tokens + 3 * pt * ph * pw) * self.dim,
            f"dim {self.dim}, depth {self.depth}, {tokens} patches",
        )
        return self


class TinyVideoEncoder(VideoEncoder):
    """Small video transformer with Video Swin's input contract (tests and demos)."""

    description = "Small video transformer with Video Swin's input contract (tests and demos)"
    Config = TinyVideoConfig
    conformance_options = {"dim": 16, "depth": 1, "heads": 2, "frames": 4, "size": 16}
    prompt_slot = 0  # a plain token sequence with no CLS: VPT prompts go first, pooling drops them

    @property
    def patch_numel(self) -> int:
        """Values per 3-D patch (VPT's prompt init bound)."""
        pt, ph, pw = self.cfg.patch_size
        return 3 * pt * ph * pw

    def __init__(self, config: TinyVideoConfig):
        super().__init__(config)
        pt, ph, pw = config.patch_size
        self.feature_dim = config.dim
        self.grid = (config.frames // pt, config.size // ph, config.size // pw)
        self.patch_embed = nn.Conv3d(3, config.dim, kernel_size=config.patch_size, stride=config.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1] * self.grid[2], config.dim))
        self.blocks = trunk_blocks(config)
        self.fc_norm = nn.LayerNorm(config.dim)
        trunc_normal_(self.pos_embed, std=0.02)

    @property
    def input_spec(self) -> VideoInputSpec:
        c = self.cfg
        return VideoInputSpec(frames=c.frames, size=c.size, resize=c.resize, mean=KINETICS_MEAN, std=KINETICS_STD)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        if clip.ndim != 5 or tuple(clip.shape[1:]) != (3, c.frames, c.size, c.size):
            raise InputSpecError(
                f"tiny_video takes clips (B, 3, {c.frames}, {c.size}, {c.size}), got {tuple(clip.shape)}; "
                f"turn uint8 frames into that with encoder.preprocess(frames)"
            )
        tokens = self.patch_embed(clip).flatten(2).transpose(1, 2) + self.pos_embed
        for block in self.blocks:
            tokens = block(tokens)
        return self.fc_norm(tokens.mean(dim=1))
