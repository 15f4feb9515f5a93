"""Optimizer parameter groups, CLIP practice: no weight decay on biases, norms, embeddings or the
temperature; each role (head, adapter, encoder, loss) takes its train.lr_scales multiplier times the
strategy's own (layer decay, full's lr_scale). timm's optimizers and schedulers honour `lr_scale`.
A module's own `no_weight_decay()` (timm's convention) overrides the name rules beneath it."""

from __future__ import annotations

import fnmatch
from typing import Any

import torch

from adapters import peft_names
from peftzoo_model.model import DualEncoderCLIP
from recipes.schema import LrScales

_NO_DECAY_LEAVES = ("bias", "logit_scale", "logit_bias")
_NO_DECAY_SUFFIXES = ("_embed", "_token", "_bias", "bias_table")


def decays(name: str, param: torch.nn.Parameter, declared: NoDecayDeclarations | None = None) -> bool:
    """Weight decay only on weight matrices: not biases, norms (1-D), embeddings, temperature.

    Under a module with timm's `no_weight_decay()`, its list (names relative to it, fnmatch
    patterns as in timm) and timm's rule (no decay on 1-D tensors and biases) decide; elsewhere the
    name rules above."""
    if declared is not None and (verdict := declared.decays(name, param)) is not None:
        return verdict
    leaf = name.rsplit(".", 1)[-1]
    return param.ndim >= 2 and leaf not in _NO_DECAY_LEAVES and not leaf.endswith(_NO_DECAY_SUFFIXES)


class NoDecayDeclarations:
    """The `no_weight_decay()` sets of a model's modules (timm's convention), as full-name patterns."""

    def __init__(self, model: torch.nn.Module):
        self.patterns: dict[str, list[str]] = {}  # module prefix ("" for the root) -> full-name patterns
        for prefix, module in model.named_modules():
            declare = getattr(module, "no_weight_decay", None)
            if callable(declare):
                base = f"{prefix}." if prefix else ""
                self.patterns[base] = [base + n for n in declare()]

    def decays(self, name: str, param: torch.nn.Parameter) -> bool | None:
        """None when no module above `name` declares a list."""
        # peft moves a wrapped layer's weight under base_layer; the declared name is the original one
        plain = peft_names.unwrapped(name)
        owners = [base for base in self.patterns if plain.startswith(base)]
        if not owners:
            return None
        excluded = any(fnmatch.fnmatchcase(plain, pattern) for base in owners for pattern in self.patterns[base])
        return not excluded and param.ndim >= 2 and not plain.endswith(".bias")


def role(model: DualEncoderCLIP, name: str) -> str:
    """head, adapter (added by a strategy), encoder (a pretrained weight) or loss, for train.lr_scales."""
    if name.startswith("loss."):
        return "loss"
    side, part, rest = name.split(".", 2)
    if part == "head":
        return "head"
    pretrained = getattr(getattr(model, side).encoder, "pretrained_parameter_names", None)
    if pretrained is None:
        return "encoder"
    # peft wraps a targeted layer and moves its weight under base_layer; the weight is still pretrained.
    return "encoder" if peft_names.unwrapped(rest) in pretrained else "adapter"


def param_groups(
    model: DualEncoderCLIP, weight_decay: float, lr_scales: LrScales | None = None
) -> list[dict[str, Any]]:
    """Trainable parameters grouped by (weight decay, role, lr multiplier); the multiplier is the
    role's train.lr_scales entry times the strategy's own (layer decay, full's lr_scale)."""
    lr_scale = {f"eeg.encoder.{n}": s for n, s in model.eeg.report.lr_scale.items()}
    lr_scale.update({f"video.encoder.{n}": s for n, s in model.video.report.lr_scale.items()})
    declared = NoDecayDeclarations(model)
    groups: dict[tuple[bool, str, float], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        kind = role(model, name)
        scale = lr_scale.get(name, 1.0) * (getattr(lr_scales, kind) if lr_scales is not None else 1.0)
        key = (decays(name, p, declared), kind, scale)
        group = groups.setdefault(
            key,
            {
                "params": [],
                "names": [],
                "role": kind,
                "weight_decay": weight_decay if key[0] else 0.0,
                "lr_scale": scale,
            },
        )
        group["params"].append(p)
        group["names"].append(name)
    return list(groups.values())
