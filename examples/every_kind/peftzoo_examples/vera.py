"""`vera`: VeRA (Kopiczko et al. 2024) on the encoder's nn.Linear layers, implemented by the plugin itself.

Each adapted Linear gets  W x + b + lambda_b * (B (lambda_d * (A x)))  where A (r, in) and B (out, r)
are frozen random matrices shared by all layers of one shape, and only the vectors lambda_d (r,)
and lambda_b (out,) train: far fewer parameters than LoRA at the same rank.

It uses every strategy hook of the plugin contract (docs/plugins.md):
- state: the seed the frozen projections are drawn from. They are not saved with the trainable
  weights (they are not trained), so a resumed or reloaded run must redraw the same ones;
- merge: folds lambda_b B diag(lambda_d) A into W and puts the plain Linear back;
- export: a self-contained safetensors file (vectors and projections) plus a JSON config;
- wrapped_modules: the Linear layers it replaced, for clash detection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from pydantic import Field
from torch import nn

from adapters.strategies.base import Strategy, StrategyConfig, StrategyError, StrategyReport, report_for


class VeRAConfig(StrategyConfig):
    r: int = Field(64, ge=1)
    """Rank of the shared random projections (VeRA uses far larger ranks than LoRA: 256 and up)."""
    targets: list[str] = Field(default_factory=lambda: ["qkv"], min_length=1)
    """Adapt every nn.Linear whose name ends with one of these (e.g. qkv, proj, fc1, fc2)."""
    d_init: float = Field(0.1, gt=0)
    """Initial value of lambda_d (the paper's d_init); lambda_b starts at 0, so training starts at the base model."""
    seed: int | None = None
    """Seed of the frozen projections; None draws one at apply time (kept in the strategy state)."""


def projections(seed: int, r: int, in_features: int, out_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen (A, B) for one layer shape, Kaiming-uniform as in VeRA, reproducible from the seed."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + in_features * 7919 + out_features)
    a = (torch.rand(r, in_features, generator=g) * 2 - 1) * (3.0 / in_features) ** 0.5
    b = (torch.rand(out_features, r, generator=g) * 2 - 1) * (3.0 / r) ** 0.5
    return a, b


class VeRALinear(nn.Module):
    """A frozen nn.Linear plus VeRA's scaled shared projections."""

    def __init__(self, base: nn.Linear, r: int, d_init: float, seed: int):
        super().__init__()
        self.base = base
        self.lambda_d = nn.Parameter(torch.full((r,), d_init, device=base.weight.device))
        self.lambda_b = nn.Parameter(torch.zeros(base.out_features, device=base.weight.device))
        self.set_projections(seed)

    def set_projections(self, seed: int) -> None:
        a, b = projections(seed, self.lambda_d.numel(), self.base.in_features, self.base.out_features)
        dev = self.base.weight.device
        # not persistent: they are redrawn from the strategy's seed, never stored with the weights
        self.register_buffer("vera_A", a.to(dev), persistent=False)
        self.register_buffer("vera_B", b.to(dev), persistent=False)

    def delta_weight(self) -> torch.Tensor:
        return (self.lambda_b[:, None] * self.vera_B) @ (self.lambda_d[:, None] * self.vera_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = nn.functional.linear(x, self.vera_A.to(x.dtype)) * self.lambda_d.to(x.dtype)
        return self.base(x) + nn.functional.linear(a, self.vera_B.to(x.dtype)) * self.lambda_b.to(x.dtype)


class VeRA(Strategy):
    """VeRA: shared frozen random projections, only per-layer scaling vectors train."""

    description = "VeRA: frozen shared random projections on Linear layers; only scaling vectors train"
    export_format = "vera"  # its own: vera_adapter.safetensors + vera_config.json (see export)
    Config = VeRAConfig

    def __init__(self, config: VeRAConfig, name: str | None = None):
        super().__init__(config, name=name)
        self.seed: int | None = config.seed
        self.wrapped: dict[str, VeRALinear] = {}

    def apply(self, encoder: nn.Module) -> StrategyReport:
        if self.seed is None:
            self.seed = int(torch.randint(0, 2**31 - 1, ()).item())
        found = [
            (n, m)
            for n, m in encoder.named_modules()
            if type(m) is nn.Linear and any(n == t or n.endswith("." + t) for t in self.cfg.targets)
        ]
        if not found:
            raise StrategyError(
                f"vera: no nn.Linear of {getattr(encoder, 'name', 'the encoder')} is named "
                f"{self.cfg.targets}; name Linear layers it has (targets: [qkv, proj, fc1, fc2])"
            )
        names = []
        for module_name, linear in found:
            wrapper = VeRALinear(linear, self.cfg.r, self.cfg.d_init, self.seed)
            encoder.set_submodule(module_name, wrapper)
            self.wrapped[module_name] = wrapper
            names += [f"{module_name}.lambda_d", f"{module_name}.lambda_b"]
        return report_for(self.name, encoder, names)

    def check_composition(self, others: Sequence[Strategy]) -> None:
        for other in others:
            if isinstance(other, VeRA) and set(other.cfg.targets) & set(self.cfg.targets):
                raise StrategyError(
                    f"vera is listed twice for {sorted(set(other.cfg.targets) & set(self.cfg.targets))}; list it once"
                )

    # -- hooks ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The projection seed: weights alone do not reproduce the model without it."""
        return {"seed": self.seed, "wrapped": sorted(self.wrapped)}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        for wrapper in self.wrapped.values():
            wrapper.set_projections(self.seed)

    def wrapped_modules(self, encoder: nn.Module) -> list[str]:
        return sorted(self.wrapped)

    @torch.no_grad()
    def merge(self, encoder: nn.Module) -> int:
        """Fold every adapter into its Linear and put the plain Linear back; returns how many."""
        for module_name, wrapper in self.wrapped.items():
            wrapper.base.weight += wrapper.delta_weight().to(wrapper.base.weight.dtype)
            encoder.set_submodule(module_name, wrapper.base)
        count, self.wrapped = len(self.wrapped), {}
        return count

    def export(self, encoder: nn.Module, directory: Path) -> list[Path]:
        """`vera_adapter.safetensors` (lambda vectors and the projections, so it needs no seed) and
        `vera_config.json`; written to temporary names and moved into place when complete."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for module_name, w in self.wrapped.items():
            for key in ("lambda_d", "lambda_b", "vera_A", "vera_B"):
                tensors[f"{module_name}.{key}"] = getattr(w, key).detach().cpu().contiguous()
        config = {
            "method": "vera",
            "r": self.cfg.r,
            "seed": self.seed,
            "targets": self.cfg.targets,
            "modules": sorted(self.wrapped),
            "formula": "W x + lambda_b * (B (lambda_d * (A x)))",
        }
        out = [directory / "vera_adapter.safetensors", directory / "vera_config.json"]
        save_file(tensors, str(out[0]) + ".tmp", metadata={"format": "pt"})
        (directory / "vera_config.json.tmp").write_text(json.dumps(config, indent=2))
        for path in out:
            Path(str(path) + ".tmp").replace(path)
        return out
