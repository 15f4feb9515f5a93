"""Seeding, and the random states of a process that a checkpoint holds for an exact resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from recipes import distributed
from recipes.errors import RecipeError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def restore_rng(states: list[dict[str, Any]]) -> None:
    """This process's random state from a checkpoint's per-process states (same number of processes)."""
    world = distributed.current()
    if len(states) != world.size:
        raise RecipeError(f"the checkpoint was written by {len(states)} processes; resume it with as many (got {world.size})")
    state = states[world.rank]
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
