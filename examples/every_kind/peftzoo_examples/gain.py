"""`gain`: a learned per-output gain on chosen Linear layers; "write a strategy" (every hook) in
docs/guides/writing-plugins.md."""

import torch
from safetensors.torch import save_file
from torch import nn

from adapters.strategies.base import Strategy, StrategyConfig, report_for


class GainConfig(StrategyConfig):
    targets: list[str] = ["qkv"]  # Linear layers whose names end with one of these


class Gained(nn.Module):
    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base, self.gain = base, nn.Parameter(torch.ones(base.out_features))

    def forward(self, x):
        return self.base(x) * self.gain


class Gain(Strategy):
    """Learned per-output gain on chosen Linear layers (mergeable)."""

    description = "Learned per-output gain on chosen Linear layers (mergeable)"
    Config = GainConfig

    def apply(self, encoder):
        self.wrapped, self.steps = {}, 0
        for name, m in list(encoder.named_modules()):
            if type(m) is nn.Linear and name.endswith(tuple(self.cfg.targets)):
                self.wrapped[name] = Gained(m)
                encoder.set_submodule(name, self.wrapped[name])
        return report_for(self.name, encoder, [f"{n}.gain" for n in self.wrapped])

    def after_optimizer_step(self, step):
        self.steps += 1  # per-step hook

    def state_dict(self):
        return {"steps": self.steps}  # kept in checkpoints

    def load_state_dict(self, state):
        self.steps = state["steps"]

    def wrapped_modules(self, encoder):
        return sorted(self.wrapped)  # for clash detection

    @torch.no_grad()
    def merge(self, encoder):  # fold the gain into W and b, put the plain Linear back
        for name, w in self.wrapped.items():
            w.base.weight.mul_(w.gain[:, None])
            if w.base.bias is not None:
                w.base.bias.mul_(w.gain)
            encoder.set_submodule(name, w.base)
        return len(self.wrapped)

    def export(self, encoder, directory):  # an outside format: one safetensors of gains
        path = directory / "gains.safetensors"
        save_file({n: w.gain.detach().contiguous() for n, w in self.wrapped.items()}, str(path))
        return [path]
