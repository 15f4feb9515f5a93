"""`train()`: a run from its start (or a checkpoint) through its stages to the final weights file."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

import registry
from peftzoo_engine import distributed
from recipes.compose import planned_steps, stage_plan, switch_stage
from peftzoo_data.base import DataError, PairedData
from peftzoo_tools.doctor.live import LiveDoctor
from peftzoo_engine.checkpoint import read_checkpoint
from peftzoo_engine.errors import TrainingInterrupted
from peftzoo_engine.device import Precision
from peftzoo_engine.metadata import weights_metadata
from peftzoo_engine.plan import check as check_plan
from peftzoo_engine.progress import Progress
from peftzoo_engine.rng import seed_this_process
from peftzoo_engine.signals import StopRequested, stop_requests
from peftzoo_engine.stages import run_stage
from peftzoo_engine.summary import strategies_summary
from peftzoo_model.model import DualEncoderCLIP
from peftzoo_engine.rundir import RunDir
from recipes.schema import dump
from peftzoo_engine.weights import save_trainable
from registry.core import Registry

logger = logging.getLogger(__name__)


def train(
    recipe: BaseModel, model: DualEncoderCLIP, data: PairedData, run: RunDir, device: torch.device,
    reg: Registry | None = None, resume: Path | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train `model` as `recipe` says, stage by stage, writing everything into `run`; returns the final metrics.

    With `resume` (a checkpoint of this run: its path, or its contents from `read_checkpoint`), training continues exactly where it stopped: the same
    stage, epoch and batch, with the optimizer, scheduler, scaler and random states it had. SIGTERM
    and SIGINT end the current step, write such a checkpoint and raise TrainingInterrupted.
    """
    cfg = recipe.train
    reg = reg or registry.default()
    if len(data.split("train")) < 2:
        raise DataError(f"the train split has {len(data.split('train'))} pairs; contrastive training needs at least 2")
    check_plan(recipe, data)
    model.to(device)
    steps_per_epoch = planned_steps(recipe, data, 1)
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else run.path.parent / ".cache" / "features"
    checkpoint = read_checkpoint(resume) if isinstance(resume, (str, Path)) else resume
    if checkpoint is None:
        seed_this_process(recipe.seed)  # the model is built alike everywhere; dropout masks differ per process
        start_run(recipe, model, data, run, device)
    else:
        run.resume(step=checkpoint["progress"]["step"])
        _log_resume(run, checkpoint["progress"], stage_plan(recipe))
    logger.info("run %s: %d epochs x %d steps on %s", run.run_id, cfg.epochs, steps_per_epoch, device)

    progress = Progress()
    precision = Precision(cfg.precision, device)
    if run.writes:
        progress.doctor = LiveDoctor.for_recipe(recipe, planned_steps(recipe, data, cfg.epochs) or 0,
                                                {k: int(len(v)) for k, v in data.splits.items()})
        progress.doctor.emit(run, progress.doctor.start(model, eeg=data.eeg))
    with stop_requests(progress), _interrupted_as(run):
        plan = stage_plan(recipe)
        for index, stage in enumerate(plan):
            stage_steps = steps_per_epoch * stage.epochs
            switch_stage(model, stage, reg, stage_steps)
            if checkpoint is not None and index < checkpoint["progress"]["stage"]:
                continue  # replayed for its strategies only: it finished before the checkpoint
            first_epoch = sum(s.epochs for s in plan[:index])
            run_stage(recipe, model, data, run, device, progress, precision, index, stage, first_epoch, stage_steps,
                      cache_dir, checkpoint)
            checkpoint = None
            if progress.stopped_early:
                break

    finish_run(recipe, model, run, progress, precision)
    return progress.last_eval


def finish_run(recipe: BaseModel, model: DualEncoderCLIP, run: RunDir, progress: Progress, precision: Precision,
               **extra: Any) -> None:
    """The end of a completed run: its trainable weights, then run.json's final record (also each trial's
    of a batched sweep, with `extra` keys)."""
    if run.writes:
        save_trainable(model, run.weights_path, weights_metadata(recipe, model))
    run.finish("completed", final_metrics=progress.last_eval, best_val_eeg_to_video_R1=progress.best, steps=progress.step,
               skipped_steps=progress.skipped_total, precision=str(precision.dtype or torch.float32), **extra)


def start_run(recipe: BaseModel, model: DualEncoderCLIP, data: PairedData, run: RunDir, device: torch.device) -> None:
    """recipe.yaml and the first run.json of a new run (also each trial's of a batched sweep)."""
    run.start(
        dump(recipe),
        {
            "recipe_name": recipe.name,
            "device": str(device),
            "processes": distributed.current().size,
            "trainable_parameters": sum(p.numel() for p in model.trainable_parameters().values()),
            "strategies": strategies_summary(model),
            "splits": {k: int(len(v)) for k, v in data.splits.items()},
            "data": data_shape(data),
            "stages": [],
        },
    )


def _log_resume(run: RunDir, progress: dict[str, Any], plan: list) -> None:
    """Where a resumed run continues: stage, epoch and step (and the batch, mid-epoch)."""
    epoch, batch = progress["epoch"], progress["batch_in_epoch"]
    at = f"epoch {epoch} after its batch {batch}" if batch else f"the start of epoch {epoch + 1}"
    logger.info("resuming run %s from step %d: stage %d of %d, %s", run.run_id, progress["step"], progress["stage"] + 1,
                len(plan), at)


def data_shape(data: PairedData) -> dict[str, Any]:
    """What loaders of the run need to know of its training data (run.json["data"])."""
    return {"channels": list(data.channels), "sfreq": float(data.sfreq), "n_samples": int(data.eeg.shape[2]),
            "frame_shape": [int(x) for x in data.video.shape[1:]]}


@contextlib.contextmanager
def _interrupted_as(run: RunDir):
    """A stop outside the step loop ends the run as interrupted, resumable from its last checkpoint."""
    try:
        yield
    except StopRequested as stop:
        raise TrainingInterrupted(stop.signum, run.checkpoint_path if run.checkpoint_path.exists() else None) from None
