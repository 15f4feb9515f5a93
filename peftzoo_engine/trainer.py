"""`train()`: a run from its start (or a checkpoint) through its stages to the final weights file."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch

import registry
from peftzoo_data.base import DataError, PairedData
from peftzoo_engine import distributed, loggers
from peftzoo_engine.checkpoint import read_checkpoint
from peftzoo_engine.context import Callbacks, TrainContext, default_key
from peftzoo_engine.device import Precision
from peftzoo_engine.display import ProgressDisplay
from peftzoo_engine.errors import TrainingInterrupted
from peftzoo_engine.metadata import weights_metadata
from peftzoo_engine.plan import check as check_plan
from peftzoo_engine.progress import Progress
from peftzoo_engine.rng import seed_this_process
from peftzoo_engine.rundir import RunDir
from peftzoo_engine.signals import StopRequested, stop_requests
from peftzoo_engine.stages import run_stage
from peftzoo_engine.summary import strategies_summary
from peftzoo_engine.weights import save_trainable
from peftzoo_model.model import DualEncoderCLIP
from recipes.compose import planned_steps, stage_plan, switch_stage
from recipes.schema import Recipe, dump
from registry.core import Registry

logger = logging.getLogger(__name__)


def train(
    recipe: Recipe,
    model: DualEncoderCLIP,
    data: PairedData,
    run: RunDir,
    device: torch.device,
    reg: Registry | None = None,
    resume: Path | dict[str, Any] | None = None,
    callbacks: list[Any] | None = None,
    display: bool = True,
) -> dict[str, Any]:
    """Train `model` as `recipe` says, stage by stage, writing everything into `run`; returns the final metrics.

    With `resume` (a checkpoint of this run: its path, or its contents from `read_checkpoint`), training
    continues exactly where it stopped: the same stage, epoch and batch, with the optimizer, scheduler,
    scaler, random and callbacks' states it had. SIGTERM and SIGINT end the current step, write such a
    checkpoint and raise TrainingInterrupted.

    `callbacks` (peftzoo_engine/callbacks.py) are called before those the recipe names (train.callbacks,
    train.loggers); `display` adds the progress display (peftzoo_engine/display.py).
    """
    cfg = recipe.train
    reg = reg or registry.default()
    if len(data.split("train")) < 2:
        raise DataError(f"the train split has {len(data.split('train'))} pairs; contrastive training needs at least 2")
    check_plan(recipe, data)
    model.to(device)
    checkpoint = read_checkpoint(resume) if isinstance(resume, (str, Path)) else resume
    ctx = make_context(recipe, model, data, run, device, reg, callbacks, display)
    if checkpoint is None:
        seed_this_process(recipe.seed)  # the model is built alike everywhere; dropout masks differ per process
        start_run(recipe, model, data, run, device)
    else:
        ctx.resumed_at = checkpoint["progress"]["step"]
        run.resume(step=ctx.resumed_at)
        _log_resume(run, checkpoint["progress"], stage_plan(recipe))
        ctx.callbacks.load_state_dict(checkpoint.get("callbacks") or {})
    logger.info("run %s: %d epochs x %d steps on %s", run.run_id, cfg.epochs, ctx.steps_per_epoch, device)
    with _ended_for_callbacks(ctx):
        with stop_requests(ctx.progress), _interrupted_as(run):
            ctx.callbacks.call("on_run_start", ctx)
            _run_stages(ctx, checkpoint)
        finish_run(recipe, model, run, ctx.progress, ctx.precision)
    return ctx.progress.last_eval


def finish_run(
    recipe: Recipe, model: DualEncoderCLIP, run: RunDir, progress: Progress, precision: Precision, **extra: Any
) -> None:
    """The end of a completed run: its trainable weights, then run.json's final record (also each trial's
    of a batched sweep, with `extra` keys)."""
    if run.writes:
        save_trainable(model, run.weights_path, weights_metadata(recipe, model))
    run.finish(
        "completed",
        final_metrics=progress.last_eval,
        best_val_eeg_to_video_R1=progress.best,
        steps=progress.step,
        skipped_steps=progress.skipped_total,
        precision=str(precision.dtype or torch.float32),
        **extra,
    )


def make_context(
    recipe: Recipe,
    model: DualEncoderCLIP,
    data: PairedData,
    run: RunDir,
    device: torch.device,
    reg: Registry,
    callbacks: list[Any] | None = None,
    display: bool = True,
) -> TrainContext:
    """The run's context: its callbacks are those given, then the progress display, then the recipe's."""
    given = list(callbacks or [])
    keys = [default_key(c, i) for i, c in enumerate(given)]
    if display:
        given.append(ProgressDisplay())
        keys.append("display")
    named, named_keys = recipe_callbacks(recipe, reg)
    cfg = recipe.train
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else run.path.parent / ".cache" / "features"
    return TrainContext(
        recipe=recipe,
        model=model,
        data=data,
        run=run,
        device=device,
        precision=Precision(cfg.precision, device),
        reg=reg,
        cache_dir=cache_dir,
        steps_per_epoch=planned_steps(recipe, data, 1),
        total_steps=planned_steps(recipe, data, cfg.epochs) or 0,
        callbacks=Callbacks(given + named, keys + named_keys),
    )


def recipe_callbacks(recipe, reg) -> tuple[list[Any], list[str]]:
    """The callbacks `train.callbacks` names (and `train.loggers` beyond jsonl), built from the registry,
    with their checkpoint keys (`train.callbacks[i]:name`, `train.loggers:name`)."""
    built, keys = [], []
    for i, spec in enumerate(getattr(recipe.train, "callbacks", None) or []):
        built.append(reg.build("callbacks", spec))
        keys.append(f"train.callbacks[{i}]:{spec.name}")
    named = {spec.name for spec in getattr(recipe.train, "callbacks", None) or []}
    for name in recipe.train.loggers:
        if name != "jsonl" and name not in named:  # a logger is the callback of its name, added once
            built.append(loggers.make(name))
            keys.append(f"train.loggers:{name}")
    return built, keys


def _run_stages(ctx: TrainContext, checkpoint: dict[str, Any] | None) -> None:
    """Every stage of the plan in order; those a checkpoint finished are replayed for their strategies only."""
    plan = stage_plan(ctx.recipe)
    for index, stage in enumerate(plan):
        stage_steps = ctx.steps_per_epoch * stage.epochs
        switch_stage(ctx.model, stage, ctx.reg, stage_steps)
        if checkpoint is not None and index < checkpoint["progress"]["stage"]:
            continue  # replayed for its strategies only: it finished before the checkpoint
        first_epoch = sum(s.epochs for s in plan[:index])
        run_stage(ctx, index, stage, first_epoch, stage_steps, checkpoint)
        checkpoint = None
        if ctx.progress.stopped_early:
            break


def start_run(recipe: Recipe, model: DualEncoderCLIP, data: PairedData, run: RunDir, device: torch.device) -> None:
    """recipe.yaml and the first run.json of a new run."""
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


_start_run = start_run  # the name the batched sweep trainer imported (peftzoo_tools/sweep/batched/trainer.py)


def _log_resume(run: RunDir, progress: dict[str, Any], plan: list) -> None:
    """Where a resumed run continues: stage, epoch and step (and the batch, mid-epoch)."""
    epoch, batch = progress["epoch"], progress["batch_in_epoch"]
    at = f"epoch {epoch} after its batch {batch}" if batch else f"the start of epoch {epoch + 1}"
    logger.info(
        "resuming run %s from step %d: stage %d of %d, %s",
        run.run_id,
        progress["step"],
        progress["stage"] + 1,
        len(plan),
        at,
    )


def data_shape(data: PairedData) -> dict[str, Any]:
    """What loaders of the run need to know of its training data (run.json["data"])."""
    return {
        "channels": list(data.channels),
        "sfreq": float(data.sfreq),
        "n_samples": int(data.eeg.shape[2]),
        "frame_shape": [int(x) for x in data.video.shape[1:]],
    }


@contextlib.contextmanager
def _ended_for_callbacks(ctx: TrainContext):
    """Every callback's on_run_end, with how the run ended: completed, interrupted or failed."""
    try:
        yield
    except (TrainingInterrupted, KeyboardInterrupt):
        ctx.callbacks.call("on_run_end", ctx, "interrupted")
        raise
    except BaseException:
        ctx.callbacks.call("on_run_end", ctx, "failed")
        raise
    ctx.callbacks.call("on_run_end", ctx, "completed")


@contextlib.contextmanager
def _interrupted_as(run: RunDir):
    """A stop outside the step loop ends the run as interrupted, resumable from its last checkpoint."""
    try:
        yield
    except StopRequested as stop:
        raise TrainingInterrupted(stop.signum, run.checkpoint_path if run.checkpoint_path.exists() else None) from None
