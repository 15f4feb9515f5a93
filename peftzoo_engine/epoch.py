"""One training epoch: optimizer steps over the train loader, with per-step logging, non-finite step
skipping and stop requests; the epoch line logs `data_wait_frac`, the share of step time spent
waiting for the data loader, and the samples per second of the steps it trained."""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from adapters.strategies.base import Strategy
from peftzoo_engine import distributed
from peftzoo_engine.accumulation import accumulated_backward
from peftzoo_engine.checkpoint import save_checkpoint
from peftzoo_engine.context import TrainContext
from peftzoo_engine.device import Precision
from peftzoo_engine.errors import NonFiniteError, TrainingInterrupted
from peftzoo_engine.optim import scheduled_lr
from peftzoo_engine.progress import Progress
from peftzoo_engine.rundir import RunDir

logger = logging.getLogger(__name__)


def train_epoch(ctx: TrainContext) -> None:
    """One epoch of the current stage (or its rest, after a mid-epoch resume); logs train lines (every
    train.log_every steps, and the epoch's last step when none fell in it) and the epoch line. A stop
    signal ends it after the current step with a checkpoint at that step."""
    cfg, progress, parts, model = ctx.recipe.train, ctx.progress, ctx.stage, ctx.model
    loader = parts.train_loader
    loader.batch_sampler.set_epoch(progress.epoch, start_batch=progress.batch_in_epoch)
    model.train()
    ctx.callbacks.call("on_epoch_start", ctx)
    step_hooks = ctx.callbacks.step_hooks
    wait = compute = 0.0
    skipped = trained = 0
    first_step = progress.step - progress.batch_in_epoch // cfg.accum_freq + 1  # the epoch's, even after a resume
    loss, finite = None, False
    params = list(model.trainable_parameters().values())
    several_processes = distributed.current().distributed
    # Only strategies with an after-step hook of their own are called each step (AdaLoRA's budget).
    stepped = [s for s in model.strategies() if type(s).after_optimizer_step is not Strategy.after_optimizer_step]
    t_fetch = time.perf_counter()
    micro_batches = iter(loader)
    while True:
        chunk = list(itertools.islice(micro_batches, cfg.accum_freq))
        if len(chunk) < cfg.accum_freq:  # a partial accumulation at the epoch's end is dropped, as drop_last
            break
        t_start = time.perf_counter()
        wait += t_start - t_fetch
        parts.scheduler.step_update(num_updates=progress.step - progress.stage_start)
        loss, finite = _optimizer_step(
            model, chunk, parts.optimizer, params, cfg, ctx.device, ctx.precision, parts.embed
        )
        if finite:
            for strategy in stepped:
                strategy.after_optimizer_step(progress.step - progress.stage_start)
            progress.skipped_in_a_row = 0
        else:
            skipped += 1
            progress.skipped_total += 1
            progress.skipped_in_a_row += 1
        progress.step += 1
        trained += len(chunk)
        for hook in step_hooks:
            hook(ctx, loss, finite)
        if not finite:
            _check_nonfinite(progress, cfg, ctx.run)
        if progress.step % cfg.log_every == 0 and finite:
            _log_train(ctx, loss)
        progress.batch_in_epoch += len(chunk)
        stop = progress.stop_signal or 0
        if several_processes:  # under torchrun a signal may reach one process only: all stop after the same step
            stop = distributed.max_over_processes(stop, ctx.device)
        t_fetch = time.perf_counter()
        compute += t_fetch - t_start
        if stop:
            if progress.batch_in_epoch + cfg.accum_freq > len(loader):  # its last step: the epoch's end comes first
                _log_epoch_loss(ctx, loss, finite, first_step)
            save_checkpoint(ctx)
            raise TrainingInterrupted(stop, ctx.run.checkpoint_path)
    _log_epoch_loss(ctx, loss, finite, first_step)
    progress.batch_in_epoch = 0
    loader.batch_sampler.set_epoch(progress.epoch + 1)
    record = log_epoch(
        ctx.run,
        progress,
        loader,
        wait,
        compute,
        skipped,
        batches=trained,
        log=ctx.log,
        loss_values=getattr(model.loss, "epoch_values", dict)(),
    )
    ctx.callbacks.call("on_epoch_end", ctx, record)


def _log_epoch_loss(ctx: TrainContext, loss: torch.Tensor | None, finite: bool, first_step: int) -> None:
    """The training loss at least once per epoch, whatever train.log_every is: a train line at the epoch's last
    step when none of its steps was a multiple of log_every. Decided from step numbers alone, so a resumed
    run writes the lines an uninterrupted one does."""
    if loss is not None and finite and loss_line_due(ctx.progress.step, ctx.recipe.train.log_every, first_step):
        _log_train(ctx, loss)


def loss_line_due(step: int, log_every: int, first_step: int) -> bool:
    """No step of the epoch from `first_step` to `step` (its last) was a multiple of `log_every`, so its last
    step gets a train line (a trainer that logs its own lines keeps the same rule with this)."""
    return step // log_every * log_every < first_step


