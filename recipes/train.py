"""The training loop: AdamW (any timm optimizer), warmup + cosine per step, evaluation, run files.

Parameter groups follow CLIP practice: no weight decay on biases, norms, embeddings or the
temperature; encoder parameters take their strategy's lr multiplier (timm's schedulers honour
`lr_scale` in a param group). Each epoch logs `data_wait_frac`, the share of step time spent
waiting for the data loader.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import timm.optim
import torch
from pydantic import BaseModel
from timm.scheduler import CosineLRScheduler
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

import registry
from recipes import distributed, feature_cache, video_cache
from recipes.compose import planned_steps, stage_plan, switch_stage
from recipes.data.base import DataError, PairedData, PairTorchDataset
from recipes.data.sampler import GroupDisjointBatches, InOrder, IndexBatches, ShuffledBatches
from recipes.errors import RecipeError
from recipes.distributed import BatchEmbedder, gather, gather_with_grad
from recipes.evaluate import embed_split, eval_mode, evaluate
from recipes.model import DualEncoderCLIP
from recipes.rundir import RunDir, atomic_write
from recipes.schema import dump
from recipes.weights import save_trainable, sha256_of, trained_names
from registry.core import Registry

logger = logging.getLogger(__name__)

_NO_DECAY_LEAVES = ("bias", "logit_scale", "logit_bias")
_NO_DECAY_SUFFIXES = ("_embed", "_token", "_bias", "bias_table")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RecipeError(f"train.device: {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RecipeError(f"train.device: {name!r} asked for, but no CUDA device is available; use auto or cpu")
    return device


def decays(name: str, param: torch.nn.Parameter) -> bool:
    """Weight decay only on weight matrices: not biases, norms (1-D), embeddings, temperature."""
    leaf = name.rsplit(".", 1)[-1]
    return param.ndim >= 2 and leaf not in _NO_DECAY_LEAVES and not leaf.endswith(_NO_DECAY_SUFFIXES)


def role(model: DualEncoderCLIP, name: str) -> str:
    """head, adapter (added by a strategy), encoder (a pretrained weight) or loss, for train.lr_scales."""
    if name.startswith("loss."):
        return "loss"
    side, part, rest = name.split(".", 2)
    if part == "head":
        return "head"
    pretrained = getattr(getattr(model, side).encoder, "pretrained_parameter_names", None)
    if pretrained is None:
        return "encoder"
    # peft wraps a targeted layer and moves its weight under base_layer; the weight is still pretrained.
    return "encoder" if rest.replace(".base_layer.", ".") in pretrained else "adapter"


def param_groups(model: DualEncoderCLIP, weight_decay: float, lr_scales: BaseModel | None = None) -> list[dict[str, Any]]:
    """Trainable parameters grouped by (weight decay, role, lr multiplier); the multiplier is the
    role's train.lr_scales entry times the strategy's own (layer decay, full's lr_scale)."""
    lr_scale = {f"eeg.encoder.{n}": s for n, s in model.eeg.report.lr_scale.items()}
    lr_scale.update({f"video.encoder.{n}": s for n, s in model.video.report.lr_scale.items()})
    groups: dict[tuple[bool, str, float], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        kind = role(model, name)
        scale = lr_scale.get(name, 1.0) * (getattr(lr_scales, kind) if lr_scales is not None else 1.0)
        key = (decays(name, p), kind, scale)
        group = groups.setdefault(
            key, {"params": [], "names": [], "role": kind, "weight_decay": weight_decay if key[0] else 0.0, "lr_scale": scale}
        )
        group["params"].append(p)
        group["names"].append(name)
    return list(groups.values())


def use_group_disjoint(recipe: BaseModel, model: DualEncoderCLIP, data: PairedData) -> bool:
    """train.sampler: group_disjoint, random, or auto (group_disjoint when pairs share groups and the
    loss does not mask same-group pairs itself)."""
    choice = recipe.train.sampler
    if choice != "auto":
        return choice == "group_disjoint"
    shares = len(np.unique(data.groups[data.split("train")])) < len(data.split("train"))
    return shares and not getattr(model.loss, "masks_groups", False)


def make_loaders(recipe: BaseModel, model: DualEncoderCLIP, data: PairedData, device: torch.device):
    """Train and validation loaders, and for losses that look at every training pair each epoch
    (protonce) a loader over the train split in order; a side with cached features is not read.

    Under torchrun the train loader of each process yields its slice of every global batch.
    """
    world = distributed.current()
    train_idx, val_idx = data.split("train"), data.split("val")
    if len(train_idx) < 2 * world.size:
        raise DataError(f"the train split has {len(train_idx)} pairs; contrastive training needs at least 2 per process")
    batch = recipe.train.batch_size
    distributed.check_batch_size(batch, world)
    if batch > len(train_idx):
        fitted = len(train_idx) - len(train_idx) % world.size
        logger.warning("train.batch_size %d exceeds the %d training pairs; using %d", batch, len(train_idx), fitted)
        batch = fitted
    workers = recipe.train.num_workers
    common = dict(
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )
    load = {"load_eeg": "eeg" not in model.cached, "load_video": "video" not in model.cached}
    if use_group_disjoint(recipe, model, data):
        batches = GroupDisjointBatches(data.groups[train_idx], batch, recipe.seed)
        if len(batches) == 0:
            raise DataError(f"no batch of {batch} pairs from {batch} different groups can be formed; lower train.batch_size")
    else:
        batches = ShuffledBatches(len(train_idx), batch, recipe.seed)
    batches.shard(world.rank, world.size)
    # Own generators for the loaders' worker seeds: the global RNG (dropout) is then untouched by them.
    common["generator"] = torch.Generator().manual_seed(recipe.seed)

    def loader(indices: np.ndarray, batch_sampler):
        if not any(load.values()):  # both sides cached: batches are indices only
            return IndexBatches(batch_sampler, indices, data.groups)
        return DataLoader(PairTorchDataset(data, indices, **load), batch_sampler=batch_sampler, **common)

    eval_batch = recipe.eval.batch_size or batch
    train = loader(train_idx, batches)
    val = None
    if len(val_idx) >= 2:
        val = loader(val_idx, InOrder(len(val_idx), eval_batch))
    else:
        logger.warning("the validation split has %d pairs; no evaluation will run", len(val_idx))
    in_order = loader(train_idx, InOrder(len(train_idx), eval_batch)) if model.loss.wants_epoch_embeddings else None
    return train, val, in_order


def make_optimizer(recipe: BaseModel, model: DualEncoderCLIP, lr: float):
    cfg = recipe.train
    groups = param_groups(model, cfg.weight_decay, cfg.lr_scales)
    if not groups:
        raise RecipeError("nothing in the model is trainable; check the strategies and heads")
    return timm.optim.create_optimizer_v2(groups, opt=cfg.optimizer, lr=lr, weight_decay=cfg.weight_decay)


def make_scheduler(recipe: BaseModel, optimizer, total_steps: int, lr: float) -> CosineLRScheduler:
    cfg = recipe.train
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else int(round(cfg.warmup_fraction * total_steps))
    warmup = min(warmup, max(total_steps - 1, 0))
    return CosineLRScheduler(
        optimizer,
        t_initial=max(total_steps - warmup, 1),
        lr_min=cfg.min_lr,
        warmup_t=warmup,
        warmup_lr_init=lr / max(warmup, 1),
        warmup_prefix=True,
        t_in_epochs=False,
    )


class NonFiniteError(RecipeError):
    """Too many consecutive steps with a NaN or inf loss or gradient."""


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT arrived; a checkpoint at the current step was written."""

    def __init__(self, signum: int, checkpoint: Path):
        self.signum, self.checkpoint = signum, checkpoint
        super().__init__(f"{signal.Signals(signum).name}: checkpoint written to {checkpoint}")


class _Progress:
    """Where training is, and what a checkpoint must hold to continue exactly from there."""

    def __init__(self) -> None:
        self.step, self.epoch, self.last_eval, self.best, self.warned_wait = 0, 0, {}, None, False
        self.skipped_in_a_row = self.skipped_total = 0
        self.stage = 0
        self.stage_start = 0  # step at which the current stage began (its schedule counts from there)
        self.batch_in_epoch = 0  # batches of the current epoch already trained (mid-epoch checkpoints)
        self.stop_signal: int | None = None

    def state(self) -> dict[str, Any]:
        keys = ("step", "epoch", "last_eval", "best", "skipped_in_a_row", "skipped_total", "stage", "stage_start", "batch_in_epoch")
        return {k: getattr(self, k) for k in keys}


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _save_checkpoint(run: RunDir, model: DualEncoderCLIP, optimizer, scheduler, precision, progress: _Progress) -> None:
    """Everything an exact resume needs, written atomically to checkpoints/last.pt.

    Called on every process (each one's random state is gathered); only the main process writes.
    """
    rng = distributed.gather_objects(_rng_state())
    if not run.writes:
        return
    buffer = io.BytesIO()
    params = dict(model.named_parameters())
    torch.save(
        {
            "format": 2,
            "progress": progress.state(),
            "trained": {n: params[n].detach().cpu() for n in sorted(trained_names(model))},
            "loss": {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in model.loss.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": precision.scaler.state_dict() if precision.scaler else None,
            "rng": rng,
        },
        buffer,
    )
    atomic_write(run.checkpoint_path, buffer.getvalue())


def _restore_rng(states: list[dict[str, Any]]) -> None:
    """This process's random state from a checkpoint's per-process states (same number of processes)."""
    world = distributed.current()
    if len(states) != world.size:
        raise RecipeError(f"the checkpoint was written by {len(states)} processes; resume it with as many (got {world.size})")
    state = states[world.rank]
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for train.precision on `device` (None: fp32, no autocast)."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


class _Precision:
    """Autocast context and, for fp16, a GradScaler; fp32 is a no-op."""

    def __init__(self, name: str, device: torch.device):
        self.dtype = resolve_precision(name, device)
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)


def _global(e: torch.Tensor, v: torch.Tensor, groups: torch.Tensor, index: torch.Tensor):
    """A batch's embeddings, groups and pair indices over all processes (itself for one process)."""
    return gather_with_grad(e), gather_with_grad(v), gather(groups), gather(index)


def accumulated_backward(model: DualEncoderCLIP, micro_batches: list, device: torch.device, precision: "_Precision",
                         embed: BatchEmbedder | None = None) -> torch.Tensor:
    """Backpropagate the loss of all micro-batches together, one micro-batch at a time; returns the loss.

    open_clip's accum-freq: a first pass without gradients embeds every micro-batch; then each is
    embedded again with gradients, put in its place among the others, and the loss over all k*m pairs
    is backpropagated through it alone. Every pair sees all k*m negatives, and the accumulated
    gradient equals that of one batch of k*m pairs, at the cost of a second forward pass.
    Under torchrun every micro-batch is gathered from all processes first (see recipes.distributed).
    """
    scaler = precision.scaler
    embed = embed or BatchEmbedder(model, device)

    def backward(loss: torch.Tensor) -> None:
        (scaler.scale(loss) if scaler else loss).backward()

    def full_loss(e, v, groups, index, last: bool) -> torch.Tensor:
        loss = model.loss(e, v, groups, index=index)
        extra = model.regularization() if last else None
        return loss + extra if extra is not None else loss

    if len(micro_batches) == 1:
        batch = micro_batches[0]
        with precision.autocast():
            e, v, groups = embed(batch, device)
            loss = full_loss(*_global(e, v, groups, batch["index"].to(device)), last=True)
        backward(loss)
        return loss
    with torch.no_grad(), precision.autocast():
        cached = [_global(*model.embed_batch(b, device), b["index"].to(device)) for b in micro_batches]
    groups = torch.cat([c[2] for c in cached])
    index = torch.cat([c[3] for c in cached])
    for j, batch in enumerate(micro_batches):
        last = j == len(micro_batches) - 1
        with contextlib.nullcontext() if last else embed.no_sync():  # one gradient all-reduce per step
            with precision.autocast():
                e_j, v_j, _ = embed(batch, device)
                e_j, v_j = gather_with_grad(e_j), gather_with_grad(v_j)
                e = torch.cat([e_j if i == j else c[0] for i, c in enumerate(cached)])
                v = torch.cat([v_j if i == j else c[1] for i, c in enumerate(cached)])
                loss = full_loss(e, v, groups, index, last)
            backward(loss)
    # The loss's own parameters (temperature, bias) were in every pass's graph: k gradients of the
    # same full-batch loss. Averaging them gives the whole batch's gradient (open_clip sums them).
    for p in model.loss.parameters():
        if p.grad is not None:
            p.grad.div_(len(micro_batches))
    return loss


def _scheduled_lr(optimizer) -> float:
    """The schedule's lr before any multiplier (the groups hold it times their lr_scale)."""
    group = next((g for g in optimizer.param_groups if g.get("lr_scale", 1.0)), optimizer.param_groups[0])
    return group["lr"] / group.get("lr_scale", 1.0) if group.get("lr_scale", 1.0) else group["lr"]


def _train_epoch(recipe, model, loader, optimizer, scheduler, stage_start: int, run: RunDir, device, progress: _Progress,
                 precision: _Precision, embed: BatchEmbedder):
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
            for strategy in model.strategies():
                strategy.after_optimizer_step(progress.step - stage_start)
            progress.skipped_in_a_row = 0
        else:
            skipped += 1
            progress.skipped_total += 1
            progress.skipped_in_a_row += 1
            optimizer.zero_grad(set_to_none=True)
            if scaler:
                scaler.update()
            if progress.skipped_in_a_row >= cfg.max_nonfinite_steps:
                raise NonFiniteError(
                    f"{progress.skipped_in_a_row} steps in a row had a NaN or inf loss or gradient (epoch {progress.epoch}, "
                    f"step {progress.step + 1}); the last good checkpoint is {run.checkpoint_path if run.checkpoint_path.exists() else 'not written yet'}; "
                    f"lower train.lr, set train.grad_clip_norm, or check the data"
                )
        progress.step += 1
        if progress.step % cfg.log_every == 0 and finite:
            value = loss.detach().item()
            bar.set_postfix(loss=f"{value:.4f}")
            run.log({"type": "train", "epoch": progress.epoch, "step": progress.step, "train/loss": value,
                     "lr": _scheduled_lr(optimizer), **model.loss.log_values()})
        progress.batch_in_epoch += len(chunk)
        # Under torchrun a signal may reach one process only: all stop after the same step.
        stop = distributed.max_over_processes(progress.stop_signal or 0, device)
        t_fetch = time.perf_counter()
        compute += t_fetch - t_start
        if stop:
            _save_checkpoint(run, model, optimizer, scheduler, precision, progress)
            raise TrainingInterrupted(stop, run.checkpoint_path)
    progress.batch_in_epoch = 0
    total = wait + compute
    record = {"type": "epoch", "epoch": progress.epoch, "step": progress.step, "data_wait_frac": wait / total if total else 0.0,
              "samples_per_s": len(loader) * loader.batch_sampler.batch_size / total if total else 0.0, "skipped_steps": skipped}
    loader.batch_sampler.set_epoch(progress.epoch + 1)
    run.log(record)
    if record["data_wait_frac"] > 0.2 and not progress.warned_wait and run.writes:
        progress.warned_wait = True
        logger.warning(
            "epoch %d spent %.0f%% of its step time waiting for data (data_wait_frac in metrics.jsonl); "
            "raise train.num_workers", progress.epoch, 100 * record["data_wait_frac"]
        )
    if skipped:
        logger.warning("epoch %d skipped %d steps with a NaN or inf loss or gradient", progress.epoch, skipped)


def _start_loss_epoch(model: DualEncoderCLIP, loader: DataLoader, train_idx: np.ndarray, device, epoch: int,
                      precision: _Precision) -> None:
    """Give a loss that works on the whole training set (protonce's k-means) its embeddings for this epoch."""
    with eval_mode(model), precision.autocast():
        eeg, video, _ = embed_split(model, loader, device)
    model.loss.start_epoch(epoch, eeg.float(), video.float(), torch.as_tensor(train_idx, dtype=torch.long, device=device))


def _evaluate_epoch(recipe, model, val_loader, run: RunDir, device, progress: _Progress, precision: _Precision) -> None:
    with precision.autocast():
        metrics = evaluate(model, val_loader, device)
    run.log({"type": "eval", "epoch": progress.epoch, "step": progress.step, **metrics})
    r1 = metrics["val/eeg_to_video/R@1"]
    progress.last_eval, progress.best = metrics, r1 if progress.best is None else max(progress.best, r1)
    logger.info(
        "epoch %d: val/loss %.4f, R@1 eeg->video %.3f video->eeg %.3f (chance %.3f)",
        progress.epoch, metrics["val/loss"], r1, metrics["val/video_to_eeg/R@1"], metrics["val/chance_R@1"],
    )


def train(
    recipe: BaseModel, model: DualEncoderCLIP, data: PairedData, run: RunDir, device: torch.device,
    reg: Registry | None = None, resume: Path | None = None,
) -> dict[str, Any]:
    """Train `model` as `recipe` says, stage by stage, writing everything into `run`; returns the final metrics.

    With `resume` (a checkpoint of this run), training continues exactly where it stopped: the same
    stage, epoch and batch, with the optimizer, scheduler, scaler and random states it had. SIGTERM
    and SIGINT end the current step, write such a checkpoint and raise TrainingInterrupted.
    """
    cfg = recipe.train
    reg = reg or registry.default()
    if len(data.split("train")) < 2:
        raise DataError(f"the train split has {len(data.split('train'))} pairs; contrastive training needs at least 2")
    model.to(device)
    steps_per_epoch = planned_steps(recipe, data, 1)
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else run.path.parent / ".cache" / "features"
    checkpoint = torch.load(resume, map_location="cpu", weights_only=False) if resume else None  # our own file
    if checkpoint is None:
        run.start(
            dump(recipe),
            {
                "recipe_name": recipe.name,
                "device": str(device),
                "processes": distributed.current().size,
                "trainable_parameters": sum(p.numel() for p in model.trainable_parameters().values()),
                "strategies": {"eeg": model.eeg.report.summary(), "video": model.video.report.summary()},
                "splits": {k: int(len(v)) for k, v in data.splits.items()},
                "stages": [],
            },
        )
    else:
        run.resume(step=checkpoint["progress"]["step"])
    logger.info("run %s: %d epochs x %d steps on %s", run.run_id, cfg.epochs, steps_per_epoch, device)

    progress = _Progress()
    precision = _Precision(cfg.precision, device)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def request_stop(signum, frame):
        progress.stop_signal = signum

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        plan = stage_plan(recipe)
        for index, stage in enumerate(plan):
            stage_steps = steps_per_epoch * stage.epochs
            switch_stage(model, stage, reg, stage_steps)
            if checkpoint is not None and index < checkpoint["progress"]["stage"]:
                continue  # replayed for its strategies only: it finished before the checkpoint
            model.cached = {}
            for side in ("eeg", "video") if cfg.feature_cache else ():
                tower = getattr(model, side)
                if not tower.report.trains_encoder:
                    model.cached[side] = feature_cache.features(
                        side, tower, data, device, cache_dir, recipe.eval.batch_size or cfg.batch_size, cfg.num_workers, precision.dtype
                    )
            stage_data = data
            if cfg.feature_cache and model.video.report.trains_encoder:
                # The video encoder trains: cache its clips at input size instead (resize and crop once).
                stage_data = video_cache.prepare(
                    model.video.encoder, data, cache_dir, recipe.eval.batch_size or cfg.batch_size, cfg.num_workers, device
                )
            train_loader, val_loader, in_order_loader = make_loaders(recipe, model, stage_data, device)
            lr = cfg.lr if stage.lr is None else stage.lr
            optimizer = make_optimizer(recipe, model, lr)
            scheduler = make_scheduler(recipe, optimizer, stage_steps, lr)
            if checkpoint is not None:
                _load_checkpoint(checkpoint, model, optimizer, scheduler, precision, progress)
                checkpoint = None
            else:
                progress.stage, progress.stage_start = index, progress.step
                summary = {
                    "stage": index, "epochs": stage.epochs, "lr": lr,
                    "trainable_parameters": sum(p.numel() for p in model.trainable_parameters().values()),
                    "strategies": {"eeg": model.eeg.report.summary(), "video": model.video.report.summary()},
                    "cached_features": sorted(model.cached),
                }
                run.info["stages"].append(summary)
                run.write_info()
                run.log({"type": "stage", "epoch": progress.epoch, "step": progress.step, **summary})
                logger.info("stage %d: %d epochs at lr %g, %s trainable parameters (%s; %s)", index, stage.epochs, lr,
                            f"{summary['trainable_parameters']:,}", summary["strategies"]["eeg"], summary["strategies"]["video"])
            embed = BatchEmbedder(model, device)
            first_epoch = sum(s.epochs for s in plan[:index])
            while progress.epoch < first_epoch + stage.epochs:
                if progress.batch_in_epoch == 0:
                    progress.epoch += 1
                    if in_order_loader is not None:
                        _start_loss_epoch(model, in_order_loader, data.split("train"), device, progress.epoch, precision)
                _train_epoch(recipe, model, train_loader, optimizer, scheduler, progress.stage_start, run, device, progress,
                             precision, embed)
                if val_loader is not None and (progress.epoch % recipe.eval.every_epochs == 0 or progress.epoch == cfg.epochs):
                    _evaluate_epoch(recipe, model, val_loader, run, device, progress, precision)
                _save_checkpoint(run, model, optimizer, scheduler, precision, progress)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    metadata = {
        "recipe": dump(recipe),
        "base_checkpoints": {
            side: {"path": tower.encoder.cfg.checkpoint, "sha256": sha256_of(tower.encoder.cfg.checkpoint)}
            for side, tower in (("eeg", model.eeg), ("video", model.video))
        },
        "strategies": {"eeg": model.eeg.report.summary(), "video": model.video.report.summary()},
        "strategy_configs": {side: [s.model_dump(mode="json") for s in getattr(recipe, side).strategy] for side in ("eeg", "video")},
    }
    if run.writes:
        save_trainable(model, run.weights_path, metadata)
    run.finish("completed", final_metrics=progress.last_eval, best_val_eeg_to_video_R1=progress.best, steps=progress.step,
               skipped_steps=progress.skipped_total, precision=str(precision.dtype or torch.float32))
    return progress.last_eval


def _load_checkpoint(checkpoint: dict[str, Any], model: DualEncoderCLIP, optimizer, scheduler, precision, progress: _Progress) -> None:
    params = dict(model.named_parameters())
    missing = sorted(set(checkpoint["trained"]) - set(params))
    if missing:
        raise RecipeError(f"the checkpoint holds parameters this model lacks ({missing[:3]}); resume with the run's own recipe.yaml")
    with torch.no_grad():
        for name, value in checkpoint["trained"].items():
            params[name].copy_(value)
    model.ever_trainable |= set(checkpoint["trained"])
    model.loss.load_state_dict(checkpoint["loss"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    if precision.scaler and checkpoint.get("scaler"):
        precision.scaler.load_state_dict(checkpoint["scaler"])
    for key, value in checkpoint["progress"].items():
        setattr(progress, key, value)
    _restore_rng(checkpoint["rng"])
