"""AdamW over stacked parameters (trial dimension first), each trial with its own lr and weight
decay per parameter, as torch.optim.AdamW computes them.

Written by hand because torch's optimizers take one scalar lr and weight decay per parameter group,
while a stacked tensor holds every trial's slice of one parameter: T torch optimizers (even fused)
cost T x groups calls per step, about as much as the batched forward and backward of small heads,
where this is ~8 in-place passes per stacked parameter. Betas and eps are one per group (they are
not among eligibility.PER_TRIAL_KEYS); lr, weight decay and the step count (a trial that skipped a
non-finite step is one behind) are per trial. The arithmetic follows torch.optim.AdamW's
single-tensor path (decoupled decay first, lerp for the first moment, bias corrections, eps added
after the square root) step for step, which tests/test_batched_heads.py checks against ordinary runs.
"""

from __future__ import annotations

import torch


def _per_trial(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(T,) -> (T, 1, ..., 1) broadcasting against `like`."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


class StackedAdamW:
    """`step(lr, weight_decay, active)`: lr and weight decay are (names, T) tensors in the order of
    `params`; trials not `active` (a skipped non-finite step, a run that ended) are left untouched,
    state included."""

    def __init__(self, params: dict[str, torch.Tensor], betas: tuple[float, float], eps: float):
        self.params = params
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps = float(eps)
        trials = next(iter(params.values())).shape[0]
        device = next(iter(params.values())).device
        self.steps = torch.zeros(trials, dtype=torch.float64, device=device)
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}

    @torch.no_grad()
    def step(self, lr: torch.Tensor, weight_decay: torch.Tensor, active: torch.Tensor, everyone: bool) -> None:
        """`everyone`: all trials active (the common case, updated in place without masking)."""
        self.steps += active.to(self.steps.dtype)
        steps = self.steps.clamp(min=1)
        dtype = next(iter(self.params.values())).dtype
        step_size = (lr.double() / (1 - self.beta1 ** steps)).to(dtype)  # (names, T)
        inv_correction2_sqrt = (1 / (1 - self.beta2 ** steps).sqrt()).to(dtype)  # (T,)
        decay = 1 - lr * weight_decay
        for i, (name, p) in enumerate(self.params.items()):
            g = p.grad
            if g is None:
                continue
            if everyone:
                m, v = self.exp_avg[name], self.exp_avg_sq[name]
                p.mul_(_per_trial(decay[i], p))
                m.lerp_(g, 1 - self.beta1)
                v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
                denom = v.sqrt().mul_(_per_trial(inv_correction2_sqrt, p)).add_(self.eps)
                p.sub_(m.mul(_per_trial(step_size[i], p)).div_(denom))
                continue
            on = _per_trial(active, p)
            m = torch.where(on, self.exp_avg[name].lerp(g, 1 - self.beta1), self.exp_avg[name])
            v = torch.where(on, self.exp_avg_sq[name] * self.beta2 + (1 - self.beta2) * g * g, self.exp_avg_sq[name])
            self.exp_avg[name], self.exp_avg_sq[name] = m, v
            decayed = p * _per_trial(decay[i], p)
            denom = v.sqrt() * _per_trial(inv_correction2_sqrt, p) + self.eps
            p.copy_(torch.where(on, decayed - _per_trial(step_size[i], p) * m / denom, p))

    def state_dict(self) -> dict:
        return {"steps": self.steps.cpu(), "exp_avg": {n: t.cpu() for n, t in self.exp_avg.items()},
                "exp_avg_sq": {n: t.cpu() for n, t in self.exp_avg_sq.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.steps.copy_(state["steps"])
        for n in self.params:
            self.exp_avg[n].copy_(state["exp_avg"][n])
            self.exp_avg_sq[n].copy_(state["exp_avg_sq"][n])
