"""Checks a run must pass before its run directory is made: where it writes, and whether its data can train.

`peftzoo_tools.run` calls `check_run` after the recipe, the data and the model are built and before
`RunDir(...)`, so a mistake that can be found up front (an output path that is a file, a train split
of one pair) is one message and leaves nothing behind: no empty `runs/<id>/checkpoints/`, no
failed run directory.
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
            f"{what} {str(path)!r} is not writable ({exc.strerror or exc}: {str(existing)!r}); give a directory you can write to"
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
        fix = f"the data set holds {total} pair{'s' if total != 1 else ''}; contrastive training needs at least {need} (more in practice)"
    elif n_train == 0 and len(data.split("val")) + len(data.split("test")) == total:
        fix = "every pair is held out (an all-val/test split.npy, or a val_fraction that takes all groups); label some pairs 'train'"
    else:
        fix = "put more pairs (groups) in the train split"
    per_process = " per process" if world_size > 1 else ""
    raise DataError(f"the train split has {n_train} pairs (splits: {sizes}); {fix}; at least {need}{per_process} are needed")


def check_group_batches(recipe: BaseModel, data: PairedData, masks_groups: bool, world_size: int = 1) -> None:
    """A group-disjoint batch can be formed: the train split has at least a batch's worth of distinct groups.

    Mirrors the trainer's choice (train.sampler; auto is group-disjoint when pairs share groups and
    the loss does not mask same-group pairs) and its batch size (capped at the train split).
    """
    train = data.split("train")
    groups = np.asarray(data.groups)[train]
    distinct = len(np.unique(groups))
    choice = recipe.train.sampler
    disjoint = choice == "group_disjoint" or (choice == "auto" and distinct < len(train) and not masks_groups)
    batch = recipe.train.batch_size
    if batch > len(train):
        batch = len(train) - len(train) % world_size
    if disjoint and distinct < batch:
        raise DataError(
            f"no batch of {batch} pairs from {batch} different groups can be formed: the train split has {distinct} groups "
            f"(recordings); lower train.batch_size to at most {distinct}, or use a loss that masks same-group pairs"
        )


def check_run(recipe: BaseModel, data: PairedData, output_dir: str | Path, world_size: int = 1,
              masks_groups: bool = False) -> None:
    """Everything about a new run that can be checked before its directory exists.

    `masks_groups`: the composed loss masks same-group pairs itself (then batches may share groups).
    """
    writable_dir(output_dir, "--output-dir")
    if recipe.train.cache_dir:
        writable_dir(recipe.train.cache_dir, "train.cache_dir")
    check_splits(data, world_size)
    check_group_batches(recipe, data, masks_groups, world_size)


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
