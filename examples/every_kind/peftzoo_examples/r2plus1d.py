"""`r2plus1d`: R(2+1)D (Tran et al., CVPR 2018), the 3D-CNN video baseline, as a peftzoo video encoder.

A researcher comparing a video transformer (Video Swin) against a convolutional baseline reaches for
R(2+1)D-18: every 3x3x3 convolution factored into a 1x3x3 spatial and a 3x1x1 temporal one. It is
built from torchvision's own blocks (torchvision.models.video.resnet: BasicBlock, Conv2Plus1D) with
the module names of torchvision's VideoResNet, so torchvision's Kinetics-400 weights file
(`r2plus1d_18-91a641e6.pth`, a local file: nothing is downloaded) loads into the default
architecture. torchvision's `r2plus1d_18()` itself fixes the widths (64 to 512) and the stem, so the
network is assembled here to make widths and depths options (small builds for tests).

It follows the encoder protocol without subclassing peftzoo's encoder bases, and brings its own
`preprocess` (torchvision's video classification preset: uniform frame sampling, short-side resize,
centre crop, Kinetics mean/std), which the core runs per batch when the encoder trains: it declares
no preprocessing split, so no clip cache bypasses it.

BatchNorm statistics stay frozen while it trains (`norm_eval`, mmaction2's option for fine-tuning
video backbones on small batches): the learned state is then exactly its parameters.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field
from torch import nn
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D
from torchvision.transforms.v2 import functional as TF

from encoders.base import VideoInputSpec
from registry.component import ComponentConfig
from registry.errors import UserError

# torchvision's R2Plus1D_18_Weights.KINETICS400_V1 preset
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


class R2Plus1DError(UserError, ValueError):
    """Input or weights the encoder cannot take (frame layout, checkpoint file)."""


class R2Plus1DConfig(ComponentConfig):
    widths: list[int] = Field(default_factory=lambda: [64, 128, 256, 512], min_length=4, max_length=4)
    """Channels of the four stages (R(2+1)D-18: 64, 128, 256, 512); the last is the feature size."""
    layers: list[int] = Field(default_factory=lambda: [2, 2, 2, 2], min_length=4, max_length=4)
    """Residual blocks per stage (R(2+1)D-18: 2, 2, 2, 2; R(2+1)D-34: 3, 4, 6, 3)."""
    stem_width: int = Field(45, ge=1)
    """Channels between the stem's spatial and temporal convolutions (torchvision: 45)."""
    frames: int = Field(16, ge=1)
    """Frames per clip, sampled uniformly from each sample (Kinetics training: 16)."""
    size: int = Field(112, ge=8)
    """Side of the square centre crop (Kinetics: 112)."""
    resize: int | None = None
    """Short side before the crop; None: 128 / 112 of `size`, as torchvision's preset (128 for 112)."""
    norm_eval: bool = True
    """Keep BatchNorm in eval mode while training (frozen statistics, trainable affine parameters)."""
    checkpoint: str | None = None
    """A state dict in torchvision's VideoResNet layout (.pth/.pt of tensors, or .safetensors);
    its classifier `fc.*` is dropped. None: random initialization."""


