"""`ln_tuning`: train the LayerNorm affine parameters of the encoder and nothing else."""

from __future__ import annotations

from torch import nn

from adapters.strategies.base import Strategy, StrategyConfig, StrategyReport, report_for


class LNTuningConfig(StrategyConfig):
    include_final_norm: bool = True
    """Also train norms outside the blocks (e.g. the pooled-feature norm)."""


class LayerNormTuning(Strategy):
    """LayerNorm tuning: only the encoder's LayerNorm gains and biases train."""

    description = "LayerNorm tuning: only the encoder's LayerNorm gains and biases train"
    Config = LNTuningConfig

    def apply(self, encoder: nn.Module) -> StrategyReport:
        in_blocks = {id(m) for block in encoder.blocks for m in block.modules()}
        names = []
        for module_name, module in encoder.named_modules():
            if not isinstance(module, nn.LayerNorm) or not module.elementwise_affine:
                continue
            if not self.cfg.include_final_norm and id(module) not in in_blocks:
                continue
            for param_name, param in module.named_parameters(recurse=False):
                param.requires_grad_(True)
                names.append(f"{module_name}.{param_name}" if module_name else param_name)
        return report_for(self.name, encoder, names)
