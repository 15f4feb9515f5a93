"""`loha` (Hyeon-Woo et al., FedPara / LyCORIS): low-rank Hadamard-product updates, through peft."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # peft pulls in transformers (seconds per process): imported where a tuner is built
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
        import peft

        return peft.LoHaConfig(**self.cfg.lycoris_options(targets))
