"""`train_batched(recipes, output_dirs)`: train T eligible trials in lockstep as one batched model,
each ending in its own ordinary run directory (recipe.yaml, run.json, metrics.jsonl,
trainable.safetensors), loadable by recipes.load like any run. `resume_batched(checkpoint)`
continues an interrupted group from its checkpoint (peftzoo_tools/sweep/batched/checkpoint.py).

The trials share one data set, one feature cache and one batch order (same seed, data and
encoders: eligibility.batch_key); each keeps its own learning-rate schedule (the engine's timm
scheduler), weight decay and lr scales (its AdamW groups, applied by a stacked AdamW), gradient
clipping, temperature clamp, non-finite step skipping, evaluation, selection and early stopping.
Without dropout a trial's numbers equal its ordinary run's (to float rounding); with dropout each
trial draws its own masks, so they differ as two seeds would.

Per step, everything that grows with the trials is one stacked operation (forward, backward,
gradient norms and clipping, the finite check, AdamW, the temperature clamp) except each trial's
scheduler (a few microseconds each); per epoch, all trials are evaluated in one pass.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from pydantic import BaseModel

import registry
from peftzoo_data.checks import check_eeg
from peftzoo_engine import loggers
from peftzoo_engine.device import Precision, resolve_device
from peftzoo_engine.epoch import count_nonfinite, log_epoch
from peftzoo_engine.errors import NonFiniteError, TrainingInterrupted
from peftzoo_engine.evaluation import record_evaluation
from peftzoo_engine.loaders import make_loaders
from peftzoo_engine.optim import make_optimizer, make_scheduler, scheduled_lr
from peftzoo_engine.plan import check as check_plan
from peftzoo_engine.progress import Progress
from peftzoo_engine.rng import restore_rng, rng_state, seed_everything
from peftzoo_engine.rundir import RunDir
from peftzoo_engine.selection import after_evaluation
from peftzoo_engine.signals import StopRequested, phase, stop_requests
from peftzoo_engine.stages import cache_features, log_stage_start
from peftzoo_engine.trainer import finish_run, start_run
from peftzoo_model.metrics import KS, loader_same_video, ranks
from peftzoo_tools.sweep.batched import checkpoint as checkpoints
from peftzoo_tools.sweep.batched.adamw import StackedAdamW
from peftzoo_tools.sweep.batched.eligibility import batch_key, unsupported_reason
from peftzoo_tools.sweep.batched.stacked import StackedHeads, model_name
from recipes import schema
from recipes.compose import compose, planned_steps, stage_plan, switch_stage
from recipes.errors import RecipeError
from registry.core import Registry

logger = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 60.0
"""A group's checkpoint holds T trials' weights and AdamW moments: written at the end of an epoch at
most this often (the engine writes one per epoch, which for small heads would cost as much as the
epoch), and always when SIGTERM or SIGINT stops the group."""


def check_group(recipes: list[BaseModel], reg: Registry | None = None) -> None:
    """Refuse, before anything is made, trials that cannot share one batched model."""
    if not recipes:
        raise RecipeError("train_batched needs at least one trial")
    for i, recipe in enumerate(recipes):
        if (reason := unsupported_reason(recipe, reg)) is not None:
            raise RecipeError(f"trial {i} cannot train batched: {reason}")
    if len({batch_key(r) for r in recipes}) > 1:
        raise RecipeError(
            "the trials differ in more than head, loss and optimizer numbers "
            "(peftzoo_tools.sweep.batched.eligibility.PER_TRIAL_KEYS); group them by batch_key()"
        )


class _Trial:
    """One trial's recipe, model (parameters viewing the stacks), run directory, optimizer, schedule
    and counters."""

    def __init__(self, recipe, model, run: RunDir, stage_steps: int):
        self.recipe, self.model, self.run = recipe, model, run
        self.progress = Progress()
        self.lr = recipe.train.lr if stage_plan(recipe)[0].lr is None else stage_plan(recipe)[0].lr
        # The engine's own optimizer, never stepped: it carries the groups (weight decay, lr scales) and
        # the schedule sets its lr; the stacked AdamW reads them (StackedAdamW).
        self.optimizer = make_optimizer(recipe, model, self.lr)
        if not isinstance(self.optimizer, torch.optim.AdamW) or any(
            g.get("amsgrad") or g.get("maximize") for g in self.optimizer.param_groups
        ):
            raise RecipeError(f"train.optimizer {recipe.train.optimizer!r} did not make a plain torch AdamW")
        self.scheduler = make_scheduler(recipe, self.optimizer, stage_steps, self.lr)
        self.group_of = {n: i for i, g in enumerate(self.optimizer.param_groups) for n in g["names"]}
        self.running = True


def _build(recipes: list[BaseModel], reg: Registry):
    """Data and one model per trial, as peftzoo_tools.run makes them: seed, data, then each model from the
    same random state, so each head starts where its ordinary run's would."""
    first = recipes[0]
    seed_everything(first.seed)
    data = reg.build("datasets", first.data, seed=first.seed)
    data = check_eeg(data, getattr(first.data, "drop_nonfinite", False), where=f"data ({first.data.name})")
    after_data = rng_state()
    models = []
    for recipe in recipes:
        restore_rng([after_data])
        models.append(compose(recipe, data, reg))
        check_plan(recipe, data)
    return data, models


