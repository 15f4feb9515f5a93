"""Video Swin Transformer on torchvision's `SwinTransformer3d`, with adapter-visible attention.

The architecture, patch embedding, patch merging and block are torchvision's. Only the window
attention is replaced: torchvision's `ShiftedWindowAttention3d` hands `self.qkv.weight` and
`self.proj.weight` to a functional, so LoRA and every other wrapping adapter would silently do
nothing (docs/reference/background.md). `ModuleCallWindowAttention3d` computes the same thing with
`self.qkv(x)` and `self.proj(x)` module calls; its state-dict keys are unchanged.

Checkpoints: torchvision `swin3d_*` state dicts, official mmaction2 0.x (`backbone.norm`) and 1.x
(`backbone.norm3`) files, and safetensors of either layout.
"""

from __future__ import annotations

import re
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torchvision.models.swin_transformer import SwinTransformerBlock
from torchvision.models.video.swin_transformer import (
    ShiftedWindowAttention3d,
    SwinTransformer3d,
    _compute_attention_mask_3d,
    _compute_pad_size_3d,
    _get_window_and_shift_size,
)

from encoders.base import (
    KINETICS_MEAN,
    KINETICS_STD,
    VideoEncoder,
    VideoInputSpec,
    check_parameter_memory,
    transformer_parameters,
)
from encoders.checkpoint import unwrap_container
from encoders.presets import Preset, Presets
from encoders.pretrained import PretrainedConfig, with_pretrained_file


