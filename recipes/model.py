"""The dual-encoder CLIP model: per side an encoder (adapted by its strategies) and a head.

Embeddings are L2-normalized; the loss owns the temperature. A side whose strategies leave the
encoder frozen keeps the encoder in eval mode even while the model trains, so a frozen encoder
adds no dropout or drop-path noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adapters.strategies.base import StrategyReport
from recipes.losses.base import ContrastiveLoss


class Tower(nn.Module):
    """One side: encoder -> head -> L2 normalization."""

    def __init__(self, encoder: nn.Module, head: nn.Module, report: StrategyReport, strategies: list | None = None):
        super().__init__()
        self.encoder, self.head, self.report = encoder, head, report
        self.strategies = list(strategies or [])
        self.applied: dict = {}  # strategy key -> (strategy, report), across training stages

    def train(self, mode: bool = True) -> "Tower":
        super().train(mode)
        if not self.report.trains_encoder:
            self.encoder.eval()
        return self

    def features(self, *args, **kwargs) -> torch.Tensor:
        return self.encoder(*args, **kwargs)

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return F.normalize(self.head(self.encoder(*args, **kwargs)), dim=-1)


class DualEncoderCLIP(nn.Module):
    """EEG and video towers aligned by a contrastive loss."""

    def __init__(self, eeg: Tower, video: Tower, loss: ContrastiveLoss, channels: list[str]):
        super().__init__()
        self.eeg, self.video, self.loss = eeg, video, loss
        self.channels = tuple(channels)
        self.ever_trainable: set[str] = set()
        """Parameters trainable in any stage so far: what the run's weights file holds."""

    def encode_eeg(self, x: torch.Tensor) -> torch.Tensor:
        return self.eeg(x, channels=self.channels)

    def encode_video(self, clip: torch.Tensor) -> torch.Tensor:
        return self.video(clip)

    def forward(self, eeg: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of EEG (B, C, T) microvolts and preprocessed clips (B, 3, T, H, W)."""
        return self.encode_eeg(eeg), self.encode_video(video)

    def prepare(self, batch: dict[str, torch.Tensor], device: torch.device):
        """(eeg, clip, groups) on `device` from a loader batch.

        Video travels as uint8 frames (4x less to copy than float) and is resized, cropped and
        normalized here, batched, on the training device, not per sample in the loader.
        """
        eeg = batch["eeg"].to(device, non_blocking=True)
        frames = batch["video"].to(device, non_blocking=True)
        groups = batch["group"].to(device, non_blocking=True)
        return eeg, self.video.encoder.preprocess(frames), groups

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def strategies(self) -> list:
        return [*self.eeg.strategies, *self.video.strategies]

    def regularization(self) -> torch.Tensor | None:
        """Sum of the strategies' loss terms (AdaLoRA's orthogonality penalty), or None."""
        terms = [t for s in self.strategies() if (t := s.regularization()) is not None]
        return torch.stack(terms).sum() if terms else None
