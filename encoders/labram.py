"""LaBraM (Jiang et al., ICLR 2024): our implementation of the official `NeuralTransformer`.

Matches `modeling_finetune.py` of 935963004/LaBraM with mean pooling (the fine-tuning default):
temporal-conv patch embedding of 1-s patches, a spatial embedding per 10-20 channel name (row 0 is
CLS), a time embedding per patch, pre-norm blocks with layer scale, a bias-free fused qkv plus
optional q/v biases, per-head q/k LayerNorm, and `fc_norm` over the mean of the patch tokens.

One deliberate difference: attention runs `self.qkv(x)` and `self.proj(x)` as module calls (the
official code reads `self.qkv.weight` through F.linear), so LoRA and other wrapping adapters act on
it; the maths is the same (the q/v biases are added after the call).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from timm.layers import DropPath, Mlp, trunc_normal_
from torch import nn

from encoders.base import (
    EEGEncoder,
    EEGInputSpec,
    check_parameter_memory,
    drop_path_rates,
    transformer_parameters,
)
from encoders.channels import N_USABLE
from encoders.checkpoint import unwrap_container
from encoders.presets import Preset, Presets
from encoders.pretrained import PretrainedConfig, with_pretrained_file

# Keys of the released labram-base.pth that a feature encoder does not use.
_PRETRAIN_ONLY = ("mask_token", "lm_head.", "norm.", "head.", "logit_scale", "projection_head.")


class LaBraMConfig(PretrainedConfig):
    weights_family: ClassVar[str] = "labram"
    embed_dim: int = Field(200, gt=0)
    depth: int = Field(12, ge=1)
    num_heads: int = Field(10, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)
    conv_channels: int = Field(8, ge=4)
    """Channels of the temporal convolutions; embed_dim must be 25 x this (200-sample patches)."""
    qkv_bias: bool = False
    """Separate q and v biases (the released weights have none)."""
    init_values: float = Field(0.1, gt=0)
    """Layer-scale initialization."""
    drop_path: float = Field(0.1, ge=0, lt=1)
    """Stochastic depth of the last block (LaBraM fine-tunes with 0.1); off in eval mode."""
    attn_drop: float = Field(0.0, ge=0, lt=1)
    drop: float = Field(0.0, ge=0, lt=1)
    max_patches: int = Field(16, ge=1, le=16)
    """Longest window in 1-s patches (LaBraM's time embedding has 16 rows)."""

    @model_validator(mode="after")
    def _consistent(self) -> LaBraMConfig:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.conv_channels % 4:
            raise ValueError(f"conv_channels {self.conv_channels} must be a multiple of 4 (GroupNorm of 4 groups)")
        if self.embed_dim != 25 * self.conv_channels:
            raise ValueError(
                f"embed_dim {self.embed_dim} must equal 25 x conv_channels ({25 * self.conv_channels}): "
                f"the temporal convolutions turn 200 samples into 25 steps of conv_channels features"
            )
        check_parameter_memory(
            transformer_parameters(self.embed_dim, self.depth, self.mlp_ratio),
            f"embed_dim {self.embed_dim}, depth {self.depth}",
        )
        return self


class TemporalConv(nn.Module):
    """Three temporal convolutions (GroupNorm, GELU) turning each 200-sample patch into 25 x C features."""

    def __init__(self, out_chans: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, out_chans, kernel_size=(1, 15), stride=(1, 8), padding=(0, 7))
        self.gelu1 = nn.GELU()
        self.norm1 = nn.GroupNorm(4, out_chans)
        self.conv2 = nn.Conv2d(out_chans, out_chans, kernel_size=(1, 3), padding=(0, 1))
        self.gelu2 = nn.GELU()
        self.norm2 = nn.GroupNorm(4, out_chans)
        self.conv3 = nn.Conv2d(out_chans, out_chans, kernel_size=(1, 3), padding=(0, 1))
        self.norm3 = nn.GroupNorm(4, out_chans)
        self.gelu3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, a, t = x.shape  # batch, channels, patches, samples
        x = x.reshape(b, 1, n * a, t)
        x = self.gelu1(self.norm1(self.conv1(x)))
        x = self.gelu2(self.norm2(self.conv2(x)))
        x = self.gelu3(self.norm3(self.conv3(x)))  # (B, C, N*A, 25)
        return x.permute(0, 2, 3, 1).reshape(b, n * a, -1)  # 'B C NA T -> B NA (T C)'


class LaBraMAttention(nn.Module):
    """Multi-head attention with fused bias-free qkv, optional q/v biases and per-head q/k LayerNorm."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, attn_drop: float, proj_drop: float):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.q_norm = nn.LayerNorm(head_dim, eps=1e-6)
        self.k_norm = nn.LayerNorm(head_dim, eps=1e-6)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.prefix: nn.Module | None = None  # learned keys/values set by the prefix strategy

    def add_qv_bias(self) -> None:
        """Create zero q/v biases where the model has none (the released weights): output unchanged."""
        if self.q_bias is None:
            dim = self.proj.in_features
            self.q_bias = nn.Parameter(torch.zeros(dim, device=self.proj.weight.device, dtype=self.proj.weight.dtype))
            self.v_bias = nn.Parameter(torch.zeros_like(self.q_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x)  # a module call, so wrapping adapters take effect
        if self.q_bias is not None:
            qkv = qkv + torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q).type_as(v), self.k_norm(k).type_as(v)
        if self.prefix is not None:
            pk, pv = self.prefix(b)
            k, v = torch.cat((pk.to(k.dtype), k), dim=2), torch.cat((pv.to(v.dtype), v), dim=2)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))


class LaBraMBlock(nn.Module):
    """Pre-norm transformer block with layer scale (BEiT-v2 style)."""

    def __init__(self, cfg: LaBraMConfig, drop_path: float):
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = LaBraMAttention(dim, cfg.num_heads, cfg.qkv_bias, cfg.attn_drop, cfg.drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio), act_layer=nn.GELU, drop=cfg.drop)
        self.gamma_1 = nn.Parameter(cfg.init_values * torch.ones(dim))
        self.gamma_2 = nn.Parameter(cfg.init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


class LaBraM(EEGEncoder):
    """LaBraM EEG transformer (ICLR 2024), any size; loads the official labram-base.pth. Presets: PRESETS below."""

    description = "LaBraM EEG transformer (ICLR 2024), architecture of the official code; loads labram-base.pth"
    Config = LaBraMConfig
    conformance_options = {"depth": 1, "embed_dim": 100, "num_heads": 2, "conv_channels": 4, "drop_path": 0.0}
    patch_samples = 200
    sfreq = 200.0
    prompt_slot = 1  # prompt tokens go after CLS
    patch_numel = 200  # samples per patch (VPT's prompt init bound)

    def __init__(self, config: LaBraMConfig):
        super().__init__(config)
        d = config.embed_dim
        self.feature_dim = d
        self.patch_embed = TemporalConv(config.conv_channels)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, N_USABLE + 1, d))
        self.time_embed = nn.Parameter(torch.zeros(1, 16, d))
        self.pos_drop = nn.Dropout(config.drop)
        self.blocks = nn.ModuleList(LaBraMBlock(config, r) for r in drop_path_rates(config.drop_path, config.depth))
        self.fc_norm = nn.LayerNorm(d, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        """The official initialization (used when no checkpoint is loaded)."""
        for p in (self.pos_embed, self.time_embed, self.cls_token):
            trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for layer_id, block in enumerate(self.blocks, start=1):
            block.attn.proj.weight.data.div_(math.sqrt(2.0 * layer_id))
            block.mlp.fc2.weight.data.div_(math.sqrt(2.0 * layer_id))

    @classmethod
    def from_config(cls, config: LaBraMConfig, **context) -> LaBraM:
        return super().from_config(with_pretrained_file(config), **context)  # `pretrained: NAME` -> its cache file

    @property
    def input_spec(self) -> EEGInputSpec:
        return EEGInputSpec(sfreq=self.sfreq, patch_samples=self.patch_samples, max_patches=self.cfg.max_patches)

    def forward(self, x: torch.Tensor, channels: list[str] | tuple[str, ...]) -> torch.Tensor:
        self.check_input(x, channels)
        b, c, t = x.shape
        a = t // self.patch_samples
        tokens = self.patch_embed((x / 100.0).reshape(b, c, a, self.patch_samples))  # official unit: 0.1 mV
        rows = self.pos_embed[0, self.channel_positions(channels, x.device) + 1]  # (C, D); row 0 is CLS
        spatial = rows[:, None, :].expand(c, a, -1).reshape(c * a, -1)  # channel-major, like the tokens
        temporal = self.time_embed[0, :a][None].expand(c, a, -1).reshape(c * a, -1)
        patches = tokens + spatial + temporal
        cls = self.cls_token.expand(b, -1, -1) + self.pos_embed[:, :1]
        h = self.pos_drop(torch.cat((cls, patches), dim=1))
        for block in self.blocks:
            h = block(h)
        return self.fc_norm(h[:, 1:].mean(dim=1))

    def convert_state_dict(self, obj: object) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Official files: weights under 'model' (or 'module'), backbone under 'student.' when pretrained."""
        obj = unwrap_container(obj, ("model", "module", "state_dict"))
        state, ignored = {}, []
        if isinstance(obj, dict) and any(k.endswith("attn.q_bias") for k in obj):
            for block in self.blocks:  # a checkpoint with q/v biases (qkv_bias fine-tunes, BitFit) gets them
                block.attn.add_qv_bias()
        if isinstance(obj, dict) and any(k.startswith("student.") for k in obj):
            ignored += [k for k in obj if not k.startswith("student.")]
            obj = {k[len("student.") :]: v for k, v in obj.items() if k.startswith("student.")}
        for key, value in dict(obj).items():
            if key.startswith(_PRETRAIN_ONLY) or key.endswith("relative_position_index"):
                ignored.append(key)
            else:
                state[key] = value
        return state, ignored

    def expected_missing(self) -> tuple[str, ...]:
        """fc_norm and q/v biases are not in the pretraining checkpoint; they start at 1/0 as officially."""
        return ("fc_norm.", "attn.q_bias", "attn.v_bias")


PRESETS = Presets(
    LaBraM,
    {
        # architecture numbers of the official labram_{base,large,huge}_patch200_200
        "labram_base": Preset(
            "LaBraM-Base EEG transformer (5.8M parameters; pretrained: labram-base, released weights)",
            pretrained="labram-base",
        ),
        "labram_large": Preset(
            "LaBraM-Large EEG transformer (46M parameters; weights not released)",
            no_weights="LaBraM-Large weights were not released",
            embed_dim=400,
            depth=24,
            num_heads=16,
            conv_channels=16,
        ),
        "labram_huge": Preset(
            "LaBraM-Huge EEG transformer (369M parameters; weights not released)",
            no_weights="LaBraM-Huge weights were not released",
            embed_dim=800,
            depth=48,
            num_heads=16,
            conv_channels=32,
        ),
    },
)

# Where entry points installed before presets became data point (a re-install points at PRESETS).
LaBraMBase = PRESETS.labram_base
LaBraMLarge = PRESETS.labram_large
LaBraMHuge = PRESETS.labram_huge
