"""`loha` (Hyeon-Woo et al., FedPara / LyCORIS): low-rank Hadamard-product updates, through peft."""

from __future__ import annotations

import peft

from adapters.strategies.peft_tuner import LycorisConfig, PeftTuner
from adapters.strategies.targets import RoleTargets


class LoHaConfig(LycorisConfig):
    pass


class LoHa(PeftTuner):
    """LoHa via peft: Hadamard product of two low-rank updates on the roles named."""

    description = "LoHa via peft: Hadamard product of two low-rank updates on the roles named"
    Config = LoHaConfig

    def peft_config(self, targets: RoleTargets) -> peft.PeftConfig:
        return peft.LoHaConfig(**self.cfg.lycoris_options(targets))
