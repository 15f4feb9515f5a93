"""`siglip` (Zhai et al., ICCV 2023): a sigmoid loss on every pair, stronger than softmax at small batches.

Each (eeg_i, video_j) logit is a binary decision, positive on the diagonal: loss =
-sum log sigmoid(label_ij * (t * <e_i, v_j> + b)) / B, with learnable temperature t (init 10, stored as
log t) and bias b (init -10), as open_clip's SigLipLoss. Off-diagonal pairs of one stimulus are left out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from peftzoo_model.losses.base import LearnedScaleLoss, LossConfig


class SigLipConfig(LossConfig):
    init_logit_scale: float = Field(10.0, gt=0)
    """Initial temperature t (SigLIP: 10)."""
    init_logit_bias: float = -10.0
    learnable: bool = True
    max_logit_scale: float = Field(100.0, gt=1)
    mask_same_group: bool = True


class SigLipLoss(LearnedScaleLoss):
    """SigLIP sigmoid loss with learnable temperature and bias; better than softmax at small batch sizes."""

    description = "SigLIP sigmoid loss with learnable temperature and bias; better than softmax at small batch sizes"
    Config = SigLipConfig
    symmetric = True  # a sum over every (eeg, video) pair's sigmoid term, the same either way round

    def __init__(self, config: SigLipConfig):
        super().__init__()
        self.cfg = config
        self.logit_scale = nn.Parameter(torch.tensor(math.log(config.init_logit_scale)), requires_grad=config.learnable)
        self.logit_bias = nn.Parameter(torch.tensor(float(config.init_logit_bias)), requires_grad=config.learnable)

    def log_values(self) -> dict[str, float]:
        return {
            "logit_scale": float(self.logit_scale.detach().exp()),
            "logit_bias": float(self.logit_bias.detach()),
            **super().log_values(),
        }

    def forward(
        self,
        eeg: torch.Tensor,
        video: torch.Tensor,
        groups: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        logits = self.logit_scale.exp() * eeg.float() @ video.float().t() + self.logit_bias
        n = logits.shape[0]
        eye = torch.eye(n, dtype=torch.bool, device=logits.device)
        labels = eye.float() * 2 - 1
        pair_loss = -F.logsigmoid(labels * logits)
        if groups is not None and self.cfg.mask_same_group:
            masked = (groups[:, None] == groups[None, :]) & ~eye
            self.count_masked(n, masked)
            pair_loss = pair_loss.masked_fill(masked, 0.0)
        elif groups is not None:
            self.count_masked(n)
        return pair_loss.sum() / n
