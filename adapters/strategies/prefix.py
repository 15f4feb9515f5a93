"""`prefix`: prefix tuning (Li & Liang 2021), learned keys and values prepended in attention layers.

Works on attentions with a prefix slot: LaBraM's, and Video Swin's window attention (the prefix is
shared by all windows, with zero relative-position bias towards it). peft's prefix tuning needs a
Hugging Face model, so this is our own, small module (adapters/prefix.py).
"""

from __future__ import annotations

from pydantic import Field, field_validator
from torch import nn

from adapters.prefix import PrefixKV
from adapters.strategies.base import Strategy, StrategyConfig, StrategyError, StrategyReport, report_for
from adapters.strategies.targets import check_layers_option, choose_blocks


class PrefixConfig(StrategyConfig):
    length: int = Field(10, ge=1)
    """Prefix tokens per attention layer."""
    layers: list[int] | None = None
    """Block indices to give prefixes (negative from the end; each must exist); None is all."""

    @field_validator("layers")
    @classmethod
    def _layers_adapt_something(cls, layers: list[int] | None) -> list[int] | None:
        return check_layers_option(layers)

    reparam_hidden: int | None = Field(None, ge=1)
    """Produce the prefixes with an MLP of this width (the paper's reparameterization); None learns them directly."""
    lr_scale: float = Field(1.0, gt=0)


class Prefix(Strategy):
    """Prefix tuning: learned key/value prefixes in the attention of the chosen blocks."""

    description = "Prefix tuning: learned key/value prefixes in attention layers (LaBraM, Video Swin), optional MLP"
    Config = PrefixConfig

    def apply(self, encoder: nn.Module) -> StrategyReport:
        blocks = list(encoder.blocks)
        chosen = choose_blocks(encoder, self.cfg.layers, self.name)
        before = {n for n, _ in encoder.named_parameters()}
        for i in chosen:
            attns = [m for m in blocks[i].modules() if hasattr(m, "prefix") and hasattr(m, "qkv")]
            if not attns:
                raise StrategyError(
                    f"prefix: the attention of {getattr(encoder, 'name', 'this encoder')} has no prefix slot "
                    f"(supported: labram_*, swin3d_*, video_swin); use lora or bitfit instead"
                )
            for attn in attns:
                dim = attn.qkv.in_features
                attn.prefix = PrefixKV(self.cfg.length, dim, attn.num_heads, self.cfg.reparam_hidden).to(
                    attn.qkv.weight.device
                )
        names = [n for n, _ in encoder.named_parameters() if n not in before]
        return report_for(self.name, encoder, names, lr_scale={n: self.cfg.lr_scale for n in names})
