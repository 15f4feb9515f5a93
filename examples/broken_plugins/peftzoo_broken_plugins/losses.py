"""A loss that conforms except for one planted flaw, named in its docstring."""

from __future__ import annotations

import torch
from pydantic import Field

from peftzoo_model.losses.base import ContrastiveLoss, LossConfig


def _standardized_nce(logits: torch.Tensor) -> torch.Tensor:
    """InfoNCE on logits standardized by the spread of each row's negatives (unbiased std)."""
    n = logits.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    negatives = logits[~eye].view(n, n - 1)
    scaled = logits / negatives.std(dim=1, keepdim=True).clamp_min(1e-3)  # std of one value is NaN: the flaw
    return torch.nn.functional.cross_entropy(scaled, torch.arange(n, device=logits.device))


class NanAtBatchOfTwo(ContrastiveLoss):
    """Flaw: standardizes each row of logits by the unbiased std of its negatives, which is NaN when a
    row has one negative (a batch of 2); finite on the usual batch of 8."""

    description = "broken: NaN on a batch of 2 pairs"
    Config = LossConfig
    symmetric = True

    def __init__(self, config: LossConfig):
        super().__init__()
        self.cfg = config

    def forward(self, eeg, video, groups=None, index=None) -> torch.Tensor:
        logits = 10.0 * eeg.float() @ video.float().t()
        return (_standardized_nce(logits) + _standardized_nce(logits.t())) / 2


class HotConfig(LossConfig):
    temperature: float = Field(0.07, gt=0)


def _naive_nce(logits: torch.Tensor) -> torch.Tensor:
    """-log softmax of the diagonal, by exp and sum (no log-sum-exp)."""
    e = logits.exp()
    return -(e.diagonal() / e.sum(dim=1)).log().mean()


class NanAtLowTemperature(ContrastiveLoss):
    """Flaw: softmax by exp and sum instead of log-sum-exp: finite at the default temperature 0.07,
    inf / inf = NaN at 0.01 (exp(100) overflows float32), which a recipe may set."""

    description = "broken: NaN at a low temperature"
    Config = HotConfig
    symmetric = True

    def __init__(self, config: HotConfig):
        super().__init__()
        self.cfg = config

    def forward(self, eeg, video, groups=None, index=None) -> torch.Tensor:
        logits = eeg.float() @ video.float().t() / self.cfg.temperature
        return (_naive_nce(logits) + _naive_nce(logits.t())) / 2
