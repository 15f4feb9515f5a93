"""EEG encoders and a head that conform except for one planted flaw each, named in the docstring.

They share one small, correct base: log power in 8 bands per channel, mean over channels, a Linear.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from registry import ComponentConfig, UserError


@dataclasses.dataclass(frozen=True)
class AnyMontage:
    sfreq: float = 200.0

    def check(self, *, sfreq, channels, n_samples, encoder):
        if sfreq != self.sfreq:
            raise UserError(f"{encoder} needs {self.sfreq:g} Hz EEG, got {sfreq:g} Hz; resample the data")


class BandPower(nn.Module):
    """Log power in 8 bands, mean over channels, then a Linear (correct; the flawed ones below change one thing)."""

    description = "Log band power, mean over channels, then a Linear"
    modality = "eeg"

    class Config(ComponentConfig):
        dim: int = 16

    def __init__(self, cfg):
        super().__init__()
        self.cfg, self.feature_dim, self.input_spec = cfg, cfg.dim, AnyMontage()
        self.proj = nn.Linear(8, cfg.dim)
        self.blocks = nn.ModuleList([self.proj])

    @classmethod
    def from_config(cls, config, **context):
        return cls(config)

    def bands(self, x):
        power = torch.fft.rfft(x).abs().pow(2).mean(1, keepdim=True)
        return torch.log1p(nn.functional.adaptive_avg_pool1d(power, 8).squeeze(1))

    def forward(self, x, channels):
        return self.proj(self.bands(x))


class Float64Features(BandPower):
    """Flaw: computes and returns the features in float64 ("for precision"); the float32 heads after it
    stop training at the first step with a dtype mismatch."""

    description = "broken: returns float64 features"

    def forward(self, x, channels):
        return nn.functional.linear(self.bands(x.double()), self.proj.weight.double(), self.proj.bias.double())


class RescalesInputInPlace(BandPower):
    """Flaw: normalizes each window in place (`x /= ...`), changing the caller's batch."""

    description = "broken: rescales its input in place"

    def forward(self, x, channels):
        x /= x.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)
        return self.proj(self.bands(x))


class FixedMontage(BandPower):
    """Flaw: weights its channels with a Linear over exactly 6 channels, but its input_spec accepts any
    montage: every unit check (which probes with 6 channels) passes; a recipe on other data crashes."""

    description = "broken: takes 6 channels but says it takes any montage"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.mix = nn.Linear(6, 1)
        self.blocks = nn.ModuleList([self.mix, self.proj])

    def forward(self, x, channels):
        mixed = self.mix(x.transpose(1, 2)).transpose(1, 2)  # (B, 1, T)
        return self.proj(self.bands(mixed))


class CrashingHead(nn.Module):
    """Flaw: splits its input into groups of 8 features with a reshape that crashes on other sizes
    (a bug, not a refusal): before, the kit reported it as an untagged RuntimeError."""

    description = "broken: crashes on input sizes that are not a multiple of 8"

    class Config(ComponentConfig):
        pass

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.proj = nn.Linear(8, out_dim)

    @classmethod
    def from_config(cls, config, *, in_dim, out_dim, **context):
        return cls(in_dim, out_dim)

    def forward(self, x):
        return self.proj(x.view(x.shape[0], -1, 8).mean(1))