@contextlib.contextmanager
def _setting_up(group: Progress, runs: list[RunDir], when: str, checkpoint: Path | None):
    """Ctrl-C or SIGTERM while the group is being built: the runs opened so far end as interrupted
    (`when` says at which point) and the group stops with TrainingInterrupted (resumable from
    `checkpoint` where there is one)."""
    try:
        yield
    except (StopRequested, KeyboardInterrupt) as exc:
        for run in runs:
            if run.writes:
                run.finish("interrupted", error=f"{type(exc).__name__} {when}")
        raise TrainingInterrupted(getattr(exc, "signum", None) or group.stop_signal or 2, checkpoint) from None


def train_batched(
    recipes: list[BaseModel],
    output_dirs: list[str | Path],
    reg: Registry | None = None,
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
) -> list[Path]:
    """Train every trial (recipe i into a new run directory under output_dirs[i]); returns the run
    directories. A trial that fails alone (too many non-finite steps) ends as failed in its run.json
    while the others go on. SIGTERM or SIGINT stops the group after the current step with a
    checkpoint (TrainingInterrupted); `resume_batched` continues it."""
    reg = reg or registry.default()
    check_group(recipes, reg)
    if len(output_dirs) != len(recipes):
        raise RecipeError(f"{len(recipes)} recipes but {len(output_dirs)} output directories")
    group = Progress()
    runs: list[RunDir] = []
    ckpt_path = checkpoints.path_for(output_dirs)
    with stop_requests(group):
        with _setting_up(group, runs, "before training began", None):  # nothing to resume yet
            data, models = _build(recipes, reg)
            device = resolve_device(recipes[0].train.device)
            for recipe, model, out in zip(recipes, models, output_dirs):
                model.to(device)
                run = RunDir(out, recipe.name)
                runs.append(run)
                start_run(recipe, model, data, run, device)
                loggers.attach(run, recipe)
                run.info["batched_heads"] = {
                    "trials": len(recipes),
                    "checkpoint": checkpoints.relative(ckpt_path, run.path),
                }
                run.write_info()
        seed_everything(recipes[0].seed)  # as the engine's seed_this_process (one process) before training
        return _guarded(recipes, models, runs, data, device, reg, group, ckpt_path, None, checkpoint_every_s)


def resume_batched(
    checkpoint_path: str | Path, reg: Registry | None = None, checkpoint_every_s: float = CHECKPOINT_EVERY_S
) -> list[Path]:
    """Continue the group whose checkpoint is `checkpoint_path` (its trials' run directories, where
    it recorded them, continue: metrics after the checkpoint's step are dropped, as for a resumed run);
    returns the run directories. Ends equal to the uninterrupted group."""
    reg = reg or registry.default()
    state = checkpoints.read(Path(checkpoint_path))
    run_dirs = checkpoints.run_dirs(Path(checkpoint_path), state)
    recipes = [schema.validate(yaml.safe_load(text), reg) for text in state["recipes"]]
    check_group(recipes, reg)
    group = Progress()
    runs: list[RunDir] = []
    with stop_requests(group):
        with _setting_up(group, runs, "before training resumed", Path(checkpoint_path)):  # the checkpoint still holds
            data, models = _build(recipes, reg)
            device = resolve_device(recipes[0].train.device)
            for recipe, model, run_dir, saved in zip(recipes, models, run_dirs, state["trials"]):
                model.to(device)
                if saved["running"]:
                    run = RunDir.open(run_dir)
                    run.resume(state["position"]["step"])
                    loggers.attach(run, recipe, resume_step=state["position"]["step"])
                else:  # finished (or failed) before the interruption: its run directory is left as it is
                    run = RunDir(run_dir.parent, "", existing=run_dir, writes=False)
                runs.append(run)
        return _guarded(
            recipes, models, runs, data, device, reg, group, Path(checkpoint_path), state, checkpoint_every_s
        )


