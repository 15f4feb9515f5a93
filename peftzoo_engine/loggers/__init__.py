"""Metric loggers beside metrics.jsonl (recipe key `train.loggers`): each is a training callback
(peftzoo_engine/callbacks.py) that sees every metrics line through `on_log`.

- jsonl: RUN/metrics.jsonl, always written by the run directory itself;
- tensorboard: RUN/tensorboard/ event files (peftzoo_engine/loggers/tensorboard.py), the same names.

The recipe schema checks the names and that tensorboard is installed, before any run directory exists.
"""

from __future__ import annotations

from typing import Any

from peftzoo_engine.loggers.tensorboard import TensorBoardCallback, TensorBoardLogger

NAMES = ("jsonl", "tensorboard")  # the values recipes.schema allows for train.loggers


def make(name: str) -> Any:
    """The callback of the logger `name` (other than jsonl)."""
    if name == "tensorboard":
        return TensorBoardCallback()
    raise ValueError(f"{name!r} is not a logger; use one of {', '.join(NAMES)}")


def attach(run, recipe, resume_step: int | None = None) -> None:
    """The recipe's loggers (beyond jsonl) as sinks of `run`, which feeds them every metrics line and its end:
    for a trainer that writes run directories without `train()` (peftzoo_tools/sweep/batched/trainer.py)."""
    if run.writes and "tensorboard" in recipe.train.loggers:
        run.loggers.append(TensorBoardLogger(run.path / "tensorboard", resume_step, recipe.model_dump(mode="json")))
