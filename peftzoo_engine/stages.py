"""One training stage (train.stages, or the whole run when there are none): its strategies, the
frozen sides' feature caches, its loaders, optimizer and schedule, and its epochs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peftzoo_data.base import PairedData
from peftzoo_engine import feature_cache, video_cache
from peftzoo_engine.checkpoint import restore_training_state, restore_weights, save_checkpoint
from peftzoo_engine.context import StageParts, TrainContext
from peftzoo_engine.device import Precision
from peftzoo_engine.distributed import BatchEmbedder
from peftzoo_engine.epoch import train_epoch
from peftzoo_engine.evaluation import evaluate_epoch, start_loss_epoch
from peftzoo_engine.loaders import make_loaders
from peftzoo_engine.optim import make_optimizer, make_scheduler
from peftzoo_engine.progress import Progress
from peftzoo_engine.rundir import RunDir
from peftzoo_engine.selection import after_evaluation
from peftzoo_engine.signals import phase
from peftzoo_engine.summary import strategies_summary
from peftzoo_model.model import DualEncoderCLIP
from recipes.schema import Recipe

logger = logging.getLogger(__name__)


def cache_features(
    recipe: Recipe, model: DualEncoderCLIP, data: PairedData, device, cache_dir: Path, precision: Precision
) -> PairedData:
    """With train.feature_cache, a frozen side's encoder features are computed once (model.cached)
    and a training video encoder reads clips cached at input size; returns the data to train on.
    (Public: the batched sweep trainer caches with it too.)"""
    cfg = recipe.train
    model.cached = {}
    if not cfg.feature_cache:
        return data
    batch = recipe.eval.batch_size or cfg.batch_size
    for side in ("eeg", "video"):
        tower = getattr(model, side)
        if not tower.report.trains_encoder:
            model.cached[side] = feature_cache.features(
                side, tower, data, device, cache_dir, batch, cfg.num_workers, precision.dtype
            )
    if model.video.report.trains_encoder:
        # The video encoder trains: cache its clips at input size instead (resize and crop once).
        return video_cache.prepare(model.video.encoder, data, cache_dir, batch, cfg.num_workers, device)
    return data


def log_stage_start(
    run: RunDir,
    model: DualEncoderCLIP,
    progress: Progress,
    index: int,
    stage,
    lr: float,
    log: Callable[[dict], None] | None = None,
) -> None:
    """The stage's summary into run.json's stages and metrics.jsonl (with `log`, default run.log), and a log line.
    (Public: the batched sweep trainer logs its stages with it too.)"""
    summary: dict[str, Any] = {
        "stage": index,
        "epochs": stage.epochs,
        "lr": lr,
        "trainable_parameters": sum(p.numel() for p in model.trainable_parameters().values()),
        "strategies": strategies_summary(model),
        "cached_features": sorted(model.cached),
    }
    run.info["stages"].append(summary)
    run.write_info()
    (log or run.log)({"type": "stage", "epoch": progress.epoch, "step": progress.step, **summary})
    logger.info(
        "stage %d: %d epochs at lr %g, %s trainable parameters (%s; %s)",
        index,
        stage.epochs,
        lr,
        f"{summary['trainable_parameters']:,}",
        summary["strategies"]["eeg"],
        summary["strategies"]["video"],
    )


def _stage_lr(ctx: TrainContext, stage) -> float:
    return ctx.recipe.train.lr if stage.lr is None else stage.lr


def build_stage(ctx: TrainContext, index: int, stage, first_epoch: int, steps: int) -> StageParts:
    """The stage's feature caches, loaders, optimizer and schedule (its strategies are applied already)."""
    with phase(ctx.progress, "feature caching"):
        stage_data = cache_features(ctx.recipe, ctx.model, ctx.data, ctx.device, ctx.cache_dir, ctx.precision)
    train_loader, val_loader, in_order_loader = make_loaders(ctx.recipe, ctx.model, stage_data, ctx.device)
    lr = _stage_lr(ctx, stage)
    optimizer = make_optimizer(ctx.recipe, ctx.model, lr)
    scheduler = make_scheduler(ctx.recipe, optimizer, steps, lr)
    return StageParts(
        index=index,
        stage=stage,
        first_epoch=first_epoch,
        steps=steps,
        optimizer=optimizer,
        scheduler=scheduler,
        train_loader=train_loader,
        val_loader=val_loader,
        in_order_loader=in_order_loader,
        embed=BatchEmbedder(ctx.model, ctx.device),
    )


def run_stage(
    ctx: TrainContext, index: int, stage, first_epoch: int, steps: int, checkpoint: dict[str, Any] | None
) -> None:
    """Train one stage whose strategies are applied, from its start or from `checkpoint` inside it."""
    progress = ctx.progress
    if checkpoint is not None:
        restore_weights(checkpoint, ctx.model)
    ctx.stage = build_stage(ctx, index, stage, first_epoch, steps)
    if checkpoint is not None:
        restore_training_state(checkpoint, ctx.model, ctx.stage.optimizer, ctx.stage.scheduler, ctx.precision, progress)
    else:
        progress.stage, progress.stage_start = index, progress.step
        log_stage_start(ctx.run, ctx.model, progress, index, stage, _stage_lr(ctx, stage), log=ctx.log)
    # An epoch is unfinished after a mid-epoch resume (batch_in_epoch > 0), the stage's last one included.
    while not progress.stopped_early and (progress.epoch < first_epoch + stage.epochs or progress.batch_in_epoch > 0):
        if progress.batch_in_epoch == 0:
            progress.epoch += 1
            if ctx.stage.in_order_loader is not None:
                with phase(progress, "the loss's whole-train-set clustering"):
                    start_loss_epoch(ctx)
        with phase(progress, "training steps"):
            train_epoch(ctx)
        if ctx.stage.val_loader is not None and _evaluates(ctx):
            with phase(progress, "evaluation"):
                metrics = evaluate_epoch(ctx)
            progress.stopped_early = after_evaluation(ctx.recipe, ctx.model, ctx.run, progress, metrics)
        save_checkpoint(ctx)
        if progress.stopped_early:
            return


def _evaluates(ctx: TrainContext) -> bool:
    """Whether this epoch is evaluated: every eval.every_epochs epochs, and the run's last one."""
    epoch = ctx.progress.epoch
    return epoch % ctx.recipe.eval.every_epochs == 0 or epoch == ctx.recipe.train.epochs
