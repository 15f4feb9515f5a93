"""Each class below conforms except for one planted flaw, named in its docstring."""

from __future__ import annotations

import torch
from pydantic import ConfigDict
from torch import nn

from adapters.strategies.base import Strategy, StrategyConfig, StrategyReport, report_for


def _biases(encoder: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in encoder.named_parameters() if n.endswith("qkv.bias")]


class TrainsUnreported(Strategy):
    """Flaw: trains the qkv biases and also fc1's, but reports only the qkv biases."""

    description = "broken: trains a parameter it does not report"

    def apply(self, encoder: nn.Module) -> StrategyReport:
        names = []
        for n, p in encoder.named_parameters():
            if n.endswith("qkv.bias"):
                p.requires_grad_(True)
                names.append(n)
            elif n.endswith("fc1.bias"):
                p.requires_grad_(True)  # the planted flaw: trained, not reported
        return report_for(self.name, encoder, names)


class AdapterNeverCalled(Strategy):
    """Flaw: adds a low-rank adapter beside each qkv that the attention never calls."""

    description = "broken: adds an adapter that the forward pass never calls"

    def apply(self, encoder: nn.Module) -> StrategyReport:
        names = []
        for n, m in list(encoder.named_modules()):
            if isinstance(getattr(m, "qkv", None), nn.Linear):
                m.qkv_adapter = nn.Linear(m.qkv.in_features, m.qkv.out_features, bias=False)  # registered, never used
                names.append(f"{n}.qkv_adapter.weight" if n else "qkv_adapter.weight")
        return report_for(self.name, encoder, names)


class ForgetfulState(Strategy):
    """Flaw: counts its optimizer steps in its state, but load_state_dict ignores the saved count."""

    description = "broken: load_state_dict loses the state"

    def __init__(self, config, name=None):
        super().__init__(config, name=name)
        self.steps = 0

    def apply(self, encoder: nn.Module) -> StrategyReport:
        names = []
        for n, p in _biases(encoder):
            p.requires_grad_(True)
            names.append(n)
        return report_for(self.name, encoder, names)

    def after_optimizer_step(self, step: int) -> None:
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        pass  # the planted flaw


class GainLinear(nn.Module):
    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.gain = nn.Parameter(torch.ones(base.out_features))

    def forward(self, x):
        return self.base(x) * self.gain


class MergeChangesOutputs(Strategy):
    """Flaw: a per-output gain on each qkv whose merge scales the weight but forgets the bias."""

    description = "broken: merge() changes the outputs"

    def apply(self, encoder: nn.Module) -> StrategyReport:
        self.wrapped = {}
        for n, m in list(encoder.named_modules()):
            if isinstance(getattr(m, "qkv", None), nn.Linear) and m.qkv.bias is not None:
                name = f"{n}.qkv" if n else "qkv"
                self.wrapped[name] = GainLinear(m.qkv)
                encoder.set_submodule(name, self.wrapped[name])
        return report_for(self.name, encoder, [f"{n}.gain" for n in self.wrapped])

    def wrapped_modules(self, encoder: nn.Module) -> list[str]:
        return sorted(self.wrapped)

    @torch.no_grad()
    def merge(self, encoder: nn.Module) -> int:
        for name, w in self.wrapped.items():
            w.base.weight.mul_(w.gain[:, None])  # the planted flaw: the bias is not scaled
            encoder.set_submodule(name, w.base)
        return len(self.wrapped)


class OpenConfig(Strategy):
    """Flaw: its Config accepts unknown keys, so a typo in a recipe is silently ignored."""

    description = "broken: its Config accepts unknown keys"

    class Config(StrategyConfig):
        model_config = ConfigDict(extra="allow")

    def apply(self, encoder: nn.Module) -> StrategyReport:
        names = []
        for n, p in _biases(encoder):
            p.requires_grad_(True)
            names.append(n)
        return report_for(self.name, encoder, names)


class GainShiftLinear(nn.Module):
    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.gain = nn.Parameter(torch.ones(base.out_features))
        self.shift = nn.Parameter(torch.zeros(base.out_features))

    def forward(self, x):
        return self.base(x) * self.gain + self.shift.detach()  # the planted flaw: the shift never gets a gradient


class DetachedShift(Strategy):
    """Flaw: a gain and a shift on each qkv; the shift is detached in forward, so it never learns
    although it is reported, optimized and saved (the gain trains: every other check passes)."""

    description = "broken: a reported tensor is detached in forward"

    def apply(self, encoder: nn.Module) -> StrategyReport:
        self.wrapped = {}
        for n, m in list(encoder.named_modules()):
            if isinstance(getattr(m, "qkv", None), nn.Linear):
                name = f"{n}.qkv" if n else "qkv"
                self.wrapped[name] = GainShiftLinear(m.qkv)
                encoder.set_submodule(name, self.wrapped[name])
        return report_for(self.name, encoder, [f"{n}.{p}" for n in self.wrapped for p in ("gain", "shift")])

    def wrapped_modules(self, encoder: nn.Module) -> list[str]:
        return sorted(self.wrapped)
