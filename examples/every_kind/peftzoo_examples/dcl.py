"""`dcl`: decoupled contrastive loss (Yeh et al., ECCV 2022), symmetric, with same-group masking.

InfoNCE's denominator holds the positive pair, which couples the positive and negative gradients and
makes small batches learn slowly; DCL drops it: loss_i = -s<e_i, v_i> + log sum_{j != i} exp(s<e_i, v_j>).
Averaged over both directions (EEG->video and video->EEG), so it is symmetric. A row whose
negatives are all masked (same group) has no contrast and is left out of the mean.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from peftzoo_model.losses.base import ContrastiveLoss, LossConfig


class DCLConfig(LossConfig):
    temperature: float = Field(0.1, gt=0)
    learnable_temperature: bool = False
    max_logit_scale: float = Field(100.0, gt=1)
    mask_same_group: bool = True
    """Do not use pairs of one group (recording) as each other's negatives."""


def decoupled_nce(logits: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Per-row DCL of `logits` against the diagonal; rows without negatives give NaN (dropped by the caller)."""
    positive = torch.diagonal(logits)
    denom = torch.logsumexp(logits.masked_fill(~negatives, float("-inf")), dim=1)
    return torch.where(negatives.any(dim=1), denom - positive, torch.full_like(positive, float("nan")))


class DecoupledContrastiveLoss(ContrastiveLoss):
    """Decoupled contrastive loss (Yeh 2022): InfoNCE without the positive in the denominator."""

    description = "Decoupled contrastive loss (Yeh 2022), symmetric, same-group masking"
    Config = DCLConfig
    symmetric = True

    def __init__(self, config: DCLConfig):
        super().__init__()
        self.cfg = config
        init = torch.tensor(math.log(1.0 / config.temperature), dtype=torch.float32)
        self.logit_scale = nn.Parameter(init, requires_grad=config.learnable_temperature)

    def after_optimizer_step(self) -> None:
        with torch.no_grad():
            self.logit_scale.clamp_(0, math.log(self.cfg.max_logit_scale))

    def log_values(self) -> dict[str, float]:
        return {"logit_scale": float(self.logit_scale.detach().exp())}

    def forward(self, eeg, video, groups=None, index=None) -> torch.Tensor:
        logits = self.logit_scale.exp() * eeg.float() @ video.float().t()
        n = logits.shape[0]
        eye = torch.eye(n, dtype=torch.bool, device=logits.device)
        negatives = ~eye
        if groups is not None and self.cfg.mask_same_group:
            negatives &= groups[:, None] != groups[None, :]
        rows = torch.cat([decoupled_nce(logits, negatives), decoupled_nce(logits.t(), negatives.t())])
        kept = rows[~rows.isnan()]
        return kept.mean() if kept.numel() else logits.sum() * 0.0
