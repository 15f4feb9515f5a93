"""Metric loggers beside metrics.jsonl (recipe key `train.loggers`): each is a training callback
(peftzoo_engine/callbacks.py) that sees every metrics line through `on_log`.

- jsonl: RUN/metrics.jsonl, always written by the run directory itself;
- tensorboard: RUN/tensorboard/ event files (peftzoo_engine/loggers/tensorboard.py), the same names.

The recipe schema checks the names and that tensorboard is installed, before any run directory exists.
"""

from __future__ import annotations

import types
from typing import Any

NAMES = ("jsonl", "tensorboard")


def make(name: str) -> Any:
    """The callback of the logger `name` (other than jsonl)."""
    if name == "tensorboard":
        from peftzoo_engine.loggers.tensorboard import TensorBoardCallback  # imports torch.utils.tensorboard's helpers

        return TensorBoardCallback()
    raise ValueError(f"{name!r} is not a logger; use one of {', '.join(NAMES)}")


class _Sink:
    """A logger callback fed by a RunDir (its `loggers`), for trainers that write runs without train()."""

    def __init__(self, callback: Any, run, recipe, resume_step: int | None):
        self.callback = callback
        self.ctx = types.SimpleNamespace(run=run, recipe=recipe, resumed_at=resume_step)
        callback.on_run_start(self.ctx)

    def log(self, record: dict[str, Any]) -> None:
        self.callback.on_log(self.ctx, record)

    def finish(self, info: dict[str, Any], recipe: dict[str, Any]) -> None:
        self.callback.on_run_end(self.ctx, info.get("status", "failed"))


def attach(run, recipe, resume_step: int | None = None) -> None:
    """The recipe's loggers (beyond jsonl) as sinks of `run`, which feeds them every metrics line and its end:
    for a trainer that writes run directories without `train()` (peftzoo_tools/sweep/batched/trainer.py)."""
    if not run.writes:
        return
    for name in recipe.train.loggers:
        if name != "jsonl":
            run.loggers.append(_Sink(make(name), run, recipe, resume_step))
