"""`lokr` (LyCORIS): Kronecker-product updates with a low-rank factor, through peft."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # peft pulls in transformers (seconds per process): imported where a tuner is built
    import peft

from adapters.strategies.peft_tuner import LycorisConfig, PeftTuner
from adapters.strategies.targets import RoleTargets


class LoKrConfig(LycorisConfig):
    decompose_factor: int = -1
    """Factor of the Kronecker split; -1 lets peft choose."""


class LoKr(PeftTuner):
    """LoKr via peft: Kronecker-product updates on the roles named."""

    description = "LoKr via peft: Kronecker-product updates on the roles named"
    Config = LoKrConfig

    def peft_config(self, targets: RoleTargets) -> peft.PeftConfig:
        import peft

        return peft.LoKrConfig(decompose_factor=self.cfg.decompose_factor, **self.cfg.lycoris_options(targets))
