"""Shared base of the strategies that are peft tuners (ia3, adalora, loha, lokr), with role targets.

peft adapts whole modules, so on a fused qkv the roles q, k, v come together or not at all. The
tuner is injected into the encoder in place (no PeftModel wrapper, so the encoder keeps its own
forward and its names), and the trainability other strategies set is kept.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator
from torch import nn

if TYPE_CHECKING:  # peft pulls in transformers (seconds per process): imported where a tuner is built
    import peft

from adapters import peft_names
from adapters.strategies.base import Strategy, StrategyConfig, StrategyError, StrategyReport, report_for
from adapters.strategies.targets import RoleTargets, resolve

Role = Literal["q", "k", "v", "o", "mlp"]


class PeftTunerConfig(StrategyConfig):
    targets: list[Role] = Field(default_factory=lambda: ["q", "k", "v", "o"], min_length=1)
    """Roles to adapt: q, k, v (together: the fused qkv), o (attention output), mlp."""
    layers: list[int] | None = None
    """Block indices to adapt (negative from the end); None is all."""

    @field_validator("targets")
    @classmethod
    def _whole_qkv(cls, targets: list[str]) -> list[str]:
        qkv = {"q", "k", "v"} & set(targets)
        if qkv and qkv != {"q", "k", "v"}:
            raise ValueError(
                f"targets {targets} split the fused qkv, which peft adapts as one module; "
                f"name all of q, k, v (or use lora, whose loralib backend adapts parts)"
            )
        return targets


class LycorisConfig(PeftTunerConfig):
    """Options LoHa and LoKr share (peft's LyCORIS tuners)."""

    r: int = Field(8, ge=1)
    alpha: float = Field(8.0, gt=0)
    rank_dropout: float = Field(0.0, ge=0, lt=1)
    module_dropout: float = Field(0.0, ge=0, lt=1)

    def lycoris_options(self, targets: RoleTargets) -> dict:
        """The shared keyword arguments of peft's LoHaConfig and LoKrConfig."""
        return dict(
            r=self.r,
            alpha=self.alpha,
            rank_dropout=self.rank_dropout,
            module_dropout=self.module_dropout,
            target_modules=module_regex(targets.whole),
        )


def module_regex(names: Sequence[str]) -> str:
    """A pattern peft full-matches against module names: exactly these names."""
    return "|".join(re.escape(n) for n in names)


class PeftTuner(Strategy):
    """Base: subclasses give `peft_config(targets)`; `mlp_layers` says which MLP Linears the mlp role means."""

    Config = PeftTunerConfig
    export_format = "peft"
    tuner_class: type | None = None
    mlp_layers: str = "all"

    @abc.abstractmethod
    def peft_config(self, targets: RoleTargets) -> peft.PeftConfig:
        """The peft config of this method for the resolved target modules."""

    def apply(self, encoder: nn.Module) -> StrategyReport:
        import peft

        targets = resolve(encoder, list(self.cfg.targets), self.cfg.layers, who=self.name, mlp_layers=self.mlp_layers)
        self.targeted = targets.all_names()  # the layers its merge() folds
        before = {n: p.requires_grad for n, p in encoder.named_parameters()}
        config = self.peft_config(targets)
        if self.tuner_class is not None:  # keep the tuner: it runs per-step updates (AdaLoRA)
            self.tuner = self.tuner_class(encoder, config, "default")
        else:
            peft.inject_adapter_in_model(config, encoder)
        names = []
        for name, p in encoder.named_parameters():
            base = peft_names.unwrapped(name)
            if base in before:
                p.requires_grad_(before[base])  # the tuner froze everything else; restore
            elif p.requires_grad:
                names.append(name)
        return report_for(self.name, encoder, names)

    def merge(self, encoder: nn.Module) -> int:
        """Fold this tuner's layers into their base weights (peft's own merge) and put the plain layers back."""
        from adapters.strategies.lora.backends import merge

        return merge(encoder, only=set(getattr(self, "targeted", [])))

    def export(self, encoder: nn.Module, directory: Path) -> list[Path]:
        """The tuner in Hugging Face PEFT's adapter format, as `save_pretrained` writes it: on the plain
        base encoder, `peft.PeftModel.from_pretrained(encoder, directory)` gives this encoder's outputs."""
        from adapters.strategies.lora.export import write_peft_adapter
        from adapters.strategies.peft_export import tuner_to_peft

        return write_peft_adapter(directory, *tuner_to_peft(encoder))

    def check_composition(self, others: Sequence[Strategy]) -> None:
        """Two peft tuners share peft's one "default" adapter slot; which layers any two strategies
        wrap (a clash) is checked from their `wrapped_modules()` as they are applied."""
        clash = [o.name for o in others if isinstance(o, PeftTuner)]
        if clash:
            raise StrategyError(
                f"{self.name} and {', '.join(clash)} are both peft tuners, which share peft's one adapter slot; use "
                f"one of them per side"
            )
