"""`loha` (Hyeon-Woo et al., FedPara / LyCORIS): low-rank Hadamard-product updates, through peft."""

from __future__ import annotations

import peft
from pydantic import Field

from adapters.strategies.peft_tuner import PeftTuner, PeftTunerConfig, module_regex
from adapters.strategies.targets import RoleTargets


class LoHaConfig(PeftTunerConfig):
    r: int = Field(8, ge=1)
    alpha: float = Field(8.0, gt=0)
    rank_dropout: float = Field(0.0, ge=0, lt=1)
    module_dropout: float = Field(0.0, ge=0, lt=1)


class LoHa(PeftTuner):
    """LoHa via peft: Hadamard product of two low-rank updates on the roles named."""

    description = "LoHa via peft: Hadamard product of two low-rank updates on the roles named"
    Config = LoHaConfig

    def peft_config(self, targets: RoleTargets) -> peft.PeftConfig:
        c = self.cfg
        return peft.LoHaConfig(r=c.r, alpha=c.alpha, rank_dropout=c.rank_dropout, module_dropout=c.module_dropout,
                               target_modules=module_regex(targets.whole))
