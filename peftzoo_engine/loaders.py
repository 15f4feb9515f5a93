"""Train and validation loaders, and the choice of training sampler."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import DataLoader

from peftzoo_data.base import DataError, PairedData, PairTorchDataset
from peftzoo_data.sampler import GroupDisjointBatches, IndexBatches, InOrder, ShuffledBatches
from peftzoo_engine import distributed
from peftzoo_model.model import DualEncoderCLIP
from recipes.schema import Recipe

logger = logging.getLogger(__name__)


def use_group_disjoint(recipe: Recipe, model: DualEncoderCLIP, data: PairedData) -> bool:
    """train.sampler: group_disjoint, random, or auto (group_disjoint when pairs share groups and the
    loss does not mask same-group pairs itself)."""
    choice = recipe.train.sampler
    if choice != "auto":
        return choice == "group_disjoint"
    shares = len(np.unique(data.stimulus_ids[data.split("train")])) < len(data.split("train"))  # negatives: stimulus
    return shares and not getattr(model.loss, "masks_groups", False)


def make_loaders(recipe: Recipe, model: DualEncoderCLIP, data: PairedData, device: torch.device):
    """Train and validation loaders, and for losses that look at every training pair each epoch
    (protonce) a loader over the train split in order; a side with cached features is not read.

    Under torchrun the train loader of each process yields its slice of every global batch.
    """
    world = distributed.current()
    train_idx, val_idx = data.split("train"), data.split("val")
    if len(train_idx) < 2 * world.size:
        raise DataError(
            f"the train split has {len(train_idx)} pairs; contrastive training needs at least 2 per process"
        )
    batch = recipe.train.batch_size
    distributed.check_batch_size(batch, world)
    if batch > len(train_idx):
        fitted = len(train_idx) - len(train_idx) % world.size
        logger.warning("train.batch_size %d exceeds the %d training pairs; using %d", batch, len(train_idx), fitted)
        batch = fitted
    workers = recipe.train.num_workers
    common = dict(
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )
    load = {"load_eeg": "eeg" not in model.cached, "load_video": "video" not in model.cached}
    if use_group_disjoint(recipe, model, data):
        batches = GroupDisjointBatches(data.stimulus_ids[train_idx], batch, recipe.seed)
        if len(batches) == 0:
            raise DataError(
                f"no batch of {batch} pairs of {batch} different stimuli can be formed; lower train.batch_size"
            )
    else:
        batches = ShuffledBatches(len(train_idx), batch, recipe.seed)
    batches.shard(world.rank, world.size)
    # Own generators for the loaders' worker seeds: the global RNG (dropout) is then untouched by them.
    common["generator"] = torch.Generator().manual_seed(recipe.seed)

    def loader(indices: np.ndarray, batch_sampler):
        if not any(load.values()):  # both sides cached: batches are indices only
            return IndexBatches(batch_sampler, indices, data.groups, data=data)
        return DataLoader(PairTorchDataset(data, indices, **load), batch_sampler=batch_sampler, **common)

    eval_batch = recipe.eval.batch_size or batch
    train = loader(train_idx, batches)
    val = None
    if len(val_idx) >= 2:
        val = loader(val_idx, InOrder(len(val_idx), eval_batch))
    else:
        logger.warning("the validation split has %d pairs; no evaluation will run", len(val_idx))
    in_order = loader(train_idx, InOrder(len(train_idx), eval_batch)) if model.loss.wants_epoch_embeddings else None
    return train, val, in_order
