"""`synthetic`: paired EEG and video with a planted shared signal, deterministic from a seed.

Each pair has a latent vector z. EEG is a mix of k sources (fixed frequencies and scalp maps)
weighted by z, plus noise; video is a mix of k smooth color patterns with fixed temporal
modulations, weighted by the same z, plus noise. The only link between the two sides is z, so a
correct pipeline learns to retrieve the partner and a broken one (shuffled pairs, frozen everything,
lr 0) stays at chance.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
from pydantic import Field

from peftzoo_data.base import DatasetConfig, PairedData, PairedDataset, group_split

# Sites of the standard 19-channel 10-20 montage (as in TUAB and the LaBraM parity fixture).
DEFAULT_CHANNELS = [
    "FP1",
    "FP2",
    "F7",
    "F3",
    "FZ",
    "F4",
    "F8",
    "T3",
    "C3",
    "CZ",
    "C4",
    "T4",
    "T5",
    "P3",
    "PZ",
    "P4",
    "T6",
    "O1",
    "O2",
]


class SyntheticConfig(DatasetConfig):
    n: int = Field(600, ge=4)
    """Number of pairs."""
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    """Seed of the data; None uses the recipe's seed."""
    channels: list[str] = Field(default_factory=lambda: list(DEFAULT_CHANNELS), min_length=1)
    sfreq: float = Field(200.0, gt=0)
    seconds: float = Field(2.0, gt=0)
    frames: int = Field(8, ge=1)
    height: int = Field(40, ge=4)
    width: int = Field(40, ge=4)
    fps: float = Field(8.0, gt=0)
    latent_dim: int = Field(8, ge=1)
    eeg_signal_uv: float = Field(20.0, ge=0)
    """Amplitude of the planted EEG sources, microvolts."""
    eeg_noise_uv: float = Field(10.0, ge=0)
    video_signal: float = Field(40.0, ge=0)
    """Amplitude of the planted video patterns, in 0..255 intensity units."""
    video_noise: float = Field(10.0, ge=0)
    group_size: int = Field(1, ge=1)
    """Consecutive pairs that form one group (recording)."""


class SyntheticPairs(PairedDataset):
    """Paired EEG/video with a planted shared latent signal, deterministic from a seed."""

    description = "Paired EEG/video with a planted shared latent signal, deterministic from a seed"
    Config = SyntheticConfig
    conformance_options = {"n": 24, "seconds": 1, "frames": 2, "height": 8, "width": 8}

    @classmethod
    def from_config(cls, config: SyntheticConfig, *, seed: int = 0, **context) -> PairedData:
        return generate(config, seed if config.seed is None else config.seed)


def generate(cfg: SyntheticConfig, seed: int) -> PairedData:
    rng = np.random.default_rng(seed)
    n, k, c = cfg.n, cfg.latent_dim, len(cfg.channels)
    t = int(round(cfg.seconds * cfg.sfreq))
    z = rng.standard_normal((n, k)).astype(np.float32)

    # EEG: k sources at whole-Hz frequencies between 3 and 30 Hz, each with a random scalp map.
    freqs = np.linspace(3, min(30, cfg.sfreq / 2 - 1), k).round()
    phases = rng.uniform(0, 2 * np.pi, k)
    maps = rng.standard_normal((k, c)) / np.sqrt(k)
    time = np.arange(t) / cfg.sfreq
    waves = np.sin(2 * np.pi * freqs[:, None] * time[None, :] + phases[:, None])  # (k, T)
    sources = np.einsum("kc,kt->kct", maps, waves).reshape(k, c * t)
    eeg = (z @ sources).reshape(n, c, t) * cfg.eeg_signal_uv
    eeg += rng.standard_normal((n, c, t)) * cfg.eeg_noise_uv
    eeg = eeg.astype(np.float32)

    # Video: k smooth RGB patterns (a coarse 4x4 grid, upsampled), each with its own flicker.
    coarse = rng.standard_normal((k, 4, 4, 3))
    patterns = np.stack([_upsample(p, cfg.height, cfg.width) for p in coarse])  # (k, H, W, 3)
    flicker = 1.0 + 0.5 * np.cos(
        2 * np.pi * (np.arange(k)[:, None] % 3 + 1) * np.arange(cfg.frames)[None, :] / cfg.frames
        + rng.uniform(0, 2 * np.pi, (k, 1))
    )  # (k, F)
    basis = np.einsum("kf,khwc->kfhwc", flicker, patterns).reshape(k, -1)
    video = 128.0 + cfg.video_signal / np.sqrt(k) * (z @ basis).reshape(n, cfg.frames, cfg.height, cfg.width, 3)
    video += rng.standard_normal(video.shape) * cfg.video_noise
    video = np.clip(np.round(video), 0, 255).astype(np.uint8)

    groups = np.arange(n, dtype=np.int64) // cfg.group_size
    return PairedData(
        eeg=eeg,
        video=video,
        sfreq=cfg.sfreq,
        channels=list(cfg.channels),
        fps=cfg.fps,
        groups=groups,
        splits=group_split(groups, cfg.val_fraction, seed),
        fingerprint=hashlib.sha256(
            json.dumps({"synthetic": cfg.model_dump(mode="json"), "seed": seed}, sort_keys=True).encode()
        ).hexdigest(),
    )


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a small (h, w, 3) grid to (height, width, 3)."""
    gh, gw = grid.shape[:2]
    ys, xs = np.linspace(0, gh - 1, height), np.linspace(0, gw - 1, width)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, gh - 1), np.minimum(x0 + 1, gw - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = grid[y0][:, x0] * (1 - wx) + grid[y0][:, x1] * wx
    bottom = grid[y1][:, x0] * (1 - wx) + grid[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy
