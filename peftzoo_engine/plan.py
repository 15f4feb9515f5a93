"""The training plan's arithmetic, checked before anything is written: a plan whose epochs take no
optimizer step would "complete" having trained nothing, and a warmup longer than the steps there are
keeps the learning rate near 0 for the whole run."""

from __future__ import annotations

from peftzoo_data.base import PairedData
from recipes.compose import planned_steps, stage_plan
from recipes.errors import RecipeError
from recipes.schema import Recipe


def check(recipe: Recipe, data: PairedData) -> None:
    """Refuse, with the numbers, a plan that trains nothing or never finishes its warmup.

    `train()` calls it first; the run command should call it after composing, before it makes the
    run directory."""
    cfg = recipe.train
    n = len(data.split("train"))
    per_epoch = planned_steps(recipe, data, 1)
    if per_epoch == 0:
        batch = min(cfg.batch_size, n)
        raise RecipeError(
            f"train.accum_freq: {cfg.accum_freq} micro-batches of {batch} pairs make one optimizer step of "
            f"{cfg.accum_freq * batch} pairs, but the train split has {n} pairs, so an epoch would take 0 steps and "
            f"train nothing; use train.accum_freq <= {max(n // max(batch, 1), 1)} or a smaller train.batch_size"
        )
    if (cfg.select is not None or cfg.early_stopping is not None) and len(data.split("val")) < 2:
        key = "train.select" if cfg.select is not None else "train.early_stopping"
        raise RecipeError(
            f"{key} ranks epochs by their validation metrics, but the validation split has "
            f"{len(data.split('val'))} pairs (at least 2 are needed); raise data.val_fraction or drop {key}"
        )
    if cfg.warmup_steps is None:
        return  # warmup_fraction < 1 always leaves steps after the warmup
    plan = stage_plan(recipe)
    for index, stage in enumerate(plan):
        total = per_epoch * stage.epochs
        if cfg.warmup_steps >= total:
            where = "the run" if len(plan) == 1 else f"train.stages[{index}]"
            raise RecipeError(
                f"train.warmup_steps: {cfg.warmup_steps} warmup steps, but {where} has only {total} optimizer steps "
                f"({per_epoch} per epoch x {stage.epochs} epochs), so the learning rate would never reach its peak; "
                f"use at most {max(total - 1, 0)} or train.warmup_fraction"
            )
