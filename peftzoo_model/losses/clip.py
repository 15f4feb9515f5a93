"""`clip`: symmetric InfoNCE with a learnable temperature, as in CLIP / open_clip.

The logit scale is stored as log(1/T), initialized from T=0.07, and clamped in place after every
optimizer step so that logits are never scaled by more than `max_logit_scale` (CLIP's 100).
Pairs of one stimulus (the `groups` ids the loss is given: the data's stimulus ids) are masked out
as negatives: they are not false negatives to push apart. Label smoothing spreads only over the
negatives that remain, which is why the cross-entropy is written out here when it is on; without it
the loss is F.cross_entropy over the masked logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from peftzoo_model.losses import batched
from peftzoo_model.losses.base import LearnedScaleLoss, LossConfig


class ClipLossConfig(LossConfig):
    temperature: float = Field(0.07, gt=0)
    """Initial temperature T (logit scale 1/T)."""
    learnable_temperature: bool = True
    max_logit_scale: float = Field(100.0, gt=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    mask_same_group: bool = True
    """Do not use pairs of one stimulus as each other's negatives (the data's stimulus ids; a data set
    without them gives its groups)."""


def smoothed_nll(logits: torch.Tensor, valid: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Mean cross-entropy of rows of `logits` against the diagonal, over `valid` columns only."""
    logits = logits.masked_fill(~valid, float("-inf"))
    logp = torch.log_softmax(logits, dim=1).masked_fill(~valid, 0.0)
    diag = torch.diagonal(logp)
    if smoothing == 0:
        return -diag.mean()
    n_valid = valid.sum(dim=1).clamp(min=1)
    uniform = logp.sum(dim=1) / n_valid
    return -((1 - smoothing) * diag + smoothing * uniform).mean()


class ClipLoss(LearnedScaleLoss):
    """Symmetric InfoNCE (CLIP) with learnable, clamped temperature and same-group masking."""

    description = "Symmetric InfoNCE (CLIP) with learnable, clamped temperature and same-group masking"
    Config = ClipLossConfig
    symmetric = True  # the mean of both directions' cross-entropies

    def __init__(self, config: ClipLossConfig):
        super().__init__()
        self.cfg = config
        init = torch.tensor(math.log(1.0 / config.temperature), dtype=torch.float32)
        self.logit_scale = nn.Parameter(init, requires_grad=config.learnable_temperature)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp()

    def log_values(self) -> dict[str, float]:
        scale = self.logit_scale.detach()
        return {"logit_scale": float(scale.exp()), "log_logit_scale": float(scale), **super().log_values()}

    def batched_forward(
        self, params: dict[str, torch.Tensor], eeg: torch.Tensor, video: torch.Tensor, groups: torch.Tensor | None
    ) -> torch.Tensor:
        """T trials' losses at once (peftzoo_model/losses/batched.py: it joins batched sweeps)."""
        return batched.stacked_clip_loss(params["logit_scale"].exp(), eeg, video, groups, self.cfg)

    def batched_after_step(self, params: dict[str, torch.Tensor], active: torch.Tensor, members: list) -> None:
        batched.clamp_logit_scales(params["logit_scale"], active, members)

    def forward(
        self,
        eeg: torch.Tensor,
        video: torch.Tensor,
        groups: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        logits = self.scale() * eeg.float() @ video.float().t()
        n = logits.shape[0]
        masked = None
        if groups is not None and self.cfg.mask_same_group:
            masked = groups[:, None] == groups[None, :]  # symmetric: it masks both directions alike
            masked.fill_diagonal_(False)
            self.count_masked(n, masked)
        elif groups is not None:
            self.count_masked(n)
        s = self.cfg.label_smoothing
        if s == 0:  # cross-entropy over the negatives left: one fused op per direction (a third quicker)
            if masked is not None:
                logits = logits.masked_fill(masked, float("-inf"))
            target = torch.arange(n, device=logits.device)
            return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
        valid = torch.ones(n, n, dtype=torch.bool, device=logits.device) if masked is None else ~masked
        return 0.5 * (smoothed_nll(logits, valid, s) + smoothed_nll(logits.t(), valid.t(), s))
