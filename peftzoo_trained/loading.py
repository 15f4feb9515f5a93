"""`recipes.load(PATH)` (this module's `load`): a trained model from a run directory or an exported bundle,
ready to embed.

    model = recipes.load("runs/lora_qv-...")          # best.safetensors when the run kept it
    e = model.embed_eeg(eeg_uv)                       # (N, C, T) microvolts -> (N, D), L2-normalized
    v = model.embed_video(frames)                     # uint8 (N, F, H, W, 3) -> (N, D)
    scores, index = model.retrieve(e, v, k=5)         # top-5 videos for each EEG window

A run is rebuilt as training built it: the recipe composed with the run's seed (so parts that no
file holds, such as a frozen randomly initialized encoder, come out the same), every training
stage's strategies applied, then the trained weights loaded (`best.safetensors` when the run kept
its best epoch, else `trainable.safetensors`; it says which). A bundle (peftzoo_trained/bundle.py) needs
neither the recipe's data nor the base checkpoint files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

import registry
from peftzoo_engine import rundir
from peftzoo_engine.device import resolve_device
from peftzoo_engine.rng import seed_everything
from peftzoo_engine.weights import load_trainable
from peftzoo_trained.bundle import is_bundle, read_bundle
from peftzoo_trained.trained_model import Retrieved, TrainedModel  # noqa: F401 (recipes.load's types, named here too)
from recipes import schema
from recipes.compose import compose_all_stages
from registry.errors import UserError

logger = logging.getLogger(__name__)

WEIGHT_FILES = {"best": rundir.BEST_WEIGHTS, "last": rundir.WEIGHTS}


# -- loading -------------------------------------------------------------------------------------
def load(path: str | Path, device: str | torch.device = "auto", checkpoint: str | None = None) -> TrainedModel:
    """The model of a run directory or of a bundle (peftzoo_trained/bundle.py), in eval mode on `device`.

    `checkpoint`: "best" (the run's best.safetensors; an error when it kept none), "last"
    (trainable.safetensors), or None: best when it exists, else last. Bundles hold one set of weights.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise UserError(f"{path} {what}; give a run directory (the one `run:` printed) or a bundle directory")
    if checkpoint not in (None, "best", "last"):
        raise UserError(f"checkpoint {checkpoint!r} is not one of best, last")
    device = resolve_device(device, key="device")
    if is_bundle(path):
        return read_bundle(path, device, checkpoint)
    return _load_run(path, device, checkpoint)


def weights_file(run_dir: Path, checkpoint: str | None) -> tuple[str, Path]:
    """("best" | "last", path) of the weights to use."""
    best, last = rundir.weights_path(run_dir, "best"), rundir.weights_path(run_dir, "last")
    if checkpoint == "best" and not best.is_file():
        raise UserError(
            f"{best} is missing: the run kept no best weights (set train.select in the recipe); use --checkpoint last"
        )
    if checkpoint == "last" or (checkpoint is None and not best.is_file()):
        if not last.is_file():
            status = read_run_json(run_dir).get("status")
            if status in ("interrupted", "running", "failed") and rundir.checkpoint_path(run_dir).is_file():
                raise UserError(
                    f"{last} is missing: the run is {status} and has not written its weights yet; "
                    f"finish it first: python -m recipes.run --resume {run_dir}"
                )
            raise UserError(f"{last} is missing; give a finished run directory (python -m recipes.run prints it)")
        return "last", last
    return "best", best


def read_run_json(run_dir: Path) -> dict:
    """run.json ({} when absent), read by peftzoo_engine.rundir (a damaged file is one message)."""
    return rundir.read_info(run_dir, missing_ok=True)


def rebuild_run(run_dir: Path, checkpoint: str | None = None):
    """(recipe, model with the trained weights, "best" | "last", weights path) of a run directory."""
    recipe_path = run_dir / rundir.RECIPE
    if not recipe_path.is_file():
        raise UserError(f"{recipe_path} is missing; give a finished run directory (python -m recipes.run prints it)")
    which, weights = weights_file(run_dir, checkpoint)
    reg = registry.default()
    recipe = schema.validate(rundir.read_recipe(run_dir), reg, source=str(recipe_path))
    seed_everything(recipe.seed)
    model = compose_all_stages(recipe, None, reg)  # with what every stage added
    load_trainable(model, weights)
    logger.info("%s: loaded the %s weights (%s)", run_dir.name, which, weights.name)
    return recipe, model.eval(), which, weights


def training_data_info(recipe, run_info: dict) -> dict:
    """Channel names, rate, window and frame shape of the training data: run.json["data"], or (runs
    older than that record) the recipe's data set rebuilt; {} when it cannot be read any more."""
    if isinstance(run_info.get("data"), dict) and run_info["data"].get("channels"):
        return dict(run_info["data"])
    try:
        data = registry.default().build("datasets", recipe.data, seed=recipe.seed)
    except UserError as exc:
        logger.warning("the run's data cannot be read (%s); pass the EEG channel names to embed_eeg", exc)
        return {}
    return {
        "channels": list(data.channels),
        "sfreq": float(data.sfreq),
        "n_samples": int(data.eeg.shape[-1]),
        "frame_shape": [int(s) for s in data.video.shape[1:]],
    }


def _load_run(run_dir: Path, device: torch.device, checkpoint: str | None) -> TrainedModel:
    recipe, model, which, weights = rebuild_run(run_dir, checkpoint)
    info = training_data_info(recipe, read_run_json(run_dir))
    if info.get("channels"):
        model.channels = tuple(info["channels"])
    return TrainedModel(
        model,
        source=run_dir,
        weights=which,
        weights_path=weights,
        recipe=recipe,
        data_info=info,
        device=device,
        name=recipe.name,
    )
