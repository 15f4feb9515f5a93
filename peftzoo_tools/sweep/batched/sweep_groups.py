"""The sweep's side of batched heads: which trials train together, and running each group.

`--batched-heads auto` (the default) trains every set of two or more fresh trials with equal
`batch_key` in the sweep process as one batched model; each trial still gets its own run directory
under its trial directory and its own sweep.json entry. A group that SIGTERM or Ctrl-C stopped
resumes, on the sweep's rerun, from its checkpoint (`resume_batched`), as one group again.
Everything else (ineligible trials, singletons, and a group whose batched training or resume fails)
runs as ordinary trial processes, with the reason logged.
"""

from __future__ import annotations

import logging
import shutil
import signal
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from peftzoo_engine import rundir
from peftzoo_engine.errors import TrainingInterrupted
from peftzoo_tools.sweep.batched.eligibility import batch_key, unsupported_reason
from peftzoo_tools.sweep.trials import Job

logger = logging.getLogger("peftzoo_tools.sweep")


@dataclass
class Group:
    jobs: list[Job]
    checkpoint: Path | None = None
    """Set for an interrupted group that resumes from its checkpoint."""


@dataclass
class Outcome:
    fallback: list[Job] = field(default_factory=list)
    """Jobs of groups that failed, to run as ordinary trials."""
    interrupted: bool = False
    """A stop signal ended a group: no further trial may start."""


def split_jobs(jobs: list[Job], recipes: dict[str, BaseModel], fresh: bool = True) -> tuple[list[Group], list[Job]]:
    """(groups to train batched, jobs to run as ordinary trials). Interrupted groups always resume as
    groups (their state is one group checkpoint); fresh trials are grouped only with `fresh`."""
    by_key: dict[str, list[Job]] = defaultdict(list)
    resumed: dict[Path, list[Job]] = defaultdict(list)
    ordinary = []
    for job in jobs:
        if job.batched_checkpoint is not None:
            resumed[job.batched_checkpoint].append(job)
            continue
        if job.resume or not job.command or not fresh:
            ordinary.append(job)
            continue
        reason = unsupported_reason(recipes[job.trial_id])
        if reason is not None:
            logger.info("%s: not batched (%s); runs as an ordinary trial", job.trial_id, reason)
            ordinary.append(job)
            continue
        by_key[batch_key(recipes[job.trial_id])].append(job)
    groups = [Group(members, checkpoint) for checkpoint, members in resumed.items()]
    for members in by_key.values():
        if len(members) > 1:
            groups.append(Group(members))
        else:
            ordinary.extend(members)
    return groups, ordinary


def run_groups(
    groups: list[Group],
    recipes: dict[str, BaseModel],
    directory,
    reg,
    on_start: Callable[[Job], None],
    on_done: Callable[[Job, int | None], None],
) -> Outcome:
    """Train (or resume) each group batched, until one is stopped by a signal."""
    outcome = Outcome()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # between groups, SIGTERM stops as Ctrl-C does
    try:
        for group in groups:
            outcome.fallback += _run_group(group, recipes, directory, reg, on_start, on_done)
    except (KeyboardInterrupt, TrainingInterrupted):
        outcome.interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
    return outcome


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _run_group(group: Group, recipes, directory, reg, on_start, on_done) -> list[Job]:
    from peftzoo_tools.sweep.batched.trainer import resume_batched, train_batched

    jobs = group.jobs
    ids = ", ".join(j.trial_id for j in jobs)
    what = f"resuming from {group.checkpoint}" if group.checkpoint else "training"
    logger.info("%s %d trials as one batched model: %s", what, len(jobs), ids)
    for job in jobs:
        on_start(job)
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log_path, "a", encoding="utf-8") as log:
            log.write(f"{what} in the sweep process as one batched model with {ids} (peftzoo_tools.sweep.batched)\n")
    try:
        if group.checkpoint is None:
            train_batched([recipes[j.trial_id] for j in jobs], [directory / j.trial_id for j in jobs], reg)
        else:
            resume_batched(group.checkpoint, reg)
    except (KeyboardInterrupt, TrainingInterrupted) as exc:
        logger.warning("batched group stopped (%s); rerun the same command to resume it", exc)
        for job in jobs:
            on_done(job, None)
        raise
    except Exception as exc:  # noqa: BLE001 (any failure of the batched path falls back to ordinary runs)
        logger.warning(
            "batched %s of %s failed (%s: %s); running them as ordinary trials", what, ids, type(exc).__name__, exc
        )
        if group.checkpoint is not None and group.checkpoint.is_file():  # not resumed again: set aside
            shutil.move(str(group.checkpoint), str(group.checkpoint) + ".failed")
        return jobs
    for job in jobs:  # a trial may fail alone (non-finite steps): its run.json says so
        on_done(job, 0 if _completed(directory / job.trial_id) else 1)
    return []


def _completed(trial_dir: Path) -> bool:
    from peftzoo_tools.sweep.trials import runs_in

    runs = runs_in(trial_dir)
    return bool(runs) and rundir.read_info(runs[-1]).get("status") == "completed"
