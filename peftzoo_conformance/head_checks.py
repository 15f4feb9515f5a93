"""Head checks: maps (B, in_dim) to (B, out_dim), finite, and every parameter gets a gradient."""

from __future__ import annotations

import torch

import registry
from peftzoo_conformance import probes
from peftzoo_conformance.errors import named_check, require

KIND = "heads"


@named_check("head_maps_dimensions", KIND)
def check_maps_dimensions_and_trains(name: str) -> None:
    component = registry.get(KIND, name)
    component.Config.model_validate({})
    torch.manual_seed(0)
    head = registry.build(KIND, {"name": name, **probes.small_options(KIND, name, component)}, in_dim=12, out_dim=8)
    x = torch.randn(5, 12)
    out = head(x)
    require(
        tuple(out.shape) == (5, 8),
        "head_maps_dimensions",
        KIND,
        name,
        f"from_config(in_dim=12, out_dim=8) maps (5, 12) to {tuple(out.shape)}, not (5, 8)",
    )
    require(bool(torch.isfinite(out).all()), "head_maps_dimensions", KIND, name, "output holds NaN or inf")
    out.pow(2).sum().backward()
    dead = [n for n, p in head.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    require(not dead, "head_trains", KIND, name, f"parameters without gradient: {dead[:5]}")
