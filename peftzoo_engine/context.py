"""What the parts of a training run share, in one object instead of long parameter lists.

`TrainContext` is made once by `train()` and handed to the stage, epoch and evaluation code and to
every callback hook; `StageParts` holds what one stage builds (loaders, optimizer, schedule);
`Callbacks` calls the run's callbacks hook by hook (the hooks: peftzoo_engine/callbacks.py).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from peftzoo_data.base import PairedData
from peftzoo_engine.device import Precision
from peftzoo_engine.distributed import BatchEmbedder
from peftzoo_engine.progress import Progress
from peftzoo_engine.rundir import RunDir
from peftzoo_model.model import DualEncoderCLIP
from recipes.schema import Recipe
from registry.core import Registry

logger = logging.getLogger(__name__)

HOOKS = ("on_run_start", "on_epoch_start", "on_step_end", "on_epoch_end", "on_evaluation_end", "on_log", "on_run_end")


class Callbacks:
    """The run's callbacks, called hook by hook. Each hook keeps the list of callbacks that define it,
    so a step costs nothing for callbacks without `on_step_end`."""

    def __init__(self, callbacks: list[Any] | None = None, keys: list[str] | None = None):
        self.items = list(callbacks or [])
        self.keys = list(keys) if keys is not None else [default_key(c, i) for i, c in enumerate(self.items)]
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"two callbacks share a checkpoint key: {self.keys}")
        self._by_hook = {hook: [getattr(c, hook) for c in self.items if _defines(c, hook)] for hook in HOOKS}
        self.step_hooks = self._by_hook["on_step_end"]
        """The on_step_end methods, for the step loop to call directly."""

    def __len__(self) -> int:
        return len(self.items)

    def call(self, hook: str, *args: Any) -> None:
        for method in self._by_hook[hook]:
            method(*args)

    def state_dict(self) -> dict[str, Any]:
        """Each stateful callback's state by its key (the checkpoint's "callbacks")."""
        return {
            key: c.state_dict() for key, c in zip(self.keys, self.items) if callable(getattr(c, "state_dict", None))
        }

    def load_state_dict(self, states: dict[str, Any]) -> None:
        """Give each callback the state the checkpoint holds for its key; a stateful callback whose key the
        checkpoint lacks (added since) starts fresh, with a warning."""
        for key, c in zip(self.keys, self.items):
            if not callable(getattr(c, "load_state_dict", None)):
                continue
            if key in states:
                c.load_state_dict(states[key])
            else:
                logger.warning("callback %s has no state in the checkpoint; it starts fresh", key)


def _defines(callback: Any, hook: str) -> bool:
    """The callback has the hook, and not as the base class's do-nothing method (peftzoo_engine/callbacks.py)."""
    method = getattr(callback, hook, None)
    return callable(method) and not getattr(method, "does_nothing", False)


def default_key(callback: Any, index: int) -> str:
    """The checkpoint key of a callback given to train() directly: its place and class."""
    return f"{index}:{type(callback).__name__}"


@dataclasses.dataclass
class StageParts:
    """One stage's strategies applied, and what it trains with."""

    index: int
    stage: Any
    """The stage of recipes.compose.stage_plan: epochs, lr, strategy changes."""
    first_epoch: int
    """Epochs of the stages before it."""
    steps: int
    """Its optimizer steps (its schedule's length)."""
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_loader: Any
    val_loader: Any
    in_order_loader: Any
    """Over the train split in order, for losses that embed it every epoch (protonce); else None."""
    embed: BatchEmbedder


@dataclasses.dataclass
class TrainContext:
    """A training run: its recipe, model and data, where it writes, and where it is."""

    recipe: Recipe
    model: DualEncoderCLIP
    data: PairedData
    run: RunDir
    device: torch.device
    precision: Precision
    reg: Registry
    cache_dir: Path
    steps_per_epoch: int
    total_steps: int
    progress: Progress = dataclasses.field(default_factory=Progress)
    callbacks: Callbacks = dataclasses.field(default_factory=Callbacks)
    resumed_at: int | None = None
    """The checkpoint's step when this run resumed; None for a run from its start."""
    stage: StageParts | None = None
    """The stage training now."""

    def log(self, record: dict[str, Any]) -> None:
        """One metrics line: into metrics.jsonl, then to every callback's on_log."""
        self.run.log(record)
        self.callbacks.call("on_log", self, record)
