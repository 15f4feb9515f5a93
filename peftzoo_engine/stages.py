"""One training stage (train.stages, or the whole run when there are none): its strategies, the
frozen sides' feature caches, its loaders, optimizer and schedule, and its epochs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from peftzoo_engine import feature_cache

from peftzoo_engine import video_cache
from peftzoo_data.base import PairedData
from peftzoo_engine.distributed import BatchEmbedder
from peftzoo_engine.checkpoint import restore_training_state, restore_weights, save_checkpoint
from peftzoo_engine.device import Precision
from peftzoo_engine.epoch import train_epoch
from peftzoo_engine.evaluation import evaluate_epoch, start_loss_epoch
from peftzoo_engine.loaders import make_loaders
from peftzoo_engine.optim import make_optimizer, make_scheduler
from peftzoo_engine.progress import Progress
from peftzoo_engine.selection import after_evaluation
from peftzoo_engine.signals import phase
from peftzoo_engine.summary import strategies_summary
from peftzoo_model.model import DualEncoderCLIP
from peftzoo_engine.rundir import RunDir

logger = logging.getLogger(__name__)


def cache_features(recipe: BaseModel, model: DualEncoderCLIP, data: PairedData, device, cache_dir: Path,
                   precision: Precision) -> PairedData:
    """With train.feature_cache, a frozen side's encoder features are computed once (model.cached)
    and a training video encoder reads clips cached at input size; returns the data to train on."""
    cfg = recipe.train
    model.cached = {}
    if not cfg.feature_cache:
        return data
    batch = recipe.eval.batch_size or cfg.batch_size
    for side in ("eeg", "video"):
        tower = getattr(model, side)
        if not tower.report.trains_encoder:
            model.cached[side] = feature_cache.features(side, tower, data, device, cache_dir, batch, cfg.num_workers, precision.dtype)
    if model.video.report.trains_encoder:
        # The video encoder trains: cache its clips at input size instead (resize and crop once).
        return video_cache.prepare(model.video.encoder, data, cache_dir, batch, cfg.num_workers, device)
    return data


def log_stage_start(run: RunDir, model: DualEncoderCLIP, progress: Progress, index: int, stage, lr: float) -> None:
    """The stage's summary into run.json's stages and metrics.jsonl, and a log line."""
    summary: dict[str, Any] = {
        "stage": index, "epochs": stage.epochs, "lr": lr,
        "trainable_parameters": sum(p.numel() for p in model.trainable_parameters().values()),
        "strategies": strategies_summary(model),
        "cached_features": sorted(model.cached),
    }
    run.info["stages"].append(summary)
    run.write_info()
    run.log({"type": "stage", "epoch": progress.epoch, "step": progress.step, **summary})
    logger.info("stage %d: %d epochs at lr %g, %s trainable parameters (%s; %s)", index, stage.epochs, lr,
                f"{summary['trainable_parameters']:,}", summary["strategies"]["eeg"], summary["strategies"]["video"])


def run_stage(recipe: BaseModel, model: DualEncoderCLIP, data: PairedData, run: RunDir, device, progress: Progress,
              precision: Precision, index: int, stage, first_epoch: int, stage_steps: int, cache_dir: Path,
              checkpoint: dict[str, Any] | None) -> None:
    """Train one stage whose strategies are applied, from its start or from `checkpoint` inside it."""
    cfg = recipe.train
    if checkpoint is not None:
        restore_weights(checkpoint, model)
    with phase(progress, "feature caching"):
        stage_data = cache_features(recipe, model, data, device, cache_dir, precision)
    train_loader, val_loader, in_order_loader = make_loaders(recipe, model, stage_data, device)
    lr = cfg.lr if stage.lr is None else stage.lr
    optimizer = make_optimizer(recipe, model, lr)
    scheduler = make_scheduler(recipe, optimizer, stage_steps, lr)
    if checkpoint is not None:
        restore_training_state(checkpoint, model, optimizer, scheduler, precision, progress)
    else:
        progress.stage, progress.stage_start = index, progress.step
        log_stage_start(run, model, progress, index, stage, lr)
    embed = BatchEmbedder(model, device)
    # An epoch is unfinished after a mid-epoch resume (batch_in_epoch > 0), the stage's last one included.
    while not progress.stopped_early and (progress.epoch < first_epoch + stage.epochs or progress.batch_in_epoch > 0):
        if progress.batch_in_epoch == 0:
            progress.epoch += 1
            if in_order_loader is not None:
                with phase(progress, "the loss's whole-train-set clustering"):
                    start_loss_epoch(model, in_order_loader, data.split("train"), device, progress.epoch, precision)
        with phase(progress, "training steps"):
            train_epoch(recipe, model, train_loader, optimizer, scheduler, progress.stage_start, run, device, progress,
                        precision, embed)
        if val_loader is not None and (progress.epoch % recipe.eval.every_epochs == 0 or progress.epoch == cfg.epochs):
            with phase(progress, "evaluation"):
                metrics = evaluate_epoch(model, val_loader, run, device, progress, precision)
            progress.stopped_early = after_evaluation(recipe, model, run, progress, metrics)
        save_checkpoint(run, model, optimizer, scheduler, precision, progress)
        if progress.stopped_early:
            return
