"""`lokr` (LyCORIS): Kronecker-product updates with a low-rank factor, through peft."""

from __future__ import annotations

import peft
from pydantic import Field

from adapters.strategies.peft_tuner import PeftTuner, PeftTunerConfig, module_regex
from adapters.strategies.targets import RoleTargets


class LoKrConfig(PeftTunerConfig):
    r: int = Field(8, ge=1)
    alpha: float = Field(8.0, gt=0)
    decompose_factor: int = -1
    """Factor of the Kronecker split; -1 lets peft choose."""
    rank_dropout: float = Field(0.0, ge=0, lt=1)
    module_dropout: float = Field(0.0, ge=0, lt=1)


class LoKr(PeftTuner):
    """LoKr via peft: Kronecker-product updates on the roles named."""

    description = "LoKr via peft: Kronecker-product updates on the roles named"
    Config = LoKrConfig

    def peft_config(self, targets: RoleTargets) -> peft.PeftConfig:
        c = self.cfg
        return peft.LoKrConfig(r=c.r, alpha=c.alpha, decompose_factor=c.decompose_factor, rank_dropout=c.rank_dropout,
                               module_dropout=c.module_dropout, target_modules=module_regex(targets.whole))