def _guarded(
    recipes, models, runs, data, device, reg: Registry, group: Progress, ckpt_path: Path, state, every_s: float
) -> list[Path]:
    """Train; whatever stops the group ends its unfinished runs as interrupted (resumable from the
    group's checkpoint) or failed, never as running."""
    precision = Precision(recipes[0].train.precision, device)
    stage = stage_plan(recipes[0])[0]
    stage_steps = planned_steps(recipes[0], data, 1) * stage.epochs
    trials = []
    for recipe, model, run in zip(recipes, models, runs):
        switch_stage(model, stage, reg, stage_steps)
        trials.append(_Trial(recipe, model, run, stage_steps))
    try:
        _train(trials, data, device, precision, stage, group, ckpt_path, state, every_s)
    except (StopRequested, TrainingInterrupted, KeyboardInterrupt) as exc:
        signum = getattr(exc, "signum", None) or group.stop_signal or 2
        saved = ckpt_path if ckpt_path.is_file() else None
        for trial in trials:
            if trial.running:
                trial.run.finish(
                    "interrupted", error=f"{type(exc).__name__}: resume from {saved or 'the start (no checkpoint yet)'}"
                )
        raise TrainingInterrupted(signum, saved) from None
    except BaseException as exc:
        for trial in trials:
            if trial.running:
                trial.run.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    checkpoints.remove(ckpt_path)  # every trial finished: nothing left to resume
    return [t.run.path for t in trials]


class _Group:
    """What the trials of a group share while they train: loaders, the stacked heads and optimizer, the
    cached features, the per-trial clipping norms, and where and how often the group's checkpoint goes."""

    def __init__(
        self,
        trials: list[_Trial],
        data,
        device,
        precision: Precision,
        stage,
        progress: Progress,
        ckpt_path: Path,
        every_s: float,
    ):
        first, cfg0 = trials[0].recipe, trials[0].recipe.train
        out = trials[0].run.path.parent
        cache_dir = Path(cfg0.cache_dir).expanduser() if cfg0.cache_dir else out / ".cache" / "features"
        with phase(progress, "feature caching"):
            stage_data = cache_features(first, trials[0].model, data, device, cache_dir, precision)
        for trial in trials[1:]:
            trial.model.cached = trials[0].model.cached  # same encoders and data: one set of features
        self.train_loader, self.val_loader, _ = make_loaders(first, trials[0].model, stage_data, device)
        self.trials, self.device, self.precision, self.stage, self.progress = trials, device, precision, stage, progress
        self.heads = StackedHeads([t.model for t in trials])
        self.optimizer = _stacked_optimizer(self.heads, trials)
        self.max_norm = torch.tensor([t.recipe.train.grad_clip_norm or math.inf for t in trials], device=device)
        self.clipping = bool(torch.isfinite(self.max_norm).any())
        self.features = trials[0].model.cached
        self.ckpt_path, self.every_s, self.last_checkpoint = ckpt_path, every_s, time.monotonic()

    def start(self, state: dict | None) -> None:
        """A fresh group logs each trial's stage start; a resumed one restores its checkpoint."""
        if state is None:
            for trial in self.trials:
                trial.progress.stage, trial.progress.stage_start = 0, 0
                log_stage_start(trial.run, trial.model, trial.progress, 0, self.stage, trial.lr)
        else:
            checkpoints.restore(state, self.heads, self.optimizer, self.trials)
            self.progress.load_state(state["position"])

    def save(self) -> None:
        checkpoints.save(self.ckpt_path, self.heads, self.optimizer, self.trials, self.progress)
        self.last_checkpoint = time.monotonic()

    def save_if_due(self) -> None:
        """At most every `every_s` seconds, and not after the last epoch (the group ends then)."""
        if (
            time.monotonic() - self.last_checkpoint >= self.every_s
            and any(t.running for t in self.trials)
            and self.progress.epoch < self.stage.epochs
        ):
            self.save()


