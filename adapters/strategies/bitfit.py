"""`bitfit` (Ben Zaken et al., ACL 2022): only bias terms of the encoder train.

Bias terms are parameters whose name ends in `bias`: linear, conv and norm biases and LaBraM's
separate `q_bias`/`v_bias`. Swin's relative position bias table is a learned attention bias, not a
bias vector; it is left out unless `relative_position_bias` is set (it is 1.2% of swin3d_t).
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from adapters.strategies import encoder_parts
from adapters.strategies.base import Strategy, StrategyConfig, StrategyReport, report_for, unfreeze


class BitFitConfig(StrategyConfig):
    qv_bias: bool = True
    """Create zero q/v biases in attentions that have none (LaBraM's released weights), so the query
    bias, BitFit's most useful term, exists; the output is unchanged until it trains."""
    relative_position_bias: bool = False
    """Also train Swin's relative_position_bias_table."""
    lr_scale: float = Field(1.0, gt=0)


class BitFit(Strategy):
    """BitFit: only bias terms train (q/v biases included; Swin's position-bias table optional)."""

    description = "BitFit: only bias terms train (q/v biases included; Swin's position-bias table optional)"
    Config = BitFitConfig

    def apply(self, encoder: nn.Module) -> StrategyReport:
        if self.cfg.qv_bias:
            for _, attn in encoder_parts.attention_modules(encoder):
                if getattr(attn, "q_bias", 0) is None and hasattr(attn, "add_qv_bias"):
                    attn.add_qv_bias()
        params = [p for _, p in encoder_parts.bias_parameters(encoder)]
        if self.cfg.relative_position_bias:
            params += [p for n, p in encoder.named_parameters() if n.endswith("relative_position_bias_table")]
        names = unfreeze(encoder, params)
        return report_for(self.name, encoder, names, lr_scale={n: self.cfg.lr_scale for n in names})
