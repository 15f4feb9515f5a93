"""Seeding, and the random states of a process that a checkpoint holds for an exact resume.

The states are stored as tensors and plain Python values only, so a checkpoint loads with
`torch.load(weights_only=True)` (numpy's MT19937 key array becomes an int64 tensor).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from peftzoo_engine import distributed
from recipes.errors import RecipeError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_this_process(seed: int) -> None:
    """Seed the global RNGs with `seed + rank` (open_clip's practice), after the model is built with
    the shared seed: each process of a torchrun job then draws its own dropout and drop-path masks.
    The loaders and samplers have their own generators, seeded alike on every process."""
    seed_everything(seed + distributed.current().rank)


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached_gaussian)],
        "python": random.getstate(),
    }


def restore_rng(states: list[dict[str, Any]]) -> None:
    """This process's random state from a checkpoint's per-process states (same number of processes)."""
    world = distributed.current()
    if len(states) != world.size:
        raise RecipeError(
            f"the checkpoint was written by {len(states)} processes; resume it with as many (got {world.size})"
        )
    state = states[world.rank]
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
    random.setstate(state["python"])
