"""Test-only peftzoo components that plant known faults (installed for the doctor's tests only).

Registered through entry points like any plugin: tests/test_doctor.py writes a dist-info with
entry_points.txt beside this module in a temporary site directory and puts it on the path.
"""

from __future__ import annotations

import time

from pydantic import Field
from torch import nn

from adapters.heads.base import Head, HeadConfig
from adapters.strategies.base import Strategy, StrategyReport, report_for
from peftzoo_data.base import PairedDataset
from peftzoo_data.synthetic import SyntheticConfig, generate


class ReluLinearHead(Head):
    """Linear then ReLU: the original project's head bug (non-negative embeddings)."""

    description = "test only: Linear then ReLU (non-negative embeddings)"
    Config = HeadConfig

    def __init__(self, config: HeadConfig, *, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.proj(x))


class SlowArray:
    """An array whose reads take `delay` seconds each, like a slow network disk."""

    def __init__(self, array, delay: float):
        self.array, self.delay = array, delay
        self.shape, self.ndim, self.dtype = array.shape, array.ndim, array.dtype

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index):
        time.sleep(self.delay)
        return self.array[index]


class SlowConfig(SyntheticConfig):
    delay_s: float = Field(0.003, ge=0)


class SlowSynthetic(PairedDataset):
    """Synthetic pairs whose EEG is read slowly (no fingerprint, so nothing is cached)."""

    description = "test only: synthetic pairs read slowly"
    Config = SlowConfig

    @classmethod
    def from_config(cls, config: SlowConfig, *, seed: int = 0, **context):
        data = generate(config, seed if config.seed is None else config.seed)
        data.eeg = SlowArray(data.eeg, config.delay_s)
        data.fingerprint = None
        return data


class TrainModeOnlyAdapter(Strategy):
    """A low-rank residual on each attention qkv that is added in training mode only (the bug of an
    adapter forgotten on the inference path). It trains and its weights move, so the weight check
    sees nothing wrong; in eval mode (evaluation, embedding, export) the encoder computes exactly the
    base encoder's features: only comparing features with the base encoder's shows it."""

    description = "test only: an adapter that changes the output in training mode only"

    def apply(self, encoder: nn.Module) -> StrategyReport:
        names = []
        for path, module in list(encoder.named_modules()):
            qkv = getattr(module, "qkv", None)
            if not isinstance(qkv, nn.Linear):
                continue
            adapter = nn.Sequential(
                nn.Linear(qkv.in_features, 4, bias=False), nn.Linear(4, qkv.out_features, bias=False)
            )
            nn.init.zeros_(adapter[1].weight)  # the identity at the start, as LoRA
            module.qkv_train_only = adapter
            qkv.register_forward_hook(_add_in_training(adapter))
            prefix = f"{path}." if path else ""
            names += [f"{prefix}qkv_train_only.0.weight", f"{prefix}qkv_train_only.1.weight"]
        for p in encoder.parameters():
            p.requires_grad_(False)
        params = dict(encoder.named_parameters())
        for n in names:
            params[n].requires_grad_(True)
        return report_for(self.name, encoder, names)


def _add_in_training(adapter: nn.Module):
    def hook(module, inputs, output):
        return output + adapter(inputs[0]) if adapter.training else output  # the planted flaw: eval skips it

    return hook