class ModuleCallWindowAttention3d(ShiftedWindowAttention3d):
    """torchvision's shifted-window 3-D attention, with qkv and proj run as module calls.

    The body is torchvision's `shifted_window_attention_3d` (0.29) with `F.linear(x, w, b)` replaced
    by the modules; it is copied because the functional takes weights, not modules. It also takes
    learned prefix keys/values (`self.prefix`), shared by every window, with zero position bias
    and no shift mask towards them.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prefix: nn.Module | None = None  # learned keys/values set by the prefix strategy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h, w, c = x.shape
        window_size, shift_size = _get_window_and_shift_size(self.shift_size.copy(), [t, h, w], self.window_size.copy())
        relative_position_bias = self.get_relative_position_bias(window_size)
        num_heads = self.num_heads

        pad = _compute_pad_size_3d((t, h, w), tuple(window_size))
        x = F.pad(x, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
        _, tp, hp, wp, _ = x.shape
        shifted = sum(shift_size) > 0
        if shifted:
            x = torch.roll(x, shifts=(-shift_size[0], -shift_size[1], -shift_size[2]), dims=(1, 2, 3))
        nt, nh, nw = tp // window_size[0], hp // window_size[1], wp // window_size[2]
        num_windows = nt * nh * nw
        x = x.view(b, nt, window_size[0], nh, window_size[1], nw, window_size[2], c)
        x = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(
            b * num_windows, window_size[0] * window_size[1] * window_size[2], c
        )

        qkv = self.qkv(x).reshape(x.size(0), x.size(1), 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        n, p = x.size(1), 0
        if self.prefix is not None:
            pk, pv = self.prefix(x.size(0))
            p = pk.size(2)
            k, v = torch.cat((pk.to(k.dtype), k), dim=2), torch.cat((pv.to(v.dtype), v), dim=2)
            relative_position_bias = F.pad(relative_position_bias, (p, 0))
        attn = (q * (c // num_heads) ** -0.5).matmul(k.transpose(-2, -1)) + relative_position_bias
        if shifted:
            mask = _compute_attention_mask_3d(x, (tp, hp, wp), tuple(window_size), tuple(shift_size))
            mask = F.pad(mask, (p, 0)) if p else mask
            attn = attn.view(x.size(0) // num_windows, num_windows, num_heads, n, n + p)
            attn = (attn + mask.unsqueeze(1).unsqueeze(0)).view(-1, num_heads, n, n + p)
        attn = F.dropout(F.softmax(attn, dim=-1), p=self.attention_dropout, training=self.training)
        x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), c)
        x = F.dropout(self.proj(x), p=self.dropout, training=self.training)

        x = x.view(b, nt, nh, nw, window_size[0], window_size[1], window_size[2], c)
        x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, tp, hp, wp, c)
        if shifted:
            x = torch.roll(x, shifts=(shift_size[0], shift_size[1], shift_size[2]), dims=(1, 2, 3))
        return x[:, :t, :h, :w, :].contiguous()


def _block(*args, attn_layer=None, **kwargs) -> SwinTransformerBlock:
    # SwinTransformer3d passes attn_layer=ShiftedWindowAttention3d explicitly; ours replaces it.
    return SwinTransformerBlock(*args, attn_layer=ModuleCallWindowAttention3d, **kwargs)


class VideoSwinConfig(PretrainedConfig):
    weights_family: ClassVar[str] = "video_swin"
    no_weights_reason: ClassVar[str] = "video_swin takes any architecture; name the checkpoint that fits it"
    embed_dim: int = Field(96, gt=0)
    depths: list[int] = Field(default_factory=lambda: [2, 2, 6, 2], min_length=1)
    num_heads: list[int] = Field(default_factory=lambda: [3, 6, 12, 24], min_length=1)
    window_size: tuple[int, int, int] = (8, 7, 7)
    patch_size: tuple[int, int, int] = (2, 4, 4)
    mlp_ratio: float = Field(4.0, gt=0)
    drop_path: float = Field(0.1, ge=0, lt=1)
    """Stochastic depth of the last block (torchvision's default); off in eval mode."""
    dropout: float = Field(0.0, ge=0, lt=1)
    attention_dropout: float = Field(0.0, ge=0, lt=1)
    frames: int = Field(16, ge=1)
    """Frames sampled uniformly from each clip (the swin3d weights were evaluated on 32)."""
    size: int = Field(224, ge=8)
    """Side of the square center crop."""
    resize: int | None = Field(256, gt=0)
    """Short side before the crop (256 for the released weights); None is size * 256 / 224."""

    @model_validator(mode="after")
    def _consistent(self) -> VideoSwinConfig:
        # torchvision divides by these without checking (ZeroDivisionError deep inside the model)
        for option in ("window_size", "patch_size", "num_heads"):
            values = list(getattr(self, option))
            if min(values) < 1:
                raise ValueError(f"{option} {values} must be positive in every entry")
        if min(self.depths) < 1:
            raise ValueError(f"depths {self.depths}: every stage needs at least one block")
        if sum(self.depths) < 2:  # torchvision spreads stochastic depth as block_id / (blocks - 1)
            raise ValueError(
                f"depths {self.depths} make one block in all; Video Swin needs at least two "
                f"(e.g. depths [2], or [1, 1] with num_heads for two stages)"
            )
        if len(self.depths) != len(self.num_heads):
            raise ValueError(f"depths {self.depths} and num_heads {self.num_heads} must have one entry per stage")
        for i, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2**i) % heads:
                raise ValueError(f"stage {i} width {self.embed_dim * 2**i} is not divisible by its {heads} heads")
        if self.frames < self.patch_size[0] or self.size < max(self.patch_size[1:]):
            raise ValueError(
                f"frames {self.frames} and size {self.size} are smaller than one patch {list(self.patch_size)}"
            )
        n = sum(transformer_parameters(self.embed_dim * 2**i, d, self.mlp_ratio) for i, d in enumerate(self.depths))
        check_parameter_memory(n, f"embed_dim {self.embed_dim}, depths {self.depths}")
        return self


_MMACTION_BLOCK = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.(.*)$")
_MMACTION_DOWNSAMPLE = re.compile(r"^layers\.(\d+)\.downsample\.(.*)$")


