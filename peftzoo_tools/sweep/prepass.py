"""Fill the sweep's shared feature cache once, before any trial runs.

Trials whose frozen encoders and data agree (same seed, data, encoders, strategies, precision and
device) get the same features; the pre-pass builds each such group's model once, exactly as
`peftzoo_tools.run` builds it (seed, data, compose), and asks `peftzoo_engine.feature_cache.features` for every
frozen side, which computes and stores them under the cache key the trials will look up. The
trials then load them from `train.cache_dir` instead of each computing them (and, with parallel
workers, instead of computing them at the same time).

Staged recipes (`train.stages`) share what can be known before training: a side frozen in the first
stage, with that stage's strategies applied exactly as peftzoo_engine.train applies them (after
re-seeding, so any adapter it adds starts alike). A later stage that leaves that side unchanged and
frozen reads the same entry (the cache key hashes the encoder's weights, which did not change). What
cannot be shared: a side frozen in a later stage after it trained in an earlier one (its features
depend on what that trial learned, so each trial computes its own), and a side a later stage
changes with new strategies (their initialization draws from a random state that the trial's
training moved). Trials with `train.feature_cache: false` cache nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel

import registry
from peftzoo_engine import feature_cache, resolve_device, resolve_precision, seed_everything
from recipes.compose import compose, planned_steps, stage_plan, switch_stage
from registry.core import Registry

logger = logging.getLogger(__name__)

FEATURE_KEYS = (
    "seed",
    "data",
    "eeg.encoder",
    "eeg.strategy",
    "video.encoder",
    "video.strategy",
    "train.precision",
    "train.device",
    "train.cache_dir",
)
"""What the first stage's frozen features depend on (with the first stage's strategy changes, if staged)."""


def signature(recipe: BaseModel) -> str | None:
    """What a trial's cached features depend on, or None when the pre-pass does not apply to it."""
    dumped = recipe.model_dump(mode="json")
    if not dumped["train"]["feature_cache"]:
        return None
    stages = dumped["train"].get("stages")
    picked = {"first stage": {side: (stages[0].get(side) or None) for side in ("eeg", "video")} if stages else None}
    for key in FEATURE_KEYS:
        node = dumped
        for part in key.split("."):
            node = node[part]
        picked[key] = node
    return json.dumps(picked, sort_keys=True)


def fill(recipes: list[BaseModel], cache_dir: Path, reg: Registry | None = None) -> dict[str, int]:
    """Compute the frozen features of each distinct group of `recipes` into `cache_dir`.

    Returns {"groups": distinct feature groups, "sides": frozen sides computed or found}.
    """
    reg = reg or registry.default()
    groups: dict[str, BaseModel] = {}
    for recipe in recipes:
        key = signature(recipe)
        if key is not None:
            groups.setdefault(key, recipe)
    sides = 0
    for index, recipe in enumerate(groups.values(), 1):
        try:
            sides += _fill_group(recipe, cache_dir, reg, index, len(groups))
        except Exception as exc:  # noqa: BLE001 (one group's failure must not stop the sweep: its trials report it)
            logger.warning(
                "feature pre-pass %d/%d failed (%s: %s); its trials compute their features themselves and report "
                "the problem",
                index,
                len(groups),
                type(exc).__name__,
                exc,
            )
    return {"groups": len(groups), "sides": sides}


def _fill_group(recipe: BaseModel, cache_dir: Path, reg: Registry, index: int, total: int) -> int:
    """Build one group's model as peftzoo_tools.run does, apply its first stage as peftzoo_engine.train does,
    and cache the sides frozen there; returns how many."""
    seed_everything(recipe.seed)
    data = reg.build("datasets", recipe.data, seed=recipe.seed)
    model = compose(recipe, data, reg)
    device = resolve_device(recipe.train.device)
    model.to(device)
    first = stage_plan(recipe)[0]
    seed_everything(recipe.seed)  # as the engine's seed_this_process on a single process, before the first stage
    switch_stage(model, first, reg, planned_steps(recipe, data, 1) * first.epochs)
    dtype = resolve_precision(recipe.train.precision, device)
    frozen = [s for s in ("eeg", "video") if not getattr(model, s).report.trains_encoder]
    logger.info("feature pre-pass %d/%d: %s", index, total, ", ".join(frozen) or "nothing frozen")
    for side in frozen:
        feature_cache.features(
            side,
            getattr(model, side),
            data,
            device,
            cache_dir,
            recipe.eval.batch_size or recipe.train.batch_size,
            recipe.train.num_workers,
            dtype,
        )
    return len(frozen)
