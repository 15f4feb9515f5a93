"""`tiny_eeg`: a small EEG transformer with LaBraM's input contract, for tests and demos.

Same contract as the real EEG encoders (microvolts in, /100 inside, 1-s patches at 200 Hz,
channel-name embeddings from the 10-20 list, time embeddings, pre-norm timm blocks with fused
qkv, mean pooling), at a size that trains on a laptop CPU in seconds.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from timm.layers import trunc_normal_
from torch import nn

from encoders.base import EEGEncoder, EEGInputSpec, check_parameter_memory, transformer_parameters
from encoders.channels import N_USABLE
from encoders.tiny_trunk import TinyTrunkConfig, trunk_blocks


class TinyEEGConfig(TinyTrunkConfig):
    sfreq: float = Field(200.0, gt=0)
    patch_samples: int = Field(200, gt=0)
    max_patches: int = Field(16, gt=0)

    @model_validator(mode="after")
    def _fits_memory(self) -> TinyEEGConfig:
        check_parameter_memory(
            transformer_parameters(self.dim, self.depth, self.mlp_ratio), f"dim {self.dim}, depth {self.depth}"
        )
        return self


class TinyEEGEncoder(EEGEncoder):
    """Small EEG transformer with LaBraM's input contract (tests and demos)."""

    description = "Small EEG transformer with LaBraM's input contract (tests and demos)"
    Config = TinyEEGConfig
    conformance_options = {"dim": 16, "depth": 1, "heads": 2, "max_patches": 4}
    conformance_reference = True
    prompt_slot = 0  # no CLS: prompt tokens go first
    patch_numel = 200

    def __init__(self, config: TinyEEGConfig):
        super().__init__(config)
        self.feature_dim = config.dim
        self.patch_embed = nn.Linear(config.patch_samples, config.dim)
        self.channel_embed = nn.Parameter(torch.zeros(N_USABLE, config.dim))
        self.time_embed = nn.Parameter(torch.zeros(config.max_patches, config.dim))
        self.blocks = trunk_blocks(config)
        self.fc_norm = nn.LayerNorm(config.dim)
        trunc_normal_(self.channel_embed, std=0.02)
        trunc_normal_(self.time_embed, std=0.02)

    @property
    def input_spec(self) -> EEGInputSpec:
        c = self.cfg
        return EEGInputSpec(sfreq=c.sfreq, patch_samples=c.patch_samples, max_patches=c.max_patches)

    def forward(self, x: torch.Tensor, channels: list[str] | tuple[str, ...]) -> torch.Tensor:
        self.check_input(x, channels)
        b, c, t = x.shape
        a = t // self.cfg.patch_samples
        patches = (x / 100.0).reshape(b, c, a, self.cfg.patch_samples)  # official LaBraM unit: 0.1 mV
        tokens = self.patch_embed(patches)  # (B, C, A, D)
        pos = self.channel_positions(channels, x.device)
        tokens = tokens + self.channel_embed[pos][None, :, None, :] + self.time_embed[:a][None, None, :, :]
        tokens = tokens.reshape(b, c * a, -1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.fc_norm(tokens.mean(dim=1))
