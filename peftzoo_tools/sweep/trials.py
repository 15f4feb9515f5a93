"""One trial: the command that runs (or resumes) it, and what its run directory says afterwards.

Each trial is a subprocess, `python -m recipes.run BASE.yaml <trial overrides> --output-dir
<sweep>/<trial id>`, not an in-process call: a trial that crashes, runs out of memory or leaks
threads cannot take the sweep or the other trials with it; each child gets its own torch thread
count (OMP_NUM_THREADS) so parallel workers do not oversubscribe cores; SIGTERM reaches it through
peftzoo_tools.run's own handler, which writes a checkpoint that `python -m recipes.run --resume RUN`
continues exactly; and the same command line runs unchanged on a Ray worker. The cost, a second or
two of interpreter and import start-up per trial, is small beside any trial worth sweeping.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peftzoo_engine import rundir
from peftzoo_tools.sweep.record import SweepRecord, best_line

LOG_NAME = "trial.log"


@dataclass
class Job:
    trial_id: str
    command: list[str]
    log_path: Path
    resume: bool
    batched_checkpoint: Path | None = None
    """A trial of an interrupted batched group: the group's checkpoint (peftzoo_tools/sweep/batched), which
    the sweep resumes in its own process with the group's other trials; `command` is then empty."""


def attempts_in(trial_dir: Path) -> list[Path]:
    """Run directories peftzoo_tools.run made under a trial's output directory, oldest first (hidden entries
    such as .failed are not runs); one that failed before training began may lack run.json."""
    if not trial_dir.is_dir():
        return []
    return sorted((p for p in trial_dir.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def runs_in(trial_dir: Path) -> list[Path]:
    """The attempts that started training (they have run.json)."""
    return [p for p in attempts_in(trial_dir) if (p / rundir.RUN_JSON).is_file()]


def _status(run_dir: Path) -> str | None:
    """run.json's status (a damaged run.json is one message, from peftzoo_engine.rundir)."""
    return rundir.read_info(run_dir).get("status")


def batched_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint of the batched group this interrupted run trained in, where one was written."""
    recorded = (rundir.read_info(run_dir).get("batched_heads") or {}).get("checkpoint")
    path = (run_dir / recorded).resolve() if recorded else None
    return path if path is not None and path.is_file() else None


def plan_job(
    record: SweepRecord, trial: dict[str, Any], base_yaml: Path, args: list[str], extra_args: list[str]
) -> Job | None:
    """None when the trial has completed; a resume of its interrupted run when that has a checkpoint
    (its own, or its batched group's); else a fresh run (an earlier attempt without a checkpoint is
    moved to <trial>/.failed/)."""
    trial_dir = record.directory / trial["id"]
    runs = runs_in(trial_dir)
    if trial["status"] == "completed" and runs and _status(runs[-1]) == "completed":
        return None
    log_path = trial_dir / LOG_NAME
    python = [sys.executable, "-m", "recipes.run"]
    for run_dir in runs:
        if _status(run_dir) == "completed":  # finished, but the sweep stopped before recording it
            return Job(trial["id"], [], log_path, resume=False)
        if rundir.checkpoint_path(run_dir).is_file():
            return Job(trial["id"], [*python, "--resume", str(run_dir), "--quiet"], log_path, resume=True)
        if _status(run_dir) != "failed" and (group := batched_checkpoint(run_dir)) is not None:
            return Job(trial["id"], [], log_path, resume=True, batched_checkpoint=group)
    for run_dir in attempts_in(trial_dir):  # attempts that never reached a checkpoint: kept aside, not resumable
        attic = trial_dir / ".failed"
        attic.mkdir(parents=True, exist_ok=True)
        shutil.move(str(run_dir), str(attic / run_dir.name))
        record.update(trial["id"], attempts=[*trial.get("attempts", []), str(attic / run_dir.name)])
    command = [*python, str(base_yaml), *args, *extra_args, "--output-dir", str(trial_dir), "--quiet"]
    return Job(trial["id"], command, log_path, resume=False)


def child_environment(threads: int, gpu: str | None = None) -> dict[str, str]:
    """The environment of a trial process: `threads` intra-op threads (torch reads OMP_NUM_THREADS at
    start-up), and optionally one visible GPU."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def finish(record: SweepRecord, trial_id: str, exit_code: int | None, select: dict[str, str]) -> str:
    """Record what the trial's run directory says; returns the trial's status."""
    trial_dir = record.directory / trial_id
    runs = runs_in(trial_dir)
    run_dir = runs[-1] if runs else None
    status = _status(run_dir) if run_dir else None
    changes: dict[str, Any] = {"exit_code": exit_code, "run": str(run_dir) if run_dir else None}
    if status == "completed":
        info = rundir.read_info(run_dir)
        changes.update(
            status="completed",
            error=None,
            final_metrics=info.get("final_metrics"),
            best_metrics=best_line(run_dir, select["metric"], select["mode"]),
        )
    elif status == "interrupted" or (exit_code is not None and exit_code > 128) or exit_code is None:
        changes.update(status="interrupted", error=_last_error(trial_dir / LOG_NAME))
    else:
        changes.update(status="failed", error=_last_error(trial_dir / LOG_NAME) or f"exit status {exit_code}")
    record.update(trial_id, **changes)
    return changes["status"]


def _last_error(log_path: Path) -> str | None:
    if not log_path.is_file():
        return None
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or "Error" in line.split(":")[0]]
    return (errors or lines or [None])[-1]
