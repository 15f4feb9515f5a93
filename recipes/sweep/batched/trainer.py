"""`train_batched(recipes, output_dirs)`: train T eligible trials in lockstep as one batched model,
each ending in its own ordinary run directory (recipe.yaml, run.json, metrics.jsonl,
trainable.safetensors), loadable by recipes.load like any run.

The trials share one data set, one feature cache and one batch order (same seed, data and
encoders: eligibility.batch_key); each keeps its own learning-rate schedule (the engine's timm
scheduler), weight decay, gradient clipping, temperature clamp, non-finite step skipping, evaluation,
selection and early stopping. Without dropout a trial's numbers equal its ordinary run's (to float
rounding); with dropout each trial draws its own masks, so they differ as two seeds would.
Batched runs write no mid-run checkpoints: an interrupted group is rerun from its start.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel

import registry
from recipes.compose import compose, planned_steps, stage_plan, switch_stage
from recipes.data.checks import check_eeg
from recipes.engine.device import Precision, resolve_device
from recipes.engine.epoch import _log_epoch
from recipes.engine.loaders import make_loaders
from recipes.engine.metadata import weights_metadata
from recipes.engine.optim import make_optimizer, make_scheduler, scheduled_lr
from recipes.engine.plan import check as check_plan
from recipes.engine.progress import Progress
from recipes.engine.rng import restore_rng, rng_state, seed_everything
from recipes.engine.selection import after_evaluation
from recipes.engine.stages import cache_features, log_stage_start
from recipes.engine.trainer import _start_run
from recipes.errors import RecipeError
from recipes.evaluate import loader_same_video, nonfinite, retrieval_metrics
from recipes.rundir import RunDir
from recipes.sweep.batched.adamw import StackedAdamW
from recipes.sweep.batched.eligibility import batch_key, unsupported_reason
from recipes.sweep.batched.stacked import StackedHeads, model_name
from recipes.weights import save_trainable
from registry.core import Registry

logger = logging.getLogger(__name__)


def check_group(recipes: list[BaseModel]) -> None:
    """Refuse, before anything is made, trials that cannot share one batched model."""
    if not recipes:
        raise RecipeError("train_batched needs at least one trial")
    for i, recipe in enumerate(recipes):
        if (reason := unsupported_reason(recipe)) is not None:
            raise RecipeError(f"trial {i} cannot train batched: {reason}")
    if len({batch_key(r) for r in recipes}) > 1:
        raise RecipeError("the trials differ in more than head, loss and optimizer numbers "
                          "(recipes.sweep.batched.eligibility.PER_TRIAL_KEYS); group them by batch_key()")


class _Trial:
    """One trial's recipe, model (parameters viewing the stacks), run directory, schedule and counters."""

    def __init__(self, recipe, model, run: RunDir, stage_steps: int):
        self.recipe, self.model, self.run = recipe, model, run
        self.progress = Progress()
        self.lr = recipe.train.lr if stage_plan(recipe)[0].lr is None else stage_plan(recipe)[0].lr
        # The engine's own optimizer (never stepped) carries the groups, lr scales and the scheduler.
        self.optimizer = make_optimizer(recipe, model, self.lr)
        if not isinstance(self.optimizer, torch.optim.AdamW) or any(
                g.get("amsgrad") or g.get("maximize") for g in self.optimizer.param_groups):
            raise RecipeError(f"train.optimizer {recipe.train.optimizer!r} did not make a plain torch AdamW")
        self.scheduler = make_scheduler(recipe, self.optimizer, stage_steps, self.lr)
        self.group_of = {n: i for i, g in enumerate(self.optimizer.param_groups) for n in g["names"]}
        self.running, self.failed = True, None


