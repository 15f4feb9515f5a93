"""`head_only`: the encoder stays frozen and in eval mode; only the projection head trains."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from adapters.strategies.base import Strategy, StrategyConfig, StrategyError, StrategyReport


class HeadOnly(Strategy):
    """Frozen encoder in eval mode (no dropout or drop-path noise); only the head trains."""

    description = "Frozen encoder in eval mode (no dropout or drop-path noise); only the head trains"
    Config = StrategyConfig
    trains_nothing_by_design = True
    """The composer refuses every other strategy whose report trains nothing (apply_strategies)."""

    def apply(self, encoder: nn.Module) -> StrategyReport:
        encoder.requires_grad_(False)
        return StrategyReport(strategy=self.name, trainable=[], num_trainable=0, trains_encoder=False)

    def check_composition(self, others: Sequence[Strategy]) -> None:
        if others:
            raise StrategyError(
                f"head_only trains nothing in the encoder and cannot be combined with "
                f"{', '.join(o.name for o in others)}; list only the other strategies (the head always trains)"
            )
