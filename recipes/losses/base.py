"""What a contrastive loss component is: an nn.Module over paired, L2-normalized embeddings."""

from __future__ import annotations

import abc
import math

from typing import ClassVar

import torch
from torch import nn

from registry.component import ComponentConfig


class LossConfig(ComponentConfig):
    """Options every loss has (none yet)."""


class ContrastiveLoss(nn.Module, metaclass=abc.ABCMeta):
    """Base of losses: `loss(eeg, video, groups=None)` -> scalar; may own learnable parameters."""

    Config: ClassVar[type[LossConfig]] = LossConfig
    description: ClassVar[str] = ""

    @classmethod
    def from_config(cls, config: LossConfig, **context) -> "ContrastiveLoss":
        return cls(config)

    def after_optimizer_step(self) -> None:
        """Called after every optimizer step (e.g. to clamp a temperature)."""

    def log_values(self) -> dict[str, float]:
        """Scalars worth logging with the training loss (e.g. the logit scale)."""
        return {}

    @abc.abstractmethod
    def forward(self, eeg: torch.Tensor, video: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar loss of paired, L2-normalized embeddings; `groups` marks pairs of one recording."""


class LearnedScaleLoss(ContrastiveLoss):
    """Losses with a learnable `logit_scale` (the log of the logit multiplier), clamped after every
    optimizer step at `cfg.max_logit_scale`, and optional masking of same-group pairs."""

    @property
    def masks_groups(self) -> bool:
        """Whether same-group pairs are kept out of the negatives here (else the sampler separates them)."""
        return self.cfg.mask_same_group

    def after_optimizer_step(self) -> None:
        with torch.no_grad():
            self.logit_scale.clamp_(0, math.log(self.cfg.max_logit_scale))
