"""The optimizer (AdamW or any timm optimizer) and the per-step warmup + cosine schedule."""

from __future__ import annotations

import inspect

import timm.optim
import torch
from timm.scheduler import CosineLRScheduler

from peftzoo_engine import grouping
from peftzoo_model.model import DualEncoderCLIP
from recipes.errors import RecipeError
from recipes.schema import Recipe


def make_optimizer(recipe: Recipe, model: DualEncoderCLIP, lr: float):
    cfg = recipe.train
    groups = grouping.param_groups(model, cfg.weight_decay, cfg.lr_scales)
    if not groups:
        raise RecipeError("nothing in the model is trainable; check the strategies and heads")
    return timm.optim.create_optimizer_v2(
        groups, opt=cfg.optimizer, lr=lr, weight_decay=cfg.weight_decay, **fused_option(cfg.optimizer, groups)
    )


FUSED_DEVICES = ("cpu", "cuda")
"""Devices on which torch's fused optimizer kernels run for fp32, fp16 and bf16 parameters."""


def fused_option(name: str, groups: list[dict]) -> dict[str, bool]:
    """{"fused": True} where the optimizer has torch's fused kernel (AdamW, Adam, SGD) and every parameter
    may use it; else {}.

    The fused kernel updates a whole parameter group in one call instead of a Python loop of about ten
    tensor operations per parameter, the default on CPU: on the cached head steps of
    benchmarks/step_overhead.py that loop was a third of a step. Its update is the same AdamW (equal to
    the loop's within float rounding), and its state dict has the same keys, so checkpoints load either way.
    """
    if "fused" not in inspect.signature(timm.optim.get_optimizer_class(name, bind_defaults=False)).parameters:
        return {}
    params = [p for g in groups for p in g["params"]]
    usable = all(
        p.device.type in FUSED_DEVICES and p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in params
    )
    return {"fused": True} if usable else {}


def warmup_steps(recipe: Recipe, total_steps: int) -> int:
    """train.warmup_steps, or train.warmup_fraction of the stage's steps."""
    cfg = recipe.train
    return cfg.warmup_steps if cfg.warmup_steps is not None else int(round(cfg.warmup_fraction * total_steps))


def make_scheduler(recipe: Recipe, optimizer, total_steps: int, lr: float) -> CosineLRScheduler:
    warmup = min(warmup_steps(recipe, total_steps), max(total_steps - 1, 0))
    return CosineLRScheduler(
        optimizer,
        t_initial=max(total_steps - warmup, 1),
        lr_min=recipe.train.min_lr,
        warmup_t=warmup,
        warmup_lr_init=lr / max(warmup, 1),
        warmup_prefix=True,
        t_in_epochs=False,
    )


def scheduled_lr(optimizer) -> float:
    """The schedule's lr before any multiplier (the groups hold it times their lr_scale)."""
    group = next((g for g in optimizer.param_groups if g.get("lr_scale", 1.0)), optimizer.param_groups[0])
    return group["lr"] / group.get("lr_scale", 1.0) if group.get("lr_scale", 1.0) else group["lr"]
