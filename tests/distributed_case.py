"""The model and batch the distributed test compares between 1 and 2 processes."""

from __future__ import annotations

import torch

import registry
from peftzoo_data.base import PairTorchDataset
from recipes import schema
from recipes.compose import compose
from tests.conftest import tiny_recipe

BATCH = 8


def model_and_data():
    """Tiny encoders fully trained on both sides (so gradients cross the gather into the encoders)."""
    reg = registry.default()
    raw = tiny_recipe(**{"eeg.strategy": "full", "video.strategy": "full", "data.n": 40})
    recipe = schema.validate(raw, reg)
    data = reg.build("datasets", recipe.data, seed=recipe.seed)
    torch.manual_seed(0)
    model = compose(recipe, data, reg)
    model.eval()  # no dropout: both runs must see the same function
    return model, data


def global_batches(data, accum_freq: int) -> list[dict[str, torch.Tensor]]:
    """`accum_freq` micro-batches of BATCH training pairs, collated as the loader does."""
    dataset = PairTorchDataset(data, data.split("train"))
    items = [dataset[i] for i in range(BATCH * accum_freq)]
    return [torch.utils.data.default_collate(items[k * BATCH : (k + 1) * BATCH]) for k in range(accum_freq)]


def slice_of(batch: dict[str, torch.Tensor], rank: int, size: int) -> dict[str, torch.Tensor]:
    """Process `rank`'s contiguous slice, as the sharded batch sampler gives it."""
    per = len(batch["index"]) // size
    return {k: v[rank * per : (rank + 1) * per] for k, v in batch.items()}
