"""Metric sinks beside metrics.jsonl, chosen by `train.loggers` (peftzoo_engine.rundir.RunDir forwards to them).

metrics.jsonl (`jsonl`) is written by RunDir itself and is always kept: evaluate, compare and doctor
read it. `tensorboard` mirrors every line into RUN/tensorboard/ under the same names.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Protocol


class MetricLogger(Protocol):
    def log(self, record: dict[str, Any]) -> None: ...

    def finish(self, info: dict[str, Any], recipe: dict[str, Any]) -> None: ...


def check_available(names: list[str]) -> list[str]:
    """`train.loggers` checked at validation time, before any run directory exists."""
    unique = list(dict.fromkeys(names))
    if "jsonl" not in unique:
        raise ValueError("metrics.jsonl is part of every run directory (evaluate, compare and doctor read it); keep jsonl in the list")
    if "tensorboard" in unique and importlib.util.find_spec("tensorboard") is None:
        raise ValueError("tensorboard needs the tensorboard package: pip install 'peftzoo[tensorboard]'")
    return unique


def make(names: list[str], run_path: Path, resume_step: int | None = None) -> list[MetricLogger]:
    """The loggers other than jsonl for a run; `resume_step` drops what an earlier attempt logged after it."""
    out: list[MetricLogger] = []
    if "tensorboard" in names:
        from peftzoo_engine.loggers.tensorboard import TensorBoardLogger

        out.append(TensorBoardLogger(run_path / "tensorboard", resume_step=resume_step))
    return out
