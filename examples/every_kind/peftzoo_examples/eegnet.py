"""`eegnet`: EEGNet (Lawhern et al. 2018), the compact CNN baseline, as a peftzoo EEG encoder.

It follows the encoder protocol without subclassing peftzoo's encoder bases: an nn.Module with
`Config`, `description`, `from_config`, `modality`, `feature_dim`, `input_spec`, `blocks` and
`no_weight_decay()`. EEGNet's depthwise spatial filter has one weight per electrode; here the
weights are kept per 10-20 site and picked by the channel names given at call time, so one model
takes any montage (as LaBraM's channel embedding does), and the features are pooled over time, so
it takes any window of at least `min_seconds`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from pydantic import Field
from torch import nn

from encoders.channels import N_USABLE, positions
from registry.component import ComponentConfig
from registry.errors import UserError


class EEGNetInputError(UserError, ValueError):
    """EEG that EEGNet was not built for (sampling rate, window length, channel names)."""


class EEGNetConfig(ComponentConfig):
    sfreq: float = Field(200.0, gt=0)
    """Sampling rate the model is built for (Hz); the temporal kernel spans kernel_seconds at this rate."""
    kernel_seconds: float = Field(0.32, gt=0)
    """Temporal kernel length (EEGNet: 64 samples at 128 Hz = 0.5 s; 0.32 s keeps it short for 1-s windows)."""
    f1: int = Field(8, ge=1)
    """Temporal filters."""
    depth_multiplier: int = Field(2, ge=1)
    """Spatial filters per temporal filter (EEGNet's D)."""
    f2: int = Field(16, ge=1)
    """Pointwise filters after the separable convolution: the feature size."""
    dropout: float = Field(0.25, ge=0, lt=1)
    checkpoint: str | None = None
    """A state dict of this model (.safetensors, or .pt/.pth of tensors); None: random initialization."""


@dataclasses.dataclass(frozen=True)
class EEGNetInputSpec:
    """Microvolts at `sfreq`, windows of at least `min_samples` (two pooling stages need 32)."""

    sfreq: float
    min_samples: int

    def check(self, *, sfreq: float, channels: list[str], n_samples: int, encoder: str) -> None:
        if abs(float(sfreq) - self.sfreq) > 1e-6:
            raise EEGNetInputError(
                f"EEG is sampled at {sfreq:g} Hz but {encoder} is built for {self.sfreq:g} Hz; "
                f"set the encoder's sfreq: {sfreq:g} or resample the data"
            )
        if n_samples < self.min_samples:
            raise EEGNetInputError(
                f"EEG windows of {n_samples} samples are shorter than {encoder}'s "
                f"{self.min_samples}; cut longer windows"
            )
        try:
            positions(list(channels))
        except UserError as exc:
            raise EEGNetInputError(f"{encoder}: {exc}") from None


class EEGNet(nn.Module):
    """EEGNet (Lawhern 2018): temporal conv, depthwise spatial filter per 10-20 site, separable conv."""

    description = "EEGNet (Lawhern 2018) compact CNN, any 10-20 montage, pooled over time"
    Config = EEGNetConfig
    modality = "eeg"
    conformance_options = {"f1": 4, "depth_multiplier": 1, "f2": 8}

    def __init__(self, config: EEGNetConfig):
        super().__init__()
        self.cfg = config
        self.name = "eegnet"
        f1, d, f2 = config.f1, config.depth_multiplier, config.f2
        kernel = max(1, int(round(config.kernel_seconds * config.sfreq)))
        self.feature_dim = f2
        self.temporal = nn.Sequential(
            nn.Conv2d(1, f1, (1, kernel), padding=(0, kernel // 2), bias=False), nn.BatchNorm2d(f1)
        )
        # depthwise spatial filter: d weights per temporal filter per 10-20 site
        self.spatial_weight = nn.Parameter(torch.empty(f1 * d, N_USABLE))
        nn.init.kaiming_uniform_(self.spatial_weight, a=5**0.5)
        self.spatial = nn.Sequential(nn.BatchNorm1d(f1 * d), nn.ELU(), nn.AvgPool1d(4), nn.Dropout(config.dropout))
        self.separable = nn.Sequential(
            nn.Conv1d(f1 * d, f1 * d, 16, padding=8, groups=f1 * d, bias=False),
            nn.Conv1d(f1 * d, f2, 1, bias=False),
            nn.BatchNorm1d(f2),
            nn.ELU(),
            nn.AvgPool1d(8),
            nn.Dropout(config.dropout),
        )
        self.blocks = nn.ModuleList([self.temporal, self.spatial, self.separable])
        self.depth_multiplier = d

    @classmethod
    def from_config(cls, config: EEGNetConfig, *, name: str | None = None, **context) -> EEGNet:
        model = cls(config)
        model.name = name or model.name
        if config.checkpoint:
            model.load_checkpoint(config.checkpoint)
        return model

    def load_checkpoint(self, path: str) -> None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise EEGNetInputError(
                f"eegnet checkpoint {str(file)!r} does not exist; give the path of a saved state dict"
            )
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise EEGNetInputError(
                f"eegnet checkpoint {str(file)!r} does not fit this architecture: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}; build with the options it was saved with"
            )

    @property
    def input_spec(self) -> EEGNetInputSpec:
        return EEGNetInputSpec(sfreq=self.cfg.sfreq, min_samples=32)

    def no_weight_decay(self) -> set[str]:
        """Names exempt from weight decay (timm's convention): the per-site spatial filters, which
        EEGNet regularizes by a max-norm instead (a table per electrode, like an embedding), and
        the batch-norm affine parameters."""
        return {"spatial_weight"} | {n for n, p in self.named_parameters() if p.ndim == 1}

    def forward(self, x: torch.Tensor, channels: list[str] | tuple[str, ...]) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != len(channels):
            raise EEGNetInputError(
                f"eegnet takes (batch, channels, samples) with one name per channel; "
                f"got shape {tuple(x.shape)} and {len(channels)} names"
            )
        sites = torch.tensor(positions(list(channels)), device=x.device)
        h = self.temporal((x / 100.0).unsqueeze(1))  # (B, F1, C, T'); 100 uV -> 1, as LaBraM
        h = h[..., : x.shape[-1]]
        w = self.spatial_weight[:, sites].reshape(h.shape[1], self.depth_multiplier, -1)  # (F1, D, C)
        h = torch.einsum("bfct,fdc->bfdt", h, w).flatten(1, 2)  # (B, F1*D, T)
        h = self.separable(self.spatial(h))
        return h.mean(dim=-1)
