"""Which trials can train as one batched model, and which of them together.

A batched group shares everything but per-trial optimizer and loss numbers: the same data, seed,
frozen encoders (so one feature cache and one batch order), the same head architecture and dropout
and the same loss arithmetic (so one vmapped forward). What may differ is only what enters the update
or the bookkeeping: lr, weight decay, schedule, gradient clipping, lr_scales, the initial and maximal
temperature, selection, early stopping and the loggers. Trials that differ in a head's width or
dropout form separate groups (each still batched).
"""

from __future__ import annotations

import json
import os

import torch
from pydantic import BaseModel

import registry
from peftzoo_engine.device import resolve_device, resolve_precision
from peftzoo_tools.sweep.batched.stacked import missing_hook
from registry.core import Registry

PER_TRIAL_KEYS = (
    "name",
    "train.lr",
    "train.weight_decay",
    "train.warmup_fraction",
    "train.warmup_steps",
    "train.min_lr",
    "train.grad_clip_norm",
    "train.lr_scales",
    "train.loggers",
    "train.select",
    "train.early_stopping",
    "train.log_every",
    "train.max_nonfinite_steps",
    "train.cache_dir",
    "loss.temperature",
    "loss.max_logit_scale",
)
"""Dotted recipe keys that may differ between the trials of one batched model."""


def unsupported_reason(recipe: BaseModel, reg: Registry | None = None) -> str | None:
    """None when the trial can train batched; else why not (it then runs as an ordinary run). Heads and
    losses join by declaring the batched hooks (stacked.missing_hook), plugins' as built-in ones."""
    reg = reg or registry.default()
    cfg = recipe.train
    for side in ("eeg", "video"):
        tower = getattr(recipe, side)
        strategies = [s.name for s in tower.strategy]
        if strategies != ["head_only"]:
            return f"{side}.strategy is {'+'.join(strategies)}, not head_only (its encoder trains)"
        if (reason := missing_hook(reg.get("heads", tower.head.name))) is not None:
            return f"{side}.head {tower.head.name}: {reason}"
    if (reason := missing_hook(reg.get("losses", recipe.loss.name))) is not None:
        return f"loss {recipe.loss.name}: {reason}"
    if getattr(recipe.loss, "learnable_temperature", True) is False:
        return "batched heads train a loss with a learnable temperature"
    if cfg.optimizer.lower() != "adamw":
        return f"train.optimizer is {cfg.optimizer}; batched heads support adamw"
    if not cfg.feature_cache:
        return "train.feature_cache is off; batched heads train on cached features"
    if cfg.accum_freq != 1:
        return "train.accum_freq > 1 is not batched"
    if getattr(cfg, "stages", None):
        return "train.stages are not batched"
    if resolve_precision(cfg.precision, resolve_device(cfg.device)) == torch.float16:
        return "fp16 (a gradient scaler per trial) is not batched"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "torchrun runs are not batched"
    return None


def _drop(tree: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.get(p) or {}
    tree.pop(leaf, None)


def batch_key(recipe: BaseModel) -> str:
    """Trials with equal keys can share one batched model (and one feature cache and batch order)."""
    tree = recipe.model_dump(mode="json")
    for key in PER_TRIAL_KEYS:
        _drop(tree, key)
    return json.dumps(tree, sort_keys=True)
