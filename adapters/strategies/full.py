"""`full`: every encoder parameter trains, at `lr_scale` times the head's learning rate."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field
from torch import nn

from adapters.strategies.base import Strategy, StrategyConfig, StrategyError, StrategyReport, report_for


class FullConfig(StrategyConfig):
    lr_scale: float = Field(1.0, gt=0)
    """Encoder learning rate relative to the head's (SigLIP suggests 0.1 for pretrained towers)."""


class Full(Strategy):
    """Full fine-tuning: every encoder parameter trains, with an lr scale relative to the head."""

    description = "Full fine-tuning: every encoder parameter trains, with an lr scale relative to the head"
    Config = FullConfig

    def apply(self, encoder: nn.Module) -> StrategyReport:
        encoder.requires_grad_(True)
        names = [n for n, _ in encoder.named_parameters()]
        return report_for(self.name, encoder, names, lr_scale={n: self.cfg.lr_scale for n in names})

    def check_composition(self, others: Sequence[Strategy]) -> None:
        if others:
            raise StrategyError(
                f"full already trains every encoder parameter; combining it with "
                f"{', '.join(o.name for o in others)} adds nothing; use one or the other"
            )