def train_batched(recipes: list[BaseModel], output_dirs: list[str | Path], reg: Registry | None = None) -> list[Path]:
    """Train every trial (recipe i into a new run directory under output_dirs[i]); returns the run
    directories. A trial that fails alone (too many non-finite steps) ends as failed in its run.json
    while the others go on."""
    reg = reg or registry.default()
    check_group(recipes)
    if len(output_dirs) != len(recipes):
        raise RecipeError(f"{len(recipes)} recipes but {len(output_dirs)} output directories")
    first = recipes[0]
    cfg0 = first.train
    # As recipes.run: seed, data, then each model from the same random state, so each head starts
    # where its ordinary run's would.
    seed_everything(first.seed)
    data = reg.build("datasets", first.data, seed=first.seed)
    data = check_eeg(data, getattr(first.data, "drop_nonfinite", False), where=f"data ({first.data.name})")
    after_data = rng_state()
    models = []
    for recipe in recipes:
        restore_rng([after_data])
        models.append(compose(recipe, data, reg))
        check_plan(recipe, data)
    device = resolve_device(cfg0.device)
    precision = Precision(cfg0.precision, device)
    steps_per_epoch = planned_steps(first, data, 1)
    stage = stage_plan(first)[0]
    stage_steps = steps_per_epoch * stage.epochs

    trials: list[_Trial] = []
    for recipe, model, out in zip(recipes, models, output_dirs):
        model.to(device)
        run = RunDir(out, recipe.name)
        _start_run(recipe, model, data, run, device)
        switch_stage(model, stage, reg, stage_steps)
        trials.append(_Trial(recipe, model, run, stage_steps))
    try:
        _train(trials, data, device, precision, stage, stage_steps, Path(output_dirs[0]))
    except BaseException as exc:
        for trial in trials:
            if trial.run.info.get("status") not in ("completed", "failed"):
                status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                trial.run.finish(status, error=f"{type(exc).__name__}: {exc}")
        raise
    return [t.run.path for t in trials]


