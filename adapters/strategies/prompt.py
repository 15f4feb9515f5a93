"""`prompt`: visual-prompt-tuning-style prompt tokens (Jia et al., ECCV 2022) for token encoders.

Shallow: p learned tokens are inserted once, after the encoder's leading special tokens (LaBraM's
CLS), before the first block. Deep: a fresh set replaces them before every block. They are removed
after the last block, so pooling sees the encoder's own tokens only. Implemented with forward
hooks on the blocks (enough for plain transformer blocks, docs/reference/background.md); encoders state
where prompts go with `prompt_slot`, or why they take none with `prompt_refusal` (Swin's windowed grids).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from adapters.strategies.base import Strategy, StrategyConfig, StrategyError, StrategyReport, report_for


class PromptConfig(StrategyConfig):
    tokens: int = Field(5, ge=1)
    """Prompt tokens (VPT's default 5; it sweeps 1 to 200)."""
    deep: bool = False
    """A fresh set of prompts before every block (VPT-deep) instead of once at the input."""
    dropout: float = Field(0.0, ge=0, lt=1)
    lr_scale: float = Field(1.0, gt=0)


class PromptTokens(nn.Module):
    """The learned prompts, (sets, tokens, dim), and the hooks that put them into the token sequence."""

    def __init__(self, sets: int, tokens: int, dim: int, slot: int, dropout: float, patch_numel: int):
        super().__init__()
        bound = math.sqrt(6.0 / (patch_numel + dim))  # VPT's Xavier-uniform bound
        self.tokens = nn.Parameter(torch.empty(sets, tokens, dim).uniform_(-bound, bound))
        self.slot, self.count = slot, tokens
        self.dropout = nn.Dropout(dropout)

    def insert(self, module: nn.Module, args: tuple) -> tuple:
        x = args[0]
        p = self.dropout(self.tokens[0]).expand(x.size(0), -1, -1).to(x.dtype)
        return (torch.cat((x[:, : self.slot], p, x[:, self.slot :]), dim=1), *args[1:])

    def replacer(self, index: int):
        def hook(module: nn.Module, args: tuple) -> tuple:
            x = args[0]
            p = self.dropout(self.tokens[index]).expand(x.size(0), -1, -1).to(x.dtype)
            end = self.slot + self.count
            return (torch.cat((x[:, : self.slot], p, x[:, end:]), dim=1), *args[1:])

        return hook

    def remove(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return torch.cat((output[:, : self.slot], output[:, self.slot + self.count :]), dim=1)


class Prompt(Strategy):
    """VPT prompt tokens, shallow or deep, for token encoders (LaBraM); refused where they do not apply."""

    description = "VPT prompt tokens, shallow or deep, for token encoders (LaBraM); refused for windowed video encoders"
    Config = PromptConfig

    def apply(self, encoder: nn.Module) -> StrategyReport:
        slot = getattr(encoder, "prompt_slot", None)
        if slot is None:
            reason = getattr(encoder, "prompt_refusal", "it does not declare where prompt tokens go (`prompt_slot`)")
            raise StrategyError(
                f"prompt: {getattr(encoder, 'name', 'this encoder')} takes no prompt tokens ({reason}); "
                f"use prefix, lora or bitfit for it"
            )
        if getattr(encoder, "prompt", None) is not None:
            raise StrategyError("prompt: this encoder has prompts already")
        blocks = list(encoder.blocks)
        cfg = self.cfg
        prompts = PromptTokens(
            len(blocks) if cfg.deep else 1,
            cfg.tokens,
            encoder.feature_dim,
            slot,
            cfg.dropout,
            getattr(encoder, "patch_numel", encoder.feature_dim),
        )
        encoder.prompt = prompts.to(next(encoder.parameters()).device)
        blocks[0].register_forward_pre_hook(prompts.insert)
        if cfg.deep:
            for i, block in enumerate(blocks[1:], start=1):
                block.register_forward_pre_hook(prompts.replacer(i))
        blocks[-1].register_forward_hook(prompts.remove)
        names = ["prompt.tokens"]
        return report_for(self.name, encoder, names, lr_scale={n: cfg.lr_scale for n in names})
