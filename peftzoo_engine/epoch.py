"""One training epoch: optimizer steps over the train loader, with per-step logging, non-finite step
skipping and stop requests; the epoch line logs `data_wait_frac`, the share of step time spent
waiting for the data loader."""

from __future__ import annotations

import itertools
import logging
import time

import torch
from tqdm.auto import tqdm

from peftzoo_engine import distributed
from peftzoo_engine.distributed import BatchEmbedder
from peftzoo_engine.accumulation import accumulated_backward
from peftzoo_engine.checkpoint import save_checkpoint
from peftzoo_engine.device import Precision
from peftzoo_engine.errors import NonFiniteError, TrainingInterrupted
from peftzoo_engine.optim import scheduled_lr
from peftzoo_engine.progress import Progress
from peftzoo_engine.rundir import RunDir

logger = logging.getLogger(__name__)


def train_epoch(recipe, model, loader, optimizer, scheduler, stage_start: int, run: RunDir, device, progress: Progress,
                precision: Precision, embed: BatchEmbedder) -> None:
    """One epoch (or its rest, after a mid-epoch resume); logs train lines and the epoch line
    (data_wait_frac, samples/s, skipped steps). A stop signal ends it after the current step with a
    checkpoint at that step."""
    cfg = recipe.train
    loader.batch_sampler.set_epoch(progress.epoch, start_batch=progress.batch_in_epoch)
    model.train()
    wait = compute = 0.0
    skipped = 0
    params = list(model.trainable_parameters().values())
    t_fetch = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {progress.epoch}/{cfg.epochs}", leave=False, dynamic_ncols=True,
               disable=None if run.writes else True)
    micro_batches = iter(bar)
    while True:
        chunk = list(itertools.islice(micro_batches, cfg.accum_freq))
        if len(chunk) < cfg.accum_freq:  # a partial accumulation at the epoch's end is dropped, as drop_last
            break
        t_start = time.perf_counter()
        wait += t_start - t_fetch
        scheduler.step_update(num_updates=progress.step - stage_start)
        loss, finite = _optimizer_step(model, chunk, optimizer, params, cfg, device, precision, embed)
        if progress.doctor is not None:
            progress.doctor.emit(run, progress.doctor.after_step(progress.step + 1, finite))
        if finite:
            for strategy in model.strategies():
                strategy.after_optimizer_step(progress.step - stage_start)
            progress.skipped_in_a_row = 0
        else:
            skipped += 1
            count_nonfinite(progress, cfg, run)
        progress.step += 1
        if progress.step % cfg.log_every == 0 and finite:
            value = loss.detach().item()
            bar.set_postfix(loss=f"{value:.4f}")
            _log(run, progress, {"type": "train", "epoch": progress.epoch, "step": progress.step, "train/loss": value,
                                 "lr": scheduled_lr(optimizer), **model.loss.log_values()})
        progress.batch_in_epoch += len(chunk)
        # Under torchrun a signal may reach one process only: all stop after the same step.
        stop = distributed.max_over_processes(progress.stop_signal or 0, device)
        t_fetch = time.perf_counter()
        compute += t_fetch - t_start
        if stop:
            save_checkpoint(run, model, optimizer, scheduler, precision, progress)
            raise TrainingInterrupted(stop, run.checkpoint_path)
    progress.batch_in_epoch = 0
    loader.batch_sampler.set_epoch(progress.epoch + 1)
    log_epoch(run, progress, loader, wait, compute, skipped, getattr(model.loss, "epoch_values", dict)())


def _optimizer_step(model, chunk, optimizer, params, cfg, device, precision: Precision, embed) -> tuple[torch.Tensor, bool]:
    """Backward over the chunk's micro-batches, clip, and step unless the loss or gradient is not
    finite; returns (loss, finite)."""
    optimizer.zero_grad(set_to_none=True)
    scaler = precision.scaler
    loss = accumulated_backward(model, chunk, device, precision, embed)
    if scaler:
        scaler.unscale_(optimizer)
    # The norm is needed for the non-finite check; clipping with an infinite max would still
    # rescale every gradient by 1.0, a pass over all of them that costs a fifth of a head-only step.
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if cfg.grad_clip_norm:
        torch.nn.utils.clip_grads_with_norm_(params, cfg.grad_clip_norm, norm)
    # One host sync per step. With fp16 the scaler skips steps with inf gradients (that is how it
    # finds its scale), so only the loss counts there.
    finite = bool(torch.isfinite(loss.detach() if scaler else loss.detach() + norm))
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


def count_nonfinite(progress: Progress, cfg, run: RunDir) -> None:
    """Count a skipped step; too many in a row end the run (NonFiniteError; the batched sweep trainer
    applies the same rule to each of its trials)."""
    progress.skipped_total += 1
    progress.skipped_in_a_row += 1
    if progress.skipped_in_a_row >= cfg.max_nonfinite_steps:
        raise NonFiniteError(
            f"{progress.skipped_in_a_row} steps in a row had a NaN or inf loss or gradient (epoch {progress.epoch}, "
            f"step {progress.step + 1}); the last good checkpoint is {run.checkpoint_path if run.checkpoint_path.exists() else 'not written yet'}; "
            f"lower train.lr, set train.grad_clip_norm, or check the data"
        )


def _log(run: RunDir, progress: Progress, record: dict) -> None:
    """A metrics line, passed through the live doctor (peftzoo_tools.doctor.live) when there is one."""
    if progress.doctor is not None:
        progress.doctor.log(run, record)
    else:
        run.log(record)


def log_epoch(run: RunDir, progress: Progress, loader, wait: float, compute: float, skipped: int,
              loss_values: dict | None = None) -> None:
    """The epoch line (data_wait_frac, samples/s, skipped steps, the loss's own epoch values) and its warnings
    (also the batched sweep trainer's)."""
    total = wait + compute
    record = {"type": "epoch", "epoch": progress.epoch, "step": progress.step, "data_wait_frac": wait / total if total else 0.0,
              "samples_per_s": len(loader) * loader.batch_sampler.batch_size / total if total else 0.0, "skipped_steps": skipped,
              **(loss_values or {})}  # the loss's whole-epoch values (train/masked_share: peftzoo_model/losses/base.py)
    _log(run, progress, record)
    if record["data_wait_frac"] > 0.2 and not progress.warned_wait and run.writes:
        progress.warned_wait = True
        logger.warning(
            "epoch %d spent %.0f%% of its step time waiting for data (data_wait_frac in metrics.jsonl); "
            "raise train.num_workers", progress.epoch, 100 * record["data_wait_frac"]
        )
    if skipped:
        logger.warning("epoch %d skipped %d steps with a NaN or inf loss or gradient", progress.epoch, skipped)
