"""Optimizer parameter groups, CLIP practice: no weight decay on biases, norms, embeddings or the
temperature; each role (head, adapter, encoder, loss) takes its train.lr_scales multiplier times the
strategy's own (layer decay, full's lr_scale). timm's optimizers and schedulers honour `lr_scale`."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel

from recipes.model import DualEncoderCLIP

_NO_DECAY_LEAVES = ("bias", "logit_scale", "logit_bias")
_NO_DECAY_SUFFIXES = ("_embed", "_token", "_bias", "bias_table")


def decays(name: str, param: torch.nn.Parameter) -> bool:
    """Weight decay only on weight matrices: not biases, norms (1-D), embeddings, temperature."""
    leaf = name.rsplit(".", 1)[-1]
    return param.ndim >= 2 and leaf not in _NO_DECAY_LEAVES and not leaf.endswith(_NO_DECAY_SUFFIXES)


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
    return "encoder" if rest.replace(".base_layer.", ".") in pretrained else "adapter"


def param_groups(model: DualEncoderCLIP, weight_decay: float, lr_scales: BaseModel | None = None) -> list[dict[str, Any]]:
    """Trainable parameters grouped by (weight decay, role, lr multiplier); the multiplier is the
    role's train.lr_scales entry times the strategy's own (layer decay, full's lr_scale)."""
    lr_scale = {f"eeg.encoder.{n}": s for n, s in model.eeg.report.lr_scale.items()}
    lr_scale.update({f"video.encoder.{n}": s for n, s in model.video.report.lr_scale.items()})
    groups: dict[tuple[bool, str, float], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        kind = role(model, name)
        scale = lr_scale.get(name, 1.0) * (getattr(lr_scales, kind) if lr_scales is not None else 1.0)
        key = (decays(name, p), kind, scale)
        group = groups.setdefault(
            key, {"params": [], "names": [], "role": kind, "weight_decay": weight_decay if key[0] else 0.0, "lr_scale": scale}
        )
        group["params"].append(p)
        group["names"].append(name)
    return list(groups.values())
