"""AdamW over stacked parameters (trial dimension first), each trial with its own lr, weight decay,
betas and eps, as torch.optim.AdamW computes them.

Written by hand because torch's optimizers take one scalar lr and weight decay per parameter group,
while a stacked tensor holds every trial's slice of one parameter; one vectorized update over the
stack replaces T optimizers' T x (parameters) kernel launches. The arithmetic follows
torch.optim.AdamW (decoupled decay, bias corrections, eps added after the square root) step for step,
which tests/test_batched_heads.py checks against an ordinary run.
"""

from __future__ import annotations

import torch


def _per_trial(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(T,) -> (T, 1, ..., 1) broadcasting against `like`."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


class StackedAdamW:
    """`step(lr, weight_decay, active)`: lr and weight decay are (T,) tensors per parameter name; trials
    not `active` (a skipped non-finite step, a run stopped early) are left untouched, state included."""

    def __init__(self, params: dict[str, torch.Tensor], betas: torch.Tensor, eps: torch.Tensor):
        self.params = params
        self.beta1, self.beta2 = betas[:, 0], betas[:, 1]
        self.eps = eps
        trials = next(iter(params.values())).shape[0]
        self.steps = torch.zeros(trials, dtype=torch.float64, device=eps.device)
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    @torch.no_grad()
    def step(self, lr: dict[str, torch.Tensor], weight_decay: dict[str, torch.Tensor], active: torch.Tensor) -> None:
        self.steps += active.to(self.steps.dtype)
        steps = self.steps.clamp(min=1)
        correction1 = (1 - self.beta1.double() ** steps).to(self.eps.dtype)
        correction2_sqrt = (1 - self.beta2.double() ** steps).sqrt().to(self.eps.dtype)
        everyone = bool(active.all())  # the common case updates in place, without masking
        for name, p in self.params.items():
            if p.grad is None:
                continue
            g = p.grad
            b1, b2 = _per_trial(self.beta1, p), _per_trial(self.beta2, p)
            step_lr = _per_trial(lr[name], p)
            step_size = step_lr / _per_trial(correction1, p)
            if everyone:
                m, v = self.exp_avg[name], self.exp_avg_sq[name]
                m.lerp_(g, 1 - b1)
                v.mul_(b2).add_((1 - b2) * g * g)
                p.mul_(1 - step_lr * _per_trial(weight_decay[name], p))
                denom = (v.sqrt() / _per_trial(correction2_sqrt, p)).add_(_per_trial(self.eps, p))
                p.sub_(step_size * m / denom)
                continue
            on = _per_trial(active, p)
            m = torch.where(on, self.exp_avg[name].lerp(g, 1 - b1), self.exp_avg[name])
            v = torch.where(on, self.exp_avg_sq[name] * b2 + (1 - b2) * g * g, self.exp_avg_sq[name])
            self.exp_avg[name], self.exp_avg_sq[name] = m, v
            decayed = p * (1 - step_lr * _per_trial(weight_decay[name], p))
            denom = v.sqrt() / _per_trial(correction2_sqrt, p) + _per_trial(self.eps, p)
            p.copy_(torch.where(on, decayed - step_size * m / denom, p))
