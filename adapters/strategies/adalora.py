"""`adalora` (Zhang et al., ICLR 2023): LoRA whose rank budget is reallocated during training, via peft.

Two things peft leaves to the training loop are wired here: the budget update
(`update_and_allocate(step)` after every optimizer step) and the orthogonality penalty, which peft
adds only to Hugging Face outputs that carry `.loss` and so would silently skip on our encoders
(docs/reference/background.md); `regularization()` computes it as peft does, for the trainer to add.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from pydantic import Field

if TYPE_CHECKING:  # peft pulls in transformers (seconds per process): imported where a tuner is built
    import peft

from adapters.strategies.base import StrategyError
from adapters.strategies.peft_tuner import PeftTuner, PeftTunerConfig, module_regex
from adapters.strategies.targets import RoleTargets


class AdaLoRAConfig(PeftTunerConfig):
    init_r: int = Field(12, ge=1)
    target_r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    tinit: int = Field(0, ge=0)
    """Steps of warm-up before ranks are pruned."""
    tfinal: int = Field(0, ge=0)
    """Steps at the end with the final ranks fixed."""
    delta_t: int = Field(1, ge=1)
    beta1: float = Field(0.85, gt=0, lt=1)
    beta2: float = Field(0.85, gt=0, lt=1)
    orth_reg_weight: float = Field(0.5, ge=0)


class AdaLoRA(PeftTuner):
    """AdaLoRA via peft: adaptive rank budget, updated each step, with its orthogonality penalty."""

    description = "AdaLoRA via peft: adaptive rank budget updated each step, with its orthogonality penalty"
    Config = AdaLoRAConfig

    @property
    def tuner_class(self) -> type:  # peft's tuner, imported when a strategy is built
        from peft.tuners.adalora import AdaLoraModel

        return AdaLoraModel

    def peft_config(self, targets: RoleTargets) -> peft.PeftConfig:
        import peft

        c = self.cfg
        total = self.total_steps
        if total is None:
            total = c.tinit + c.tfinal + 1  # built outside training (tests, export): no schedule runs
        if c.tinit >= total - c.tfinal:
            raise StrategyError(
                f"adalora: tinit {c.tinit} + tfinal {c.tfinal} leave no steps of the {total} training steps "
                f"for rank allocation; lower them or train longer"
            )
        return peft.AdaLoraConfig(
            init_r=c.init_r,
            target_r=c.target_r,
            lora_alpha=c.alpha,
            lora_dropout=c.dropout,
            tinit=c.tinit,
            tfinal=c.tfinal,
            deltaT=c.delta_t,
            beta1=c.beta1,
            beta2=c.beta2,
            orth_reg_weight=c.orth_reg_weight,
            total_step=total,
            target_modules=module_regex(targets.whole),
        )

    def regularization(self) -> torch.Tensor | None:
        terms = []
        for name, p in self.tuner.model.named_parameters():
            if ("lora_A" in name or "lora_B" in name) and p.requires_grad:
                cov = p @ p.T if "lora_A" in name else p.T @ p
                terms.append(torch.linalg.matrix_norm(cov - torch.eye(*cov.shape, device=cov.device, dtype=cov.dtype)))
        if not terms or self.cfg.orth_reg_weight == 0:
            return None
        return self.cfg.orth_reg_weight * torch.stack(terms).mean()

    def __init__(self, config: AdaLoRAConfig, name: str | None = None):
        super().__init__(config, name=name)
        self.steps = 0
        """Budget updates done: the schedule's step. It continues, not restarts, when a later training
        stage lists adalora again (its ranks then stay at the final allocation once the schedule ends)."""

    def after_optimizer_step(self, step: int) -> None:
        if self.total_steps is not None:
            self.tuner.update_and_allocate(self.steps)
            self.steps += 1

    def state_dict(self) -> dict:
        """The schedule's step, the rank allocator's running importance statistics and the rank pattern."""
        allocator = self.tuner.rankallocator
        stats = {k: {n: t.detach().cpu() for n, t in getattr(allocator, k).items()} for k in _ALLOCATOR_STATS}
        return {"steps": self.steps, **stats, "rank_pattern": self.tuner.peft_config["default"].rank_pattern}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        allocator = self.tuner.rankallocator
        device = {n: p.device for n, p in self.tuner.model.named_parameters()}
        for key in _ALLOCATOR_STATS:
            setattr(allocator, key, {n: t.to(device[n]) for n, t in state[key].items()})
        self.tuner.peft_config["default"].rank_pattern = state["rank_pattern"]


_ALLOCATOR_STATS = ("ipt", "exp_avg_ipt", "exp_avg_unc")