def _train(trials: list[_Trial], data, device, precision: Precision, stage, stage_steps: int, out: Path) -> None:
    first, cfg0 = trials[0].recipe, trials[0].recipe.train
    cache_dir = Path(cfg0.cache_dir).expanduser() if cfg0.cache_dir else out / ".cache" / "features"
    stage_data = cache_features(first, trials[0].model, data, device, cache_dir, precision)
    for trial in trials[1:]:
        trial.model.cached = trials[0].model.cached  # same encoders and data: one set of features
    train_loader, val_loader, _ = make_loaders(first, trials[0].model, stage_data, device)
    for trial in trials:
        trial.progress.stage, trial.progress.stage_start = 0, 0
        log_stage_start(trial.run, trial.model, trial.progress, 0, stage, trial.lr)

    heads = StackedHeads([t.model for t in trials])
    names = list(heads.params)
    betas = torch.tensor([t.optimizer.param_groups[0]["betas"] for t in trials], device=device)
    eps = torch.tensor([t.optimizer.param_groups[0]["eps"] for t in trials], device=device)
    optimizer = StackedAdamW(heads.params, betas, eps)
    group_index = {n: [t.group_of[model_name(n)] for t in trials] for n in names}
    weight_decay = {n: torch.tensor([t.optimizer.param_groups[g]["weight_decay"] for t, g in zip(trials, group_index[n])],
                                    device=device) for n in names}
    max_norm = torch.tensor([t.recipe.train.grad_clip_norm or math.inf for t in trials], device=device)
    max_log_scale = torch.tensor([math.log(t.recipe.loss.max_logit_scale) for t in trials], device=device)
    features = trials[0].model.cached
    step = 0
    for epoch in range(1, stage.epochs + 1):
        live = [t for t in trials if t.running]
        if not live:
            break
        for t in live:
            t.progress.epoch = epoch
        train_loader.batch_sampler.set_epoch(epoch, start_batch=0)
        heads.train(True)
        wait = compute = 0.0
        skipped = [0] * len(trials)
        t_fetch = time.perf_counter()
        for batch in train_loader:
            t_start = time.perf_counter()
            wait += t_start - t_fetch
            for t in trials:
                t.scheduler.step_update(num_updates=step)
            lr = {n: torch.tensor([t.optimizer.param_groups[g]["lr"] for t, g in zip(trials, group_index[n])], device=device)
                  for n in names}
            optimizer.zero_grad()
            index = batch["index"].to(device, non_blocking=True)
            groups = batch["group"].to(device, non_blocking=True)
            with precision.autocast():
                losses = heads.losses(features["eeg"][index], features["video"][index], groups)
            losses.sum().backward()  # the trials share no parameter: each slice gets its own gradient
            grads = [heads.params[n].grad for n in names if heads.params[n].grad is not None]
            norms = torch.stack([g.pow(2).reshape(g.shape[0], -1).sum(1) for g in grads]).sum(0).sqrt()
            clip = (max_norm / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(clip.reshape(-1, *([1] * (g.ndim - 1))).to(g.dtype))
            running = torch.tensor([t.running for t in trials], device=device)
            finite = torch.isfinite(losses.detach() + norms)
            active = finite & running
            optimizer.step(lr, weight_decay, active)
            with torch.no_grad():
                scale = heads.params["loss.logit_scale"]
                scale.copy_(torch.where(active, torch.minimum(scale, max_log_scale).clamp(min=0), scale))
            step += 1
            finite_list, values = finite.tolist(), None
            for i, t in enumerate(trials):
                if not t.running:
                    continue
                progress = t.progress
                if finite_list[i]:
                    progress.skipped_in_a_row = 0
                else:
                    skipped[i] += 1
                    _count_nonfinite(t)
                progress.step = step
                progress.batch_in_epoch += 1
                if step % t.recipe.train.log_every == 0 and finite_list[i] and t.running:
                    values = values or losses.detach().tolist()
                    t.run.log({"type": "train", "epoch": epoch, "step": step, "train/loss": values[i],
                               "lr": scheduled_lr(t.optimizer), **t.model.loss.log_values()})
            t_fetch = time.perf_counter()
            compute += t_fetch - t_start
        train_loader.batch_sampler.set_epoch(epoch + 1)
        due = [t for t in live if t.running and val_loader is not None
               and (epoch % t.recipe.eval.every_epochs == 0 or epoch == t.recipe.train.epochs)]
        evaluations = _evaluate_all(heads, trials, val_loader, features, device, precision) if due else {}
        for t in live:
            if not t.running:
                continue
            t.progress.batch_in_epoch = 0
            _log_epoch(t.run, t.progress, train_loader, wait, compute, skipped[trials.index(t)])
            if t in due:
                metrics = evaluations[trials.index(t)]
                _log_evaluation(t, metrics)
                if after_evaluation(t.recipe, t.model, t.run, t.progress, metrics):
                    t.progress.stopped_early = True
                    _finish(t, precision, len(trials))
        heads.train(True)
    for t in trials:
        if t.running:
            _finish(t, precision, len(trials))


def _evaluate_all(heads: StackedHeads, trials: list[_Trial], val_loader, features, device, precision) -> dict[int, dict]:
    """Every trial's validation metrics from one vmapped pass, as recipes.evaluate.evaluate computes
    them for one model (the split in the loader's order, the loss over it as one batch)."""
    batches = list(val_loader)
    index = torch.cat([b["index"] for b in batches]).to(device)
    groups = torch.cat([b["group"] for b in batches]).to(device)
    with precision.autocast():
        eeg, video, losses = heads.evaluation(features["eeg"][index], features["video"][index], groups)
    losses = losses.tolist()
    same = loader_same_video(val_loader, index.cpu().numpy())  # pairs sharing a video, as evaluate() does
    out = {}
    for i, t in enumerate(trials):
        if not t.running:
            continue
        similarity = eeg[i] @ video[i].t()
        metrics = {"val/loss": float(losses[i])}
        metrics.update(retrieval_metrics(similarity, "val/eeg_to_video", same))
        metrics.update(retrieval_metrics(similarity.t(), "val/video_to_eeg", same))
        metrics["val/n"] = int(len(eeg[i]))
        metrics["val/chance_R@1"] = 1.0 / max(len(eeg[i]) if same is None else len(np.unique(same)), 1)
        metrics["val/nonfinite"] = nonfinite(eeg[i]) + nonfinite(video[i])
        out[i] = metrics
    return out


def _log_evaluation(trial: _Trial, metrics: dict) -> None:
    """As recipes.engine.evaluation.evaluate_epoch: the eval line and the progress counters."""
    progress = trial.progress
    trial.run.log({"type": "eval", "epoch": progress.epoch, "step": progress.step, **metrics})
    r1 = metrics["val/eeg_to_video/R@1"]
    progress.last_eval, progress.best = metrics, r1 if progress.best is None else max(progress.best, r1)


def _count_nonfinite(trial: _Trial) -> None:
    """The engine's rule per trial: too many skipped steps in a row fail that trial alone."""
    progress, cfg = trial.progress, trial.recipe.train
    progress.skipped_total += 1
    progress.skipped_in_a_row += 1
    if progress.skipped_in_a_row >= cfg.max_nonfinite_steps:
        error = (f"{progress.skipped_in_a_row} steps in a row had a NaN or inf loss or gradient (epoch {progress.epoch}, "
                 f"step {progress.step + 1}); lower train.lr, set train.grad_clip_norm, or check the data")
        logger.warning("%s: %s", trial.run.run_id, error)
        trial.running = False
        trial.run.finish("failed", error=error)


def _finish(trial: _Trial, precision: Precision, group_size: int) -> None:
    model, run, progress = trial.model, trial.run, trial.progress
    save_trainable(model, run.weights_path, weights_metadata(trial.recipe, model))
    run.finish("completed", final_metrics=progress.last_eval, best_val_eeg_to_video_R1=progress.best, steps=progress.step,
               skipped_steps=progress.skipped_total, precision=str(precision.dtype or torch.float32),
               batched_heads={"trials": group_size})
    trial.running = False
