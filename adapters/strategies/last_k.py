"""`last_k`: the last k blocks and the final norm train; the rest of the encoder stays frozen."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from adapters.strategies import encoder_parts
from adapters.strategies.base import Strategy, StrategyConfig, StrategyError, StrategyReport, report_for, unfreeze


class LastKConfig(StrategyConfig):
    k: int = Field(1, ge=0)
    """Blocks to train, counted from the output; 0 would train nothing and is refused (use head_only)."""
    final_norm: bool = True
    """Also train the norm after the last block."""
    lr_scale: float = Field(1.0, gt=0)


class LastK(Strategy):
    """Last k blocks and the final norm train (k >= 1; head_only trains none)."""

    description = "Last k blocks and the final norm train (LiT-style partial unlocking; k=0 is refused: use head_only)"
    Config = LastKConfig

    def apply(self, encoder: nn.Module) -> StrategyReport:
        blocks = list(encoder.blocks)
        k = self.cfg.k
        if k > len(blocks):
            raise StrategyError(
                f"last_k: k={k} but {getattr(encoder, 'name', 'the encoder')} has {len(blocks)} blocks; "
                f"use k <= {len(blocks)}, or strategy full to train everything"
            )
        if k == 0:
            return StrategyReport(strategy=self.name, trainable=[], num_trainable=0, trains_encoder=False)
        params = [p for block in blocks[len(blocks) - k :] for p in block.parameters()]
        norm = encoder_parts.final_norm(encoder) if self.cfg.final_norm else None
        if norm is not None:
            params += list(norm.parameters())
        names = unfreeze(encoder, params)
        return report_for(self.name, encoder, names, lr_scale={n: self.cfg.lr_scale for n in names})
