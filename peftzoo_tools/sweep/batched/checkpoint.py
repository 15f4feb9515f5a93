"""One checkpoint per batched group: `<common parent of the trials' output directories>/.batched/group-<hash>.pt`.

It holds what an exact resume of every trial needs, in one file written atomically (as
peftzoo_engine/checkpoint.py writes a run's): the stacked weights and AdamW moments (T, ...), each trial's AdamW step
count and scheduler, each trial's progress and whether it still trains, the group's
position (step, epoch, batch in the epoch) and the process's random state. The trials' run
directories are recorded relative to the checkpoint, so a sweep directory that moved still resumes, and
the trials' recipes are kept in it (a finished or failed trial's run may be set aside by then).
Tensors and plain values only, read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from peftzoo_engine import rundir
from peftzoo_engine.checkpoint import CheckpointError
from peftzoo_engine.progress import Progress
from peftzoo_engine.rng import restore_rng, rng_state
from peftzoo_engine.rundir import atomic_write

FORMAT = "batched-1"
DIRNAME = ".batched"


def path_for(output_dirs: list[str | Path]) -> Path:
    """Where the group of these output directories keeps its checkpoint."""
    dirs = [Path(d).expanduser().resolve() for d in output_dirs]
    root = Path(os.path.commonpath([d.parent for d in dirs]))
    names = "\n".join(str(d.relative_to(root)) for d in dirs)
    return root / DIRNAME / f"group-{hashlib.sha256(names.encode()).hexdigest()[:12]}.pt"


def relative(checkpoint: Path, run_dir: Path) -> str:
    """`checkpoint` as seen from `run_dir` (what run.json records)."""
    return os.path.relpath(checkpoint, run_dir)


def _root(checkpoint: Path) -> Path:
    return checkpoint.resolve().parent.parent


def save(path: Path, heads, optimizer, trials, group: Progress) -> None:
    root = _root(path)
    state = {
        "format": FORMAT,
        "runs": [os.path.relpath(t.run.path.resolve(), root) for t in trials],
        "recipes": [(t.run.path / rundir.RECIPE).read_text() for t in trials],
        "position": {"step": group.step, "epoch": group.epoch, "batch_in_epoch": group.batch_in_epoch},
        "stacks": {name: p.detach().cpu().clone() for name, p in heads.params.items()},
        "adamw": optimizer.state_dict(),
        "trials": [
            {"running": t.running, "progress": t.progress.state(), "scheduler": t.scheduler.state_dict()}
            for t in trials
        ],
        "rng": [rng_state()],
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())


def read(path: Path) -> dict[str, Any]:
    """The group checkpoint at `path`, or CheckpointError naming what is wrong."""
    if not path.is_file():
        raise CheckpointError(
            f"{str(path)!r} does not exist; the group wrote no checkpoint before it stopped, so its trials start again"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(
            f"{str(path)!r} cannot be read ({type(exc).__name__}); it is truncated, damaged or not a "
            f"checkpoint peftzoo wrote, so the group cannot resume from it"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a batched-heads group checkpoint of format {FORMAT!r} (found {found!r})"
        )
    return state


def run_dirs(path: Path, state: dict[str, Any]) -> list[Path]:
    """The trials' run directories; those of trials still training must be there."""
    dirs = [_root(path) / rel for rel in state["runs"]]
    missing = [str(d) for d, t in zip(dirs, state["trials"]) if t["running"] and not (d / rundir.RUN_JSON).is_file()]
    if missing:
        raise CheckpointError(
            f"the group checkpoint {str(path)!r} belongs to run directories that are gone ({missing[:2]})"
        )
    return dirs


def restore(state: dict[str, Any], heads, optimizer, trials) -> None:
    """Weights, optimizers, schedules, progress and random state of every trial."""
    if len(state["trials"]) != len(trials) or sorted(state["stacks"]) != sorted(heads.params):
        raise CheckpointError("the group checkpoint does not match these trials' heads; it cannot be resumed")
    with torch.no_grad():
        for name, value in state["stacks"].items():
            heads.params[name].copy_(value)
    optimizer.load_state_dict(state["adamw"])
    for trial, saved in zip(trials, state["trials"]):
        trial.scheduler.load_state_dict(saved["scheduler"])
        trial.progress.load_state(saved["progress"])
        trial.running = saved["running"]
    restore_rng(state["rng"])


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the .batched folder, once no group keeps a checkpoint there