class R2Plus1D(nn.Module):
    """R(2+1)D video CNN (torchvision's blocks and key layout), pooled over time and space."""

    description = "R(2+1)D-18 video CNN (Tran 2018) on torchvision's blocks; loads torchvision's Kinetics weights file"
    Config = R2Plus1DConfig
    modality = "video"
    conformance_options = {"widths": [4, 8, 8, 16], "layers": [1, 1, 1, 1], "stem_width": 4, "frames": 4, "size": 16}

    def __init__(self, config: R2Plus1DConfig):
        super().__init__()
        self.cfg = config
        self.name = "r2plus1d"
        w = config.widths
        self.stem = nn.Sequential(  # torchvision's R2Plus1dStem, widths as options
            nn.Conv3d(3, config.stem_width, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(config.stem_width),
            nn.ReLU(inplace=True),
            nn.Conv3d(config.stem_width, w[0], kernel_size=(3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(w[0]),
            nn.ReLU(inplace=True),
        )
        inplanes = w[0]
        for i, (planes, blocks) in enumerate(zip(w, config.layers)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", self._stage(inplanes, planes, blocks, stride))
            inplanes = planes
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.feature_dim = w[-1]
        for m in self.modules():  # torchvision's VideoResNet initialization
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        """torchvision's VideoResNet._make_layer for BasicBlock and Conv2Plus1D, any width."""
        downsample = None
        if stride != 1 or inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv3d(
                    inplanes, planes, kernel_size=1, stride=Conv2Plus1D.get_downsample_stride(stride), bias=False
                ),
                nn.BatchNorm3d(planes),
            )
        layers = [BasicBlock(inplanes, planes, Conv2Plus1D, stride, downsample)]
        layers += [BasicBlock(planes, planes, Conv2Plus1D) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    @classmethod
    def from_config(cls, config: R2Plus1DConfig, *, name: str | None = None, **context) -> R2Plus1D:
        model = cls(config)
        model.name = name or model.name
        if config.checkpoint:
            model.load_checkpoint(config.checkpoint)
        return model

    def load_checkpoint(self, path: str) -> None:
        """torchvision's file (or one of this model): every key must fit; the classifier is dropped."""
        file = Path(path).expanduser()
        if not file.is_file():
            raise R2Plus1DError(
                f"r2plus1d checkpoint {str(file)!r} does not exist; give the path of a saved state dict "
                f"(torchvision's r2plus1d_18-91a641e6.pth, or one saved from this model)"
            )
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        resized = [
            f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
            for k in sorted(set(own) & set(state))
            if state[k].shape != own[k].shape
        ]
        if missing or unexpected or resized:
            raise R2Plus1DError(
                f"r2plus1d checkpoint {str(file)!r} does not fit this architecture (widths "
                f"{self.cfg.widths}, layers {self.cfg.layers}): missing {missing[:5]}, unexpected "
                f"{unexpected[:5]}, other shapes {resized[:3]}; build with the options it was saved with"
            )
        self.load_state_dict(state)

    # -- the encoder protocol ---------------------------------------------------------------------
    @property
    def input_spec(self) -> VideoInputSpec:
        return VideoInputSpec(
            frames=self.cfg.frames, size=self.cfg.size, mean=KINETICS_MEAN, std=KINETICS_STD, resize=self.resize_to
        )

    @property
    def resize_to(self) -> int:
        return self.cfg.resize or int(round(self.cfg.size * 128 / 112))

    @property
    def blocks(self) -> list[nn.Module]:
        """The stem, then every residual block, input to output (last_k trains the last ones)."""
        return [self.stem, *self.layer1, *self.layer2, *self.layer3, *self.layer4]

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, T, H, W, 3) or (T, H, W, 3) RGB to normalized float clips (B, 3, frames, size, size):
        `frames` sampled uniformly (repeated when a sample has fewer), short side resized, centre crop,
        [0, 1], Kinetics mean/std; on the frames' device."""
        video = torch.as_tensor(frames)
        if video.ndim == 4:
            video = video.unsqueeze(0)
        if video.ndim != 5 or video.shape[-1] != 3 or video.dtype != torch.uint8:
            raise R2Plus1DError(
                f"r2plus1d takes uint8 RGB frames (B, T, H, W, 3), got {video.dtype} {tuple(video.shape)}"
            )
        index = torch.linspace(0, video.shape[1] - 1, self.cfg.frames, device=video.device).round().long()
        x = video[:, index].permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W): torchvision's layout for video tensors
        x = TF.resize(x, [self.resize_to], antialias=True)
        x = TF.center_crop(x, [self.cfg.size, self.cfg.size])
        x = TF.normalize(TF.to_dtype(x, torch.float32, scale=True), mean=list(KINETICS_MEAN), std=list(KINETICS_STD))
        return x.permute(0, 2, 1, 3, 4).contiguous()  # (B, 3, T, size, size)

    def train(self, mode: bool = True) -> R2Plus1D:
        super().train(mode)
        if mode and self.cfg.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.ndim != 5 or clip.shape[1] != 3:
            raise R2Plus1DError(
                f"r2plus1d takes normalized clips (B, 3, T, H, W) from its preprocess, got {tuple(clip.shape)}"
            )
        x = self.stem(clip)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.pool(x).flatten(1)