def _log_train(ctx: TrainContext, loss: torch.Tensor) -> None:
    ctx.log(
        {
            "type": "train",
            "epoch": ctx.progress.epoch,
            "step": ctx.progress.step,
            "train/loss": loss.detach().item(),
            "lr": scheduled_lr(ctx.stage.optimizer),
            **ctx.model.loss.log_values(),
        }
    )


def _optimizer_step(
    model, chunk, optimizer, params, cfg, device, precision: Precision, embed
) -> tuple[torch.Tensor, bool]:
    """Backward over the chunk's micro-batches, clip, and step unless the loss or gradient is not
    finite; returns (loss, finite)."""
    optimizer.zero_grad(set_to_none=True)
    scaler = precision.scaler
    loss = accumulated_backward(model, chunk, device, precision, embed)
    if scaler:
        scaler.unscale_(optimizer)
    grads = [p.grad for p in params if p.grad is not None]
    if scaler:  # it skips steps with inf gradients itself (that is how it finds its scale): only the loss counts
        finite = bool(torch.isfinite(loss.detach()))
    elif cfg.grad_clip_norm:  # the norm that clipping needs tells whether a gradient is NaN or inf too
        norm = torch.nn.utils.get_total_norm(grads)
        torch.nn.utils.clip_grads_with_norm_(params, cfg.grad_clip_norm, norm)
        finite = bool(torch.isfinite(loss.detach() + norm))
    else:
        finite = all_finite(loss, grads)
    if finite:
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        model.loss.after_optimizer_step()
    else:
        optimizer.zero_grad(set_to_none=True)
        if scaler:
            scaler.update()
    return loss, finite


def all_finite(loss: torch.Tensor, grads: list[torch.Tensor]) -> bool:
    """Whether the loss and every gradient are free of NaN and inf.

    Hand-written because torch has no public "are these finite" over many tensors: the gradient
    scaler's kernel checks a whole list in one call (it also multiplies by the scale, 1 here, which
    changes no value), where a total norm takes a norm per tensor and then one of the norms, twice as
    long on the cached head steps of benchmarks/step_overhead.py.
    """
    found = None
    by_place: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for g in grads:
        by_place.setdefault((g.device, g.dtype), []).append(g)
    for (device, _), tensors in by_place.items():
        here = torch.zeros(1, device=device)
        torch._amp_foreach_non_finite_check_and_unscale_(tensors, here, torch.ones(1, device=device))
        found = here if found is None else found + here.to(found.device)
    # The kernels were queued first: on a GPU the one wait for the gradients also covers the loss.
    return (found is None or not found.item()) and math.isfinite(loss.detach().item())


def count_nonfinite(progress: Progress, cfg, run: RunDir) -> None:
    """Count a skipped step; too many in a row end the run (the batched sweep trainer applies the same
    rule to each of its trials)."""
    progress.skipped_total += 1
    progress.skipped_in_a_row += 1
    _check_nonfinite(progress, cfg, run)


def _check_nonfinite(progress: Progress, cfg, run: RunDir) -> None:
    """Too many skipped steps in a row end the run."""
    if progress.skipped_in_a_row >= cfg.max_nonfinite_steps:
        last = run.checkpoint_path if run.checkpoint_path.exists() else "not written yet"
        raise NonFiniteError(
            f"{progress.skipped_in_a_row} steps in a row had a NaN or inf loss or gradient (epoch {progress.epoch}, "
            f"step {progress.step}); the last good checkpoint is {last}; "
            f"lower train.lr, set train.grad_clip_norm, or check the data"
        )


def log_epoch(
    run: RunDir,
    progress: Progress,
    loader,
    wait: float,
    compute: float,
    skipped: int,
    batches: int | None = None,
    log: Callable[[dict], None] | None = None,
    loss_values: dict | None = None,
) -> dict[str, Any]:
    """The epoch line (data_wait_frac, samples_per_s, skipped_steps), written with `log` (default run.log);
    returns it. `batches`: the loader batches this pass trained (fewer than the epoch's after a mid-epoch
    resume; default all of them), so samples/s counts only what the timed steps trained. `loss_values`: the
    loss's whole-epoch values (train/masked_share: peftzoo_model/losses/base.py)."""
    total = wait + compute
    batches = len(loader) if batches is None else batches
    samples = batches * loader.batch_sampler.batch_size
    record = {
        "type": "epoch",
        "epoch": progress.epoch,
        "step": progress.step,
        "data_wait_frac": wait / total if total else 0.0,
        "samples_per_s": samples / total if total else 0.0,
        "skipped_steps": skipped,
        **(loss_values or {}),
    }
    (log or run.log)(record)
    if record["data_wait_frac"] > 0.2 and not progress.warned_wait and run.writes:
        progress.warned_wait = True
        logger.warning(
            "epoch %d spent %.0f%% of its step time waiting for data (data_wait_frac in metrics.jsonl); "
            "raise train.num_workers",
            progress.epoch,
            100 * record["data_wait_frac"],
        )
    if skipped:
        logger.warning("epoch %d skipped %d steps with a NaN or inf loss or gradient", progress.epoch, skipped)
    return record


_log_epoch = log_epoch  # the name the batched sweep trainer imported (peftzoo_tools/sweep/batched/trainer.py)
