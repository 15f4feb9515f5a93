"""`full`: every encoder parameter trains, at `lr_scale` times the head's lr, with optional layer decay."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field
from torch import nn

from adapters import peft_names
from adapters.strategies import encoder_parts
from adapters.strategies.base import Strategy, StrategyConfig, StrategyError, StrategyReport, report_for


class FullConfig(StrategyConfig):
    lr_scale: float = Field(1.0, gt=0)
    """Encoder learning rate relative to the head's (SigLIP suggests 0.1 for pretrained towers)."""
    layer_decay: float | None = Field(None, gt=0, le=1)
    """Layer-wise lr decay: block i of L gets lr_scale * decay^(L + 1 - (i + 1)); LaBraM uses 0.65."""


class Full(Strategy):
    """Full fine-tuning: every encoder parameter trains, with an lr scale and optional layer decay."""

    description = "Full fine-tuning: every encoder parameter trains, with an lr scale and optional layer-wise decay"
    Config = FullConfig

    def apply(self, encoder: nn.Module) -> StrategyReport:
        # Pretrained weights only: adapters an earlier training stage added stay frozen
        # (docs/guides/training.md, Stages).
        # peft keeps a wrapped layer's pretrained weight under base_layer.
        pretrained = getattr(encoder, "pretrained_parameter_names", None)
        names = [
            n for n, _ in encoder.named_parameters() if pretrained is None or peft_names.unwrapped(n) in pretrained
        ]
        for name in names:
            encoder.get_parameter(name).requires_grad_(True)
        scale = {n: self.cfg.lr_scale for n in names}
        if self.cfg.layer_decay is not None:
            ids = encoder_parts.layer_ids(encoder)
            top = len(encoder.blocks) + 1
            scale = {n: self.cfg.lr_scale * self.cfg.layer_decay ** (top - ids[n]) for n in names}
        return report_for(self.name, encoder, names, lr_scale=scale)

    def check_composition(self, others: Sequence[Strategy]) -> None:
        if others:
            raise StrategyError(
                f"full already trains every encoder parameter; combining it with "
                f"{', '.join(o.name for o in others)} adds nothing; use one or the other"
            )
