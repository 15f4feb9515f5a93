"""Checks a run must pass before its run directory is made: where it writes, and whether its data can train.

`peftzoo_tools.run` calls `check_run` after the recipe, the data and the model are built and before
`RunDir(...)`, so a mistake that can be found up front (an output path that is a file, a train split
of one pair) is one message and leaves nothing behind: no empty `runs/<id>/checkpoints/`, no
failed run directory. That includes a run whose batches would leave (almost) no unmasked negative
per anchor (`check_negatives`): its loss is 0 or nearly so and it would train nothing, silently.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from peftzoo_data.base import DataError, PairedData
from recipes.errors import RecipeError


def writable_dir(path: str | Path, what: str) -> Path:
    """`path` as a directory this process can create (if absent) and write in; creates nothing.

    os.access is not enough (it says yes to root on a read-only mount), so a temporary file is made
    and removed in the nearest existing ancestor.
    """
    path = Path(path).expanduser()
    absolute = path if path.is_absolute() else Path.cwd() / path
    existing = absolute
    while not existing.exists() and not existing.is_symlink():
        existing = existing.parent
    if not existing.is_dir():
        part = "it" if existing == absolute else f"{str(existing)!r} on its way"
        raise RecipeError(f"{what} {str(path)!r}: {part} is a file, not a directory; give a directory path")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".peftzoo-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RecipeError(
            f"{what} {str(path)!r} is not writable ({exc.strerror or exc}: {str(existing)!r}); give a directory you "
            f"can write to"
        ) from None
    return path


def check_splits(data: PairedData, world_size: int = 1) -> None:
    """The train split has at least the 2 pairs per process that contrastive training needs."""
    n_train = len(data.split("train"))
    need = 2 * world_size
    if n_train >= need:
        return
    sizes = ", ".join(f"{name} {len(idx)}" for name, idx in sorted(data.splits.items())) or "none"
    total = len(data)
    if total < need:
        fix = (
            f"the data set holds {total} pair{'s' if total != 1 else ''}; contrastive training needs at least "
            f"{need} (more in practice)"
        )
    elif n_train == 0 and len(data.split("val")) + len(data.split("test")) == total:
        fix = (
            "every pair is held out (an all-val/test split.npy, or a val_fraction that takes all groups); "
            "label some pairs 'train'"
        )
    else:
        fix = "put more pairs (groups) in the train split"
    per_process = " per process" if world_size > 1 else ""
    raise DataError(
        f"the train split has {n_train} pairs (splits: {sizes}); {fix}; at least {need}{per_process} are needed"
    )


def _sampling(recipe: BaseModel, data: PairedData, masks_groups: bool, world_size: int) -> tuple[np.ndarray, int, bool]:
    """(the train split's stimulus ids, the batch size, whether batches are stimulus-disjoint), as the
    trainer chooses them (peftzoo_engine/loaders.py: train.sampler, auto is disjoint when pairs share a
    stimulus and the loss does not mask them; the batch size capped at the train split)."""
    train = data.split("train")
    ids = np.asarray(data.stimulus_ids)[train]
    distinct = len(np.unique(ids))
    choice = recipe.train.sampler
    disjoint = choice == "group_disjoint" or (choice == "auto" and distinct < len(train) and not masks_groups)
    batch = recipe.train.batch_size
    if batch > len(train):
        batch = len(train) - len(train) % world_size
    return ids, batch, disjoint


def check_group_batches(recipe: BaseModel, data: PairedData, masks_groups: bool, world_size: int = 1) -> None:
    """A stimulus-disjoint batch can be formed: the train split has at least a batch's worth of distinct stimuli."""
    ids, batch, disjoint = _sampling(recipe, data, masks_groups, world_size)
    distinct = len(np.unique(ids))
    if disjoint and distinct < batch:
        raise DataError(
            f"no batch of {batch} pairs of {batch} different stimuli can be formed: the train split has {distinct} "
            f"distinct stimulus ids ({_ids_are(data)}); lower train.batch_size to at most {distinct}, or use a loss "
            f"that "
            f"masks pairs of one stimulus (loss.mask_same_group: true)"
        )


def _ids_are(data: PairedData) -> str:
    if data.stimulus is not None:
        return "stimulus.npy"
    return "the groups, which stand for the stimuli: no stimulus ids given"


def check_negatives(recipe: BaseModel, data: PairedData, masks_groups: bool, world_size: int = 1) -> None:
    """Refuse a run whose batches leave (almost) no unmasked negative per anchor: its loss cannot learn.

    The expected count comes from the sampler and the masking on the train split
    (peftzoo_data/negatives.py); the floor is 0 for certain, and FLOOR_FRACTION of the batch on average.
    """
    from peftzoo_data.negatives import FLOOR_FRACTION, expected_negatives

    ids, batch, disjoint = _sampling(recipe, data, masks_groups, world_size)
    found = expected_negatives(ids, batch, masks_groups, disjoint)
    if not found.too_few:
        return
    if data.stimulus is None:
        fix = (
            "these ids are the data's groups (no stimulus ids given), so masking takes out every pair of one "
            "recording: give each pair its stimulus id (ingest writes stimulus.npy with negatives: {by: stimulus}; "
            "an arrays folder takes stimulus.npy beside groups.npy), or put more groups in the train split"
        )
    else:
        fix = (
            f"put pairs of more stimuli in the train split (it has {found.stimuli}), or give stimulus ids that tell "
            "the stimuli apart (stimulus.npy; ingest's negatives: {by: stimulus})"
        )
    none = ": the loss would be exactly 0 and nothing would train" if found.mean <= 0 else ""
    raise DataError(
        f"too few negatives: {found.describe()}, below the floor of {found.floor:.2f} "
        f"({int(100 * FLOOR_FRACTION)}% of the other pairs){none}; {fix}"
    )


def check_run(
    recipe: BaseModel, data: PairedData, output_dir: str | Path, world_size: int = 1, masks_groups: bool = False
) -> None:
    """Everything about a new run that can be checked before its directory exists.

    `masks_groups`: the composed loss masks pairs of one stimulus itself (then batches may share stimuli).
    """
    writable_dir(output_dir, "--output-dir")
    if recipe.train.cache_dir:
        writable_dir(recipe.train.cache_dir, "train.cache_dir")
    check_splits(data, world_size)
    check_group_batches(recipe, data, masks_groups, world_size)
    check_negatives(recipe, data, masks_groups, world_size)


def check_stages(recipe: BaseModel, data: PairedData, reg) -> None:
    """Every training stage's strategies applied, in order, to a second model built from the recipe,
    so a stage that cannot apply (a second LoRA on a layer an earlier stage adapted) is refused now,
    not after the earlier stages trained. A fresh build rather than a copy: what a strategy wrapped is
    recorded per encoder object. The random state is left as it was (strategies draw initial weights)."""
    import random

    import torch

    from recipes.compose import compose_all_stages, stage_plan

    plan = stage_plan(recipe)
    if len(plan) < 2:
        return
    states = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            compose_all_stages(recipe, data, reg)  # as the trainer does, from the first
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