def _train(
    trials: list[_Trial],
    data,
    device,
    precision: Precision,
    stage,
    group: Progress,
    ckpt_path: Path,
    state: dict | None,
    every_s: float,
) -> None:
    """The stage's epochs for every running trial; each trial ends through the engine's own run ending."""
    shared = _Group(trials, data, device, precision, stage, group, ckpt_path, every_s)
    shared.start(state)
    while (group.epoch < stage.epochs or group.batch_in_epoch > 0) and any(t.running for t in trials):
        if group.batch_in_epoch == 0:
            group.epoch += 1
        live = [t for t in trials if t.running]
        for t in live:
            t.progress.epoch = group.epoch
        wait, compute, skipped = _train_epoch(shared)
        _end_epoch(shared, live, wait, compute, skipped)
        shared.save_if_due()
    for t in trials:
        if t.running:
            _finish(t, precision, len(trials))


def _train_epoch(shared: _Group) -> tuple[float, float, list[int]]:
    """The optimizer steps of one epoch (or its rest, after a resume): (data wait s, compute s, skipped
    steps per trial). A stop signal ends it after the current step with the group's checkpoint."""
    group, loader = shared.progress, shared.train_loader
    loader.batch_sampler.set_epoch(group.epoch, start_batch=group.batch_in_epoch)
    shared.heads.train(True)
    wait = compute = 0.0
    skipped = [0] * len(shared.trials)
    t_fetch = time.perf_counter()
    with phase(group, "training steps"):
        for batch in loader:
            t_start = time.perf_counter()
            wait += t_start - t_fetch
            _step(shared, batch, skipped)
            t_fetch = time.perf_counter()
            compute += t_fetch - t_start
            if group.stop_signal:
                shared.save()
                raise TrainingInterrupted(group.stop_signal, shared.ckpt_path)
    group.batch_in_epoch = 0
    loader.batch_sampler.set_epoch(group.epoch + 1)
    return wait, compute, skipped


def _end_epoch(shared: _Group, live: list[_Trial], wait: float, compute: float, skipped: list[int]) -> None:
    """Each trial's epoch line, and where due its evaluation (one stacked pass for all), recorded and acted on
    (selection, early stopping) by the engine's own functions."""
    epoch, trials = shared.progress.epoch, shared.trials
    due = [
        t
        for t in live
        if t.running
        and shared.val_loader is not None
        and (epoch % t.recipe.eval.every_epochs == 0 or epoch == t.recipe.train.epochs)
    ]
    with phase(shared.progress, "evaluation"):
        evaluations = (
            _evaluate_all(shared.heads, trials, shared.val_loader, shared.features, shared.device, shared.precision)
            if due
            else {}
        )
    for i, t in enumerate(trials):
        if t not in live or not t.running:
            continue
        t.progress.batch_in_epoch = 0
        log_epoch(t.run, t.progress, shared.train_loader, wait, compute, skipped[i])
        if t in due:
            record_evaluation(t.run, t.progress, evaluations[i])
            if after_evaluation(t.recipe, t.model, t.run, t.progress, evaluations[i]):
                t.progress.stopped_early = True
                _finish(t, shared.precision, len(trials))


def _stacked_optimizer(heads: StackedHeads, trials: list[_Trial]) -> StackedAdamW:
    """One AdamW over the stacks; each trial's slice steps with the lr (as its scheduler sets it),
    weight decay, betas and eps of its own optimizer's group for that parameter."""
    return StackedAdamW(
        heads.params,
        [t.optimizer.param_groups for t in trials],
        [{n: t.group_of[model_name(n)] for n in heads.params} for t in trials],
    )


