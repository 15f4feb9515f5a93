"""The sweep's side of batched heads: which fresh trials train together, and running each group.

`--batched-heads auto` (the default) trains every set of two or more fresh trials with equal
`batch_key` in the sweep process as one batched model; each trial still gets its own run directory
under its trial directory and its own sweep.json entry. Everything else (ineligible trials, resumed
ones, singletons, and a group whose batched training fails) runs as ordinary trial processes, with
the reason logged.
"""

from __future__ import annotations

import json
import logging
import signal
from collections import defaultdict
from collections.abc import Callable

from pydantic import BaseModel

from recipes.sweep.batched.eligibility import batch_key, unsupported_reason
from recipes.sweep.trials import Job

logger = logging.getLogger("recipes.sweep")


def split_jobs(jobs: list[Job], recipes: dict[str, BaseModel]) -> tuple[list[list[Job]], list[Job]]:
    """(groups to train batched, jobs to run as ordinary trials)."""
    by_key: dict[str, list[Job]] = defaultdict(list)
    ordinary = []
    for job in jobs:
        if job.resume or not job.command:
            ordinary.append(job)
            continue
        reason = unsupported_reason(recipes[job.trial_id])
        if reason is not None:
            logger.info("%s: not batched (%s); runs as an ordinary trial", job.trial_id, reason)
            ordinary.append(job)
            continue
        by_key[batch_key(recipes[job.trial_id])].append(job)
    groups = []
    for members in by_key.values():
        if len(members) > 1:
            groups.append(members)
        else:
            ordinary.extend(members)
    return groups, ordinary


def run_groups(groups: list[list[Job]], recipes: dict[str, BaseModel], directory, reg,
               on_start: Callable[[Job], None], on_done: Callable[[Job, int | None], None]) -> list[Job]:
    """Train each group batched; returns the jobs of groups that failed, to run as ordinary trials
    (their batched attempts are set aside by the next plan_job as failed attempts are)."""
    fallback = []
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM ends the group as Ctrl-C does: runs marked interrupted
    try:
        for jobs in groups:
            fallback += _run_group(jobs, recipes, directory, reg, on_start, on_done)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return fallback


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _run_group(jobs: list[Job], recipes, directory, reg, on_start, on_done) -> list[Job]:
    from recipes.sweep.batched.trainer import train_batched

    ids = ", ".join(j.trial_id for j in jobs)
    logger.info("training %d trials as one batched model: %s", len(jobs), ids)
    for job in jobs:
        on_start(job)
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log_path, "a", encoding="utf-8") as log:
            log.write(f"trained in the sweep process as one batched model with {ids} (recipes.sweep.batched)\n")
    try:
        runs = train_batched([recipes[j.trial_id] for j in jobs], [directory / j.trial_id for j in jobs], reg)
    except KeyboardInterrupt:
        for job in jobs:
            on_done(job, None)
        raise
    except Exception as exc:  # noqa: BLE001 (any failure of the batched path falls back to ordinary runs)
        logger.warning("batched training of %s failed (%s: %s); running them as ordinary trials", ids, type(exc).__name__, exc)
        return jobs
    for job, run in zip(jobs, runs):  # a trial may fail alone (non-finite steps): its run.json says so
        on_done(job, 0 if json.loads((run / "run.json").read_text()).get("status") == "completed" else 1)
    return []
