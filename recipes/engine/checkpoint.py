"""checkpoints/last.pt: everything an exact resume needs (trained weights, loss, optimizer,
scheduler, scaler, progress and every process's random state), written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from recipes import distributed
from recipes.engine.progress import Progress
from recipes.engine.rng import restore_rng, rng_state
from recipes.errors import RecipeError
from recipes.model import DualEncoderCLIP
from recipes.rundir import RunDir, atomic_write
from recipes.weights import trained_names


def save_checkpoint(run: RunDir, model: DualEncoderCLIP, optimizer, scheduler, precision, progress: Progress) -> None:
    """Called on every process (each one's random state is gathered); only the main process writes."""
    rng = distributed.gather_objects(rng_state())
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


def read_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)  # our own file


def load_checkpoint(checkpoint: dict[str, Any], model: DualEncoderCLIP, optimizer, scheduler, precision, progress: Progress) -> None:
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
    progress.load_state(checkpoint["progress"])
    restore_rng(checkpoint["rng"])
