"""TensorBoard logging of a run, as a training callback: every metrics.jsonl line as scalars under the
same names, at the line's global step, and at the end the recipe's hyperparameters with the final
metrics (the hparams summaries). `train.loggers: [jsonl, tensorboard]` adds it; so does
`train.callbacks: [tensorboard]` (entry point `peftzoo.callbacks`).

torch.utils.tensorboard is imported when the run starts, only when a recipe asks for it (extra `tensorboard`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from peftzoo_engine.callbacks import Callback
from recipes.errors import RecipeError

SKIPPED = ("type", "epoch", "step", "stage")


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a nested recipe: {"train.lr": 0.001, "eeg.head.name": "mlp", ...}."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def hparam_value(value: Any) -> int | float | str | bool:
    """TensorBoard's hparams take numbers, strings and booleans (torch writes booleans as 1/0): lists and
    None are shown as text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class TensorBoardLogger:
    """The event files of one run: `log(record)` per metrics line, `finish(info, recipe)` at its end."""

    def __init__(self, log_dir: Path, resume_step: int | None = None, recipe: dict[str, Any] | None = None):
        self.recipe = recipe or {}
        """The hyperparameters written at the end, when finish() is given none."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RecipeError(
                "train.loggers: tensorboard needs the tensorboard package: pip install 'peftzoo[tensorboard]'"
            ) from None
        # On resume, events an earlier attempt wrote after the checkpoint's step are purged, as metrics.jsonl's
        # lines are.
        purge = resume_step + 1 if resume_step is not None else None
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge)
        self.last_step = resume_step or 0

    def log(self, record: dict[str, Any]) -> None:
        step = int(record.get("step", self.last_step))
        self.last_step = max(self.last_step, step)
        for name, value in record.items():
            if name in SKIPPED or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            self.writer.add_scalar(name, value, global_step=step)
        self.writer.flush()

    def finish(self, info: dict[str, Any], recipe: dict[str, Any]) -> None:
        if info.get("status") == "completed":
            final = info.get("final_metrics") or {}
            metrics = {k: float(v) for k, v in final.items() if isinstance(v, (int, float)) and math.isfinite(v)}
            hparams = {k: hparam_value(v) for k, v in flatten(recipe or self.recipe).items()}
            if metrics:
                # The three hparams summaries add_hparams writes, written here by hand: add_hparams would open a
                # second event file (in a timestamped subfolder unless run_name=".") and log every final metric
                # again as a scalar at the last step, a duplicate point of the last evaluation's. The HParams tab
                # reads the metrics' values from the scalars this logger already wrote under the same names.
                from torch.utils.tensorboard.summary import hparams as hparams_summaries

                writer = self.writer._get_file_writer()
                for summary in hparams_summaries(hparams, metrics):
                    writer.add_summary(summary, self.last_step)
        self.writer.close()


class TensorBoardCallback(Callback):
    """TensorBoard event files under RUN/tensorboard/: every metrics line, and the hyperparameters at the end."""

    description = "TensorBoard event files under RUN/tensorboard/: every metrics line, the recipe's hyperparameters"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

    @classmethod
    def from_config(cls, config: BaseModel, **context: Any) -> TensorBoardCallback:
        return cls()

    def __init__(self) -> None:
        self.logger: TensorBoardLogger | None = None

    def on_run_start(self, ctx) -> None:
        if ctx.run.writes:
            self.logger = TensorBoardLogger(ctx.run.path / "tensorboard", resume_step=ctx.resumed_at)

    def on_log(self, ctx, record: dict[str, Any]) -> None:
        if self.logger is not None:
            self.logger.log(record)

    def on_run_end(self, ctx, status: str) -> None:
        if self.logger is not None:
            self.logger.finish({**ctx.run.info, "status": status}, ctx.recipe.model_dump(mode="json"))
            self.logger = None
