"""checkpoints/last.pt: everything an exact resume needs (trained weights, running statistics, strategies', loss's
and callbacks' state, optimizer, scheduler, scaler, progress and every process's random state), written atomically.

It holds tensors and plain Python values only and is read with `torch.load(weights_only=True)`:
a resume path comes from the user, and unpickling arbitrary objects from it would run code.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from peftzoo_engine import distributed
from peftzoo_engine.context import TrainContext
from peftzoo_engine.progress import Progress
from peftzoo_engine.rng import restore_rng, rng_state
from peftzoo_engine.rundir import atomic_write
from peftzoo_engine.weights import statistics_buffers, strategy_states, trained_names
from peftzoo_model.model import DualEncoderCLIP
from recipes.errors import RecipeError

FORMAT = 3  # 3: strategies' state; RNG states as tensors (loadable with weights_only=True); "callbacks" may be absent


class CheckpointError(RecipeError):
    """A checkpoint given to --resume that cannot be read or does not belong to this run."""


def save_checkpoint(ctx: TrainContext) -> None:
    """Called on every process (each one's random state is gathered); only the main process writes."""
    run, model, progress, precision = ctx.run, ctx.model, ctx.progress, ctx.precision
    optimizer, scheduler = ctx.stage.optimizer, ctx.stage.scheduler
    rng = distributed.gather_objects(rng_state())
    if not run.writes:
        return
    buffer = io.BytesIO()
    params = dict(model.named_parameters())
    torch.save(
        {
            "format": FORMAT,
            "progress": progress.state(),
            "trained": {n: params[n].detach().cpu() for n in sorted(trained_names(model))},
            "statistics": {n: b.detach().cpu() for n, b in statistics_buffers(model).items()},
            "strategies": strategy_states(model),
            "loss": {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in model.loss.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": precision.scaler.state_dict() if precision.scaler else None,
            "rng": rng,
            "callbacks": ctx.callbacks.state_dict(),
        },
        buffer,
    )
    atomic_write(run.checkpoint_path, buffer.getvalue())


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at `path`, or CheckpointError naming what is wrong (truncated, not ours, old format)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{str(path)!r} holds objects other than tensors and plain values, so it is not a checkpoint "
            f"peftzoo wrote ({str(exc).splitlines()[0]}); it is not loaded"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(
            f"{str(path)!r} cannot be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'empty'}); "
            f"it is truncated or damaged, so this run cannot resume from it"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a peftzoo checkpoint of format {FORMAT} (found {found!r}); "
            f"it was written by another version or program and cannot be resumed"
        )
    return checkpoint


def restore_weights(checkpoint: dict[str, Any], model: DualEncoderCLIP) -> None:
    """The trained parameters and the strategies' state; before anything is computed from the model
    (a frozen side's feature cache depends on adapters trained in earlier stages)."""
    params = dict(model.named_parameters())
    missing = sorted(set(checkpoint["trained"]) - set(params))
    if missing:
        raise CheckpointError(
            f"the checkpoint holds parameters this model lacks ({missing[:3]}); resume with the run's own recipe.yaml"
        )
    with torch.no_grad():
        for name, value in checkpoint["trained"].items():
            params[name].copy_(value)
    statistics = statistics_buffers(model)
    with torch.no_grad():
        for name, value in checkpoint.get("statistics", {}).items():
            if name not in statistics:
                raise CheckpointError(
                    f"the checkpoint holds statistics this model lacks ({name}); resume with the run's own recipe.yaml"
                )
            statistics[name].copy_(value)
    model.ever_trainable |= set(checkpoint["trained"])
    for side, states in checkpoint["strategies"].items():
        applied = getattr(model, side).applied
        for key, state in states.items():
            if key not in applied:
                raise CheckpointError(
                    f"the checkpoint holds state of {side} strategy {key} that this run never applied; "
                    f"resume with the run's own recipe.yaml"
                )
            applied[key][0].load_state_dict(state)


def restore_training_state(
    checkpoint: dict[str, Any], model: DualEncoderCLIP, optimizer, scheduler, precision, progress: Progress
) -> None:
    """Loss, optimizer, scheduler, scaler, progress and random state; after the stage's optimizer exists."""
    model.loss.load_state_dict(checkpoint["loss"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    if precision.scaler and checkpoint.get("scaler"):
        precision.scaler.load_state_dict(checkpoint["scaler"])
    progress.load_state(checkpoint["progress"])
    restore_rng(checkpoint["rng"])
