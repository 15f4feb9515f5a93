"""TensorBoard logging of a run: every metrics.jsonl line as scalars under the same names, at the
line's global step, and at the end the recipe's hyperparameters with the final metrics (add_hparams).

torch.utils.tensorboard is imported here only, when a recipe asks for it (extra `tensorboard`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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
    def __init__(self, log_dir: Path, resume_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise RecipeError("train.loggers: tensorboard needs the tensorboard package: pip install 'peftzoo[tensorboard]'") from None
        # On resume, events an earlier attempt wrote after the checkpoint's step are purged, as metrics.jsonl's lines are.
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
            hparams = {k: hparam_value(v) for k, v in flatten(recipe).items()}
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
