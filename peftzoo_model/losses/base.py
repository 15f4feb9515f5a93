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
    """Base of losses: `loss(eeg, video, groups=None, index=None)` -> scalar; may own learnable parameters.

    State beyond parameters that a resume needs (e.g. prototypes) goes through nn.Module's
    get_extra_state/set_extra_state, so `loss.state_dict()` round-trips it."""

    Config: ClassVar[type[LossConfig]] = LossConfig
    description: ClassVar[str] = ""
    symmetric: ClassVar[bool] = False
    """Whether swapping the sides, loss(video, eeg), gives the same loss; the conformance kit checks a claim."""
    wants_epoch_embeddings: ClassVar[bool] = False
    """Whether the trainer must call `start_epoch` with every training pair's embeddings."""

    @classmethod
    def from_config(cls, config: LossConfig, **context) -> ContrastiveLoss:
        return cls(config)

    def after_optimizer_step(self) -> None:
        """Called after every optimizer step (e.g. to clamp a temperature)."""

    def start_epoch(self, epoch: int, eeg: torch.Tensor, video: torch.Tensor, index: torch.Tensor) -> None:
        """Called before each training epoch (counted from 1), only when `wants_epoch_embeddings`, with the
        L2-normalized float32 embeddings of ALL training pairs (no grad, eval mode, on the training device)
        and their dataset indices (int64). Not called again when a run resumes mid-epoch: keep what
        forward needs in the extra state."""

    def log_values(self) -> dict[str, float]:
        """Scalars worth logging with the training loss (e.g. the logit scale)."""
        return {}

    @abc.abstractmethod
    def forward(
        self,
        eeg: torch.Tensor,
        video: torch.Tensor,
        groups: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scalar loss of paired, L2-normalized embeddings; `groups` holds the pairs' negative ids (their
        stimulus, or the data set's groups where it gives no stimulus): pairs sharing one are not each
        other's negatives. `index` holds the pairs' dataset indices (int64) in training, None in evaluation."""


class LearnedScaleLoss(ContrastiveLoss):
    """Losses with a learnable `logit_scale` (the log of the logit multiplier), clamped after every
    optimizer step at `cfg.max_logit_scale`, and optional masking of pairs of one stimulus.

    In training, the share of off-diagonal logits that masking took out is counted (on the device,
    no sync per step) and logged as `train/masked_share`, on each train line (since the last one) and
    on each epoch line (`epoch_values`): 1.0 means no negative is left and the loss cannot move
    (recipes/preflight.py refuses such a run before it starts)."""

    @property
    def masks_groups(self) -> bool:
        """Whether pairs of one stimulus are kept out of the negatives here (else the sampler separates them)."""
        return self.cfg.mask_same_group

    def count_masked(self, n: int, masked: torch.Tensor | None = None) -> None:
        """Add a training batch of `n` pairs and its (n, n) mask of off-diagonal logits taken out (None:
        none) to the running count."""
        if not self.training:
            return
        taken = None if masked is None else masked.sum()
        for name in ("_masked_count", "_epoch_masked_count"):
            counted = getattr(self, name, None) or [0, 0]
            setattr(self, name, [counted[0] if taken is None else counted[0] + taken, counted[1] + n * (n - 1)])

    def masked_share(self, name: str = "_masked_count") -> float | None:
        """Masked share of off-diagonal logits since the last call (None when no batch was counted); resets."""
        counted = getattr(self, name, None)
        setattr(self, name, None)
        if counted is None or not counted[1]:
            return None
        return float(counted[0]) / counted[1]

    def log_values(self) -> dict[str, float]:
        share = self.masked_share()
        return {} if share is None else {"train/masked_share": share}

    def epoch_values(self) -> dict[str, float]:
        """Scalars of the whole epoch for its epoch line: the masked share over all its batches."""
        share = self.masked_share("_epoch_masked_count")
        return {} if share is None else {"train/masked_share": share}

    def after_optimizer_step(self) -> None:
        with torch.no_grad():
            self.logit_scale.clamp_(0, math.log(self.cfg.max_logit_scale))
