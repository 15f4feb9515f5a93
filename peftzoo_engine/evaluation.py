"""Per-epoch work outside the optimizer steps: validation, and protonce's whole-train-set embeddings."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from peftzoo_engine.context import TrainContext
from peftzoo_engine.progress import Progress
from peftzoo_engine.rundir import RunDir
from peftzoo_model.metrics import embed_split, eval_mode, evaluate

logger = logging.getLogger(__name__)


def start_loss_epoch(ctx: TrainContext) -> None:
    """Give a loss that works on the whole training set (protonce's k-means) its embeddings for this epoch."""
    model, device = ctx.model, ctx.device
    with eval_mode(model), ctx.precision.autocast():
        eeg, video, _ = embed_split(model, ctx.stage.in_order_loader, device)
    train_idx = ctx.data.split("train")
    index = torch.as_tensor(train_idx, dtype=torch.long, device=device)
    model.loss.start_epoch(ctx.progress.epoch, eeg.float(), video.float(), index)


def evaluate_epoch(ctx: TrainContext) -> dict:
    """Validation metrics of this epoch, logged as an eval line and given to the callbacks; returns them."""
    with ctx.precision.autocast():
        metrics = evaluate(ctx.model, ctx.stage.val_loader, ctx.device)
    record_evaluation(ctx.run, ctx.progress, metrics, log=ctx.log)
    ctx.callbacks.call("on_evaluation_end", ctx, metrics)
    return metrics


def record_evaluation(
    run: RunDir, progress: Progress, metrics: dict, log: Callable[[dict], None] | None = None
) -> None:
    """An evaluation's eval line (written with `log`, default run.log) and the progress counters (last
    metrics, best R@1); the batched sweep trainer records its trials' evaluations here too."""
    (log or run.log)({"type": "eval", "epoch": progress.epoch, "step": progress.step, **metrics})
    r1 = metrics["val/eeg_to_video/R@1"]
    progress.last_eval, progress.best = metrics, r1 if progress.best is None else max(progress.best, r1)
    logger.info(
        "epoch %d: val/loss %.4f, R@1 eeg->video %.3f video->eeg %.3f (chance %.3f)",
        progress.epoch,
        metrics["val/loss"],
        r1,
        metrics["val/video_to_eeg/R@1"],
        metrics["val/chance_R@1"],
    )
