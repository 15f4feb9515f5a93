"""train.select and train.early_stopping: keep the best evaluated epoch's weights as
RUN/best.safetensors (run.json["best"]), and stop when the metric stops improving
(run.json["stopped_early"]; the status stays completed).

The state lives in `Progress.selection`, so a resumed run continues both exactly.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from peftzoo_engine import rundir
from peftzoo_engine.metadata import weights_metadata
from peftzoo_engine.progress import Progress
from peftzoo_engine.rundir import RunDir
from peftzoo_engine.weights import save_trainable
from peftzoo_model.model import DualEncoderCLIP
from recipes.schema import Recipe

logger = logging.getLogger(__name__)

BEST_FILE = rundir.BEST_WEIGHTS


def watched(recipe: Recipe) -> tuple[str, str]:
    """(metric, mode) that selection and early stopping follow."""
    select = recipe.train.select
    return (select.metric, select.mode) if select is not None else ("val/eeg_to_video/R@1", "max")


def better(value: float, than: float | None, mode: str, by: float = 0.0) -> bool:
    """`value` improves on `than` by more than `by` (NaN never improves)."""
    if not math.isfinite(value):
        return False
    if than is None:
        return True
    return value > than + by if mode == "max" else value < than - by


def after_evaluation(
    recipe: Recipe, model: DualEncoderCLIP, run: RunDir, progress: Progress, metrics: dict[str, float]
) -> bool:
    """Keep the weights if this epoch is the best so far; returns True when early stopping ends the run."""
    cfg = recipe.train
    if cfg.select is None and cfg.early_stopping is None:
        return False
    metric, mode = watched(recipe)
    value = float(metrics[metric])
    state = progress.selection
    if cfg.select is not None and better(value, state.get("value"), mode):
        state.update(value=value, epoch=progress.epoch, step=progress.step)
        _keep_best(recipe, model, run, progress, metric, mode, value)
    if cfg.early_stopping is None:
        return False
    stopping = cfg.early_stopping
    if better(value, state.get("reference"), mode, stopping.min_delta):
        state.update(reference=value, evaluations_without_improvement=0)
        return False
    state["evaluations_without_improvement"] = state.get("evaluations_without_improvement", 0) + 1
    if state["evaluations_without_improvement"] < stopping.patience:
        return False
    reason = (
        f"{metric} did not improve on {state.get('reference')} by more than {stopping.min_delta} "
        f"for {stopping.patience} evaluations"
    )
    run.info["stopped_early"] = {"epoch": progress.epoch, "reason": reason}
    run.write_info()
    logger.info("early stopping after epoch %d: %s", progress.epoch, reason)
    return True


def _keep_best(
    recipe: Recipe, model: DualEncoderCLIP, run: RunDir, progress: Progress, metric: str, mode: str, value: float
) -> None:
    best: dict[str, Any] = {
        "epoch": progress.epoch,
        "step": progress.step,
        "metric": metric,
        "mode": mode,
        "value": value,
    }
    if run.writes:
        metadata = {**weights_metadata(recipe, model), "epoch": progress.epoch, "metric": metric, "value": value}
        save_trainable(model, run.path / BEST_FILE, metadata)
    run.info["best"] = best
    run.write_info()
    logger.info("epoch %d is the best so far: %s %.4f (%s)", progress.epoch, metric, value, BEST_FILE)