def _step(shared: _Group, batch, skipped: list[int]) -> None:
    """One optimizer step of every running trial, as peftzoo_engine.epoch's optimizer step for each."""
    trials, heads, group, device = shared.trials, shared.heads, shared.progress, shared.device
    for t in trials:
        t.scheduler.step_update(num_updates=group.step)
    for p in heads.params.values():
        p.grad = None
    index = batch["index"].to(device, non_blocking=True)
    groups = batch["stimulus" if "stimulus" in batch else "group"].to(device, non_blocking=True)
    with shared.precision.autocast():
        losses = heads.losses(shared.features["eeg"][index], shared.features["video"][index], groups)
    losses.sum().backward()  # the trials share no parameter: each slice gets its own gradient
    norms = _clipped_norms(heads, shared.max_norm if shared.clipping else None)
    finite_list = torch.isfinite(losses.detach() + norms).tolist()  # the step's one host sync
    active = [t.running and ok for t, ok in zip(trials, finite_list)]
    shared.optimizer.step(active)
    heads.after_step(torch.tensor(active, device=device))
    group.step += 1
    group.batch_in_epoch += 1
    values = None
    for i, t in enumerate(trials):
        if not t.running:
            continue
        if finite_list[i]:
            t.progress.skipped_in_a_row = 0
        else:
            skipped[i] += 1
            _count_nonfinite(t)
        t.progress.step, t.progress.batch_in_epoch = group.step, group.batch_in_epoch
        if group.step % t.recipe.train.log_every == 0 and finite_list[i] and t.running:
            values = values or losses.detach().tolist()
            t.run.log(
                {
                    "type": "train",
                    "epoch": t.progress.epoch,
                    "step": group.step,
                    "train/loss": values[i],
                    "lr": scheduled_lr(t.optimizer),
                    **t.model.loss.log_values(),
                }
            )


def _clipped_norms(heads: StackedHeads, max_norm: torch.Tensor | None) -> torch.Tensor:
    """Each trial's gradient norm, as torch.nn.utils.get_total_norm (the norm of the parameters' gradient
    norms); with `max_norm`, its gradients clipped as clip_grads_with_norm_ (times min(1, max / (norm + 1e-6)))."""
    grads = [p.grad for p in heads.params.values() if p.grad is not None]
    norms = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1) for g in grads]), dim=0
    )
    if max_norm is not None:
        clip = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(clip.reshape(-1, *([1] * (g.ndim - 1))).to(g.dtype))
    return norms


def _evaluate_all(
    heads: StackedHeads, trials: list[_Trial], val_loader, features, device, precision
) -> dict[int, dict]:
    """Every trial's validation metrics from one stacked pass, as peftzoo_tools.evaluate.evaluate computes
    them for one model (the split in the loader's order, the loss over it as one batch)."""
    batches = list(val_loader)
    index = torch.cat([b["index"] for b in batches]).to(device)
    groups = torch.cat([b["stimulus" if "stimulus" in b else "group"] for b in batches]).to(device)
    with precision.autocast():
        eeg, video, losses = heads.evaluation(features["eeg"][index], features["video"][index], groups)
    same = loader_same_video(val_loader, index.cpu().numpy())  # pairs sharing a video, as evaluate() does
    similarity = torch.bmm(eeg, video.transpose(1, 2))
    n = eeg.shape[1]
    columns = [losses]
    for sim in (similarity, similarity.transpose(1, 2)):
        r = torch.vmap(lambda one: ranks(one, same))(sim).float()  # peftzoo_tools.evaluate.ranks for each trial
        columns += [(r <= k).float().mean(-1) for k in KS] + [r.mean(-1), r.median(-1).values]
    columns.append(((~torch.isfinite(eeg)).any(-1).sum(-1) + (~torch.isfinite(video)).any(-1).sum(-1)).float())
    table = torch.stack(columns, 1).tolist()
    names = [
        f"{prefix}/{stat}"
        for prefix in ("val/eeg_to_video", "val/video_to_eeg")
        for stat in [*(f"R@{k}" for k in KS), "mean_rank", "median_rank"]
    ]
    out = {}
    for i, t in enumerate(trials):
        if not t.running:
            continue
        row = table[i]
        metrics = {"val/loss": float(row[0]), **dict(zip(names, row[1:-1]))}
        metrics["val/n"] = int(n)
        metrics["val/chance_R@1"] = 1.0 / max(n if same is None else len(np.unique(same)), 1)
        metrics["val/nonfinite"] = int(row[-1])
        out[i] = metrics
    return out


def _count_nonfinite(trial: _Trial) -> None:
    """The engine's rule (peftzoo_engine.epoch.count_nonfinite) per trial: too many skipped steps in a row
    fail that trial alone, with the engine's message."""
    try:
        count_nonfinite(trial.progress, trial.recipe.train, trial.run)
    except NonFiniteError as exc:
        logger.warning("%s: %s", trial.run.run_id, exc)
        trial.running = False
        trial.run.finish("failed", error=str(exc))


def _finish(trial: _Trial, precision: Precision, group_size: int) -> None:
    """The engine's run ending (weights, then run.json), with the group's size recorded."""
    finish_run(trial.recipe, trial.model, trial.run, trial.progress, precision, batched_heads={"trials": group_size})
    trial.running = False
