"""The optimizer (AdamW or any timm optimizer) and the per-step warmup + cosine schedule."""

from __future__ import annotations

import timm.optim
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
    return timm.optim.create_optimizer_v2(groups, opt=cfg.optimizer, lr=lr, weight_decay=cfg.weight_decay)


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
