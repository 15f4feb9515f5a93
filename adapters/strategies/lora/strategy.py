"""`lora`: low-rank updates on the roles named (q, k, v, o, mlp), true q/v-only LoRA on a fused qkv."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from adapters import peft_names
from adapters.strategies.base import Strategy, StrategyError, StrategyReport, report_for
from adapters.strategies.lora import backends
from adapters.strategies.lora.config import LoRAConfig
from adapters.strategies.targets import resolve


class LoRA(Strategy):
    """LoRA on roles q, k, v, o, mlp (q/v-only on fused qkv via loralib; DoRA, rsLoRA via peft)."""

    description = "LoRA on roles q, k, v, o, mlp (q/v-only on a fused qkv via loralib; DoRA and rsLoRA via peft)"
    Config = LoRAConfig
    export_format = "peft"

    def backend_for(self, splits_qkv: bool) -> str:
        if self.cfg.backend != "auto":
            return self.cfg.backend
        return "loralib" if splits_qkv else "peft"

    def apply(self, encoder: nn.Module) -> StrategyReport:
        targets = resolve(encoder, list(self.cfg.targets), self.cfg.layers)
        self.targeted = targets.all_names()  # the layers its merge() folds
        before = {n for n, _ in encoder.named_parameters()}
        self.backend = self.backend_for(targets.splits_qkv)
        if self.backend == "loralib":
            backends.inject_loralib(encoder, targets, self.cfg)
        else:
            backends.inject_peft(encoder, targets, self.cfg)
        names = [
            n
            for n, p in encoder.named_parameters()
            if backends.is_lora_parameter(n) and peft_names.unwrapped(n) not in before
        ]
        for name in names:
            encoder.get_parameter(name).requires_grad_(True)
        return report_for(self.name, encoder, names)

    def merge(self, encoder: nn.Module) -> int:
        """Fold this strategy's LoRA layers (either backend) into their base weights; plain layers back."""
        return backends.merge(encoder, only=set(getattr(self, "targeted", [])))

    def export(self, encoder: nn.Module, directory: Path) -> list[Path]:
        """Its LoRA layers (either backend) in Hugging Face PEFT's adapter format: on the plain base
        encoder, `peft.PeftModel.from_pretrained(encoder, directory)` gives this encoder's outputs
        (a q/v-only LoRA on a fused qkv becomes a rank-2r LoRA on qkv, lora/export.py)."""
        from adapters.strategies.lora.export import to_peft, write_peft_adapter

        return write_peft_adapter(directory, *to_peft(encoder, only=set(getattr(self, "targeted", []))))

    def check_composition(self, others: Sequence[Strategy]) -> None:
        if any(isinstance(o, LoRA) for o in others):
            raise StrategyError("lora is listed twice; give one lora entry with all its targets")
