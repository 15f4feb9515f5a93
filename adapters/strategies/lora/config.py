"""Options of the `lora` strategy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from adapters.strategies.base import StrategyConfig
from adapters.strategies.targets import check_layers_option

Role = Literal["q", "k", "v", "o", "mlp"]


class LoRAConfig(StrategyConfig):
    targets: list[Role] = Field(default_factory=lambda: ["q", "v"], min_length=1)
    """Roles to adapt: q, k, v (parts of the fused qkv), o (attention output), mlp (both MLP layers)."""
    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    """Scaling is alpha / r (alpha / sqrt(r) with use_rslora)."""
    dropout: float = Field(0.0, ge=0, lt=1)
    use_dora: bool = False
    """Weight-decomposed LoRA (peft backend; needs whole modules, so all of q, k, v or none)."""
    use_rslora: bool = False
    """Rank-stabilized scaling alpha / sqrt(r)."""
    layers: list[int] | None = None
    """Block indices to adapt (negative counts from the end: [-2, -1] is the last two; each must exist); None is all."""

    @field_validator("layers")
    @classmethod
    def _layers_adapt_something(cls, layers: list[int] | None) -> list[int] | None:
        return check_layers_option(layers)

    backend: Literal["auto", "peft", "loralib"] = "auto"
    """peft adapts whole modules (and offers DoRA); loralib's MergedLinear adapts parts of a fused qkv.
    auto takes loralib when the targets split a fused qkv (q and v without k), else peft."""

    @model_validator(mode="after")
    def _consistent(self) -> LoRAConfig:
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets {self.targets} name a role twice")
        split = {"q", "k", "v"} & set(self.targets) not in (set(), {"q", "k", "v"})
        if split and self.backend == "peft":
            raise ValueError(
                "peft cannot adapt part of a fused qkv (targets split q/k/v); use backend: loralib or auto, "
                "or target all of q, k, v"
            )
        if self.use_dora and (split or self.backend == "loralib"):
            raise ValueError(
                "use_dora needs the peft backend on whole modules: target all of q, k, v (or none of them)"
            )
        return self
