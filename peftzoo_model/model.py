"""The dual-encoder CLIP model: per side an encoder (adapted by its strategies) and a head.

Embeddings are L2-normalized; the loss owns the temperature. A side whose strategies leave the
encoder frozen keeps the encoder in eval mode even while the model trains, so a frozen encoder
adds no dropout or drop-path noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adapters import peft_names
from adapters.strategies.base import StrategyReport
from peftzoo_model.losses.base import ContrastiveLoss


class Tower(nn.Module):
    """One side: encoder -> head -> L2 normalization."""

    def __init__(self, encoder: nn.Module, head: nn.Module, report: StrategyReport, strategies: list | None = None):
        super().__init__()
        self.encoder, self.head, self.report = encoder, head, report
        self.strategies = list(strategies or [])
        self.applied: dict = {}  # strategy key -> (strategy, report), across training stages

    def train(self, mode: bool = True) -> Tower:
        if self.report.trains_encoder:
            return super().train(mode)
        # A frozen encoder stays in eval mode; not walking its hundreds of modules at every
        # train/eval switch (each epoch and evaluation) keeps head-only epochs cheap.
        self.training = mode
        self.head.train(mode)
        if self.encoder.training:
            self.encoder.eval()
        return self

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Embeddings from encoder features computed earlier (the frozen-feature cache)."""
        return F.normalize(self.head(features), dim=-1)

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
        self.cached: dict[str, torch.Tensor] = {}
        """Side -> features (N, D) of its frozen encoder for every pair, used instead of running it."""

    def encode_eeg(self, x: torch.Tensor) -> torch.Tensor:
        return self.eeg(x, channels=self.channels)

    def encode_video(self, clip: torch.Tensor) -> torch.Tensor:
        return self.video(clip)

    def forward(self, eeg: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of EEG (B, C, T) microvolts and preprocessed clips (B, 3, T, H, W)."""
        return self.encode_eeg(eeg), self.encode_video(video)

    def embed_batch(self, batch: dict[str, torch.Tensor], device: torch.device):
        """(eeg embeddings, video embeddings, negative ids) of a loader batch, on `device`.

        The ids are what the loss masks: the pairs' stimulus ids, or their groups where a batch carries
        no stimulus (a plugin data set's own loader).

        A side with cached features looks them up by pair index. Otherwise video travels as uint8
        frames (4x less to copy than float) and is resized, cropped and normalized here, batched, on
        the training device, not per sample in the loader; frames already at the encoder's input
        size (peftzoo_engine/video_cache.py) are only normalized.
        """
        groups = batch["stimulus" if "stimulus" in batch else "group"].to(device, non_blocking=True)
        index = batch["index"].to(device, non_blocking=True)
        if "eeg" in self.cached:
            e = self.eeg.from_features(self.cached["eeg"][index])
        else:
            e = self.encode_eeg(batch["eeg"].to(device, non_blocking=True))
        if "video" in self.cached:
            v = self.video.from_features(self.cached["video"][index])
        elif "video_at_input_size" in batch:
            clips = batch["video_at_input_size"].to(device, non_blocking=True)
            # only data whose encoder declared the split has clips at input size (video_cache.split_preprocessing)
            v = self.encode_video(self.video.encoder.preprocessing.normalize(clips))
        else:
            v = self.encode_video(self.video.encoder.preprocess(batch["video"].to(device, non_blocking=True)))
        return e, v, groups

    def follow_renames(self) -> None:
        """Keep `ever_trainable` naming live parameters after a strategy wrapped layers trained earlier:
        peft moves a wrapped layer's weight and bias under `base_layer` (fc2.bias -> fc2.base_layer.bias)."""
        params = dict(self.named_parameters())
        self.ever_trainable = {peft_names.current(n, params) for n in self.ever_trainable}

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def strategies(self) -> list:
        return [*self.eeg.strategies, *self.video.strategies]

    def regularization(self) -> torch.Tensor | None:
        """Sum of the strategies' loss terms (AdaLoRA's orthogonality penalty), or None."""
        terms = [t for s in self.strategies() if (t := s.regularization()) is not None]
        return torch.stack(terms).sum() if terms else None
