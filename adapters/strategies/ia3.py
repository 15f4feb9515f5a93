"""`ia3` (Liu et al., 2022, T-Few): learned rescaling vectors, through peft.

Attention roles scale their module's outputs; the mlp role scales the input of each MLP's output
layer (the intermediate activations), IA3's feed-forward rule. On a fused qkv, q is scaled too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

if TYPE_CHECKING:  # peft pulls in transformers (seconds per process): imported where a tuner is built
    import peft

from adapters.strategies.peft_tuner import PeftTuner, PeftTunerConfig, Role, module_regex
from adapters.strategies.targets import RoleTargets


class IA3Config(PeftTunerConfig):
    targets: list[Role] = Field(default_factory=lambda: ["q", "k", "v", "mlp"], min_length=1)


class IA3(PeftTuner):
    """IA3 via peft: learned scaling vectors on the roles named (mlp scales the FFN activations)."""

    description = "IA3 via peft: learned scaling vectors on the roles named (mlp scales the FFN activations)"
    Config = IA3Config
    mlp_layers = "last"

    def peft_config(self, targets: RoleTargets) -> peft.PeftConfig:
        import peft

        feedforward = [n for n in targets.whole if ".mlp." in n]  # the mlp role's modules (blocks' `mlp`)
        return peft.IA3Config(
            target_modules=module_regex(targets.whole), feedforward_modules=module_regex(feedforward) or None
        )