class VideoSwin(VideoEncoder):
    """Video Swin Transformer (torchvision), any architecture; loads mmaction2 and torchvision weights."""

    description = "Video Swin Transformer on torchvision, architecture options; loads mmaction2 and torchvision weights"
    prompt_refusal = (
        "Video Swin attends within shifted local windows of a token grid, so added tokens have no window to join"
    )
    Config = VideoSwinConfig
    conformance_options = {
        "embed_dim": 8,
        "depths": [1, 1],
        "num_heads": [1, 2],
        "window_size": [2, 4, 4],
        "frames": 4,
        "size": 32,
        "drop_path": 0.0,
    }
    conformance_reference = True

    def __init__(self, config: VideoSwinConfig):
        super().__init__(config)
        model = SwinTransformer3d(
            patch_size=list(config.patch_size),
            embed_dim=config.embed_dim,
            depths=list(config.depths),
            num_heads=list(config.num_heads),
            window_size=list(config.window_size),
            mlp_ratio=config.mlp_ratio,
            dropout=config.dropout,
            attention_dropout=config.attention_dropout,
            stochastic_depth_prob=config.drop_path,
            block=_block,
        )
        # Adopt torchvision's parts directly, so state-dict keys are torchvision's (minus the head).
        self.patch_embed, self.pos_drop, self.features, self.norm = (
            model.patch_embed,
            model.pos_drop,
            model.features,
            model.norm,
        )
        self.feature_dim = model.num_features

    @classmethod
    def from_config(cls, config: VideoSwinConfig, **context) -> VideoSwin:
        return super().from_config(with_pretrained_file(config), **context)  # `pretrained: NAME` -> its cache file

    @property
    def blocks(self) -> list[nn.Module]:
        return [block for stage in self.features[0::2] for block in stage]

    def layer_ids(self) -> dict[str, int]:
        """Patch merging belongs to the stage it feeds (its first block's layer)."""
        ids = super().layer_ids()
        first_block, seen = {}, 0
        for stage in range(0, len(self.features), 2):
            first_block[stage] = seen + 1
            seen += len(self.features[stage])
        for name in ids:
            parts = name.split(".")
            if parts[0] == "features" and int(parts[1]) % 2 == 1:
                ids[name] = first_block[int(parts[1]) + 1]
        return ids

    @property
    def input_spec(self) -> VideoInputSpec:
        c = self.cfg
        return VideoInputSpec(frames=c.frames, size=c.size, resize=c.resize, mean=KINETICS_MEAN, std=KINETICS_STD)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        x = self.features(self.pos_drop(self.patch_embed(clip)))  # (B, T', H', W', C)
        return self.norm(x).mean(dim=(1, 2, 3))

    def convert_state_dict(self, obj: object) -> tuple[dict[str, torch.Tensor], list[str]]:
        obj = unwrap_container(obj)
        state, ignored = {}, []
        for key, value in dict(obj).items():
            if not isinstance(value, torch.Tensor):
                ignored.append(key)
                continue
            if key.startswith(("cls_head.", "head.")):
                ignored.append(key)
                continue
            key = key.removeprefix("backbone.")
            if m := _MMACTION_BLOCK.match(key):
                stage, block, rest = m.groups()
                rest = rest.replace("mlp.fc1.", "mlp.0.").replace("mlp.fc2.", "mlp.3.")
                key = f"features.{2 * int(stage)}.{block}.{rest}"
            elif m := _MMACTION_DOWNSAMPLE.match(key):
                key = f"features.{2 * int(m.group(1)) + 1}.{m.group(2)}"
            elif key.startswith("norm3."):  # mmaction2 1.x names the final norm norm3
                key = "norm." + key[len("norm3.") :]
            state[key] = value
        return state, ignored


PRESETS = Presets(
    VideoSwin,
    {
        # torchvision's swin3d_t/s/b builders (the official Video-Swin T/S/B configs); window (8, 7, 7), patch (2, 4, 4)
        "swin3d_t": Preset(
            "Video Swin-T (torchvision swin3d_t, 27.9M parameters without head; pretrained: swin3d-t-k400)",
            pretrained="swin3d-t-k400",
        ),
        "swin3d_s": Preset(
            "Video Swin-S (torchvision swin3d_s, 49.5M parameters without head; pretrained: swin3d-s-k400)",
            pretrained="swin3d-s-k400",
            depths=[2, 2, 18, 2],
        ),
        "swin3d_b": Preset(
            "Video Swin-B (torchvision swin3d_b, 87.6M parameters without head; pretrained: swin3d-b-k400)",
            pretrained="swin3d-b-k400",
            embed_dim=128,
            depths=[2, 2, 18, 2],
            num_heads=[4, 8, 16, 32],
        ),
    },
)

# Where entry points installed before presets became data point (a re-install points at PRESETS).
Swin3DTiny = PRESETS.swin3d_t
Swin3DSmall = PRESETS.swin3d_s
Swin3DBase = PRESETS.swin3d_b
