"""sweep.json: the sweep's definition and every trial's overrides, status, run, final and best metrics.

Written atomically after every change of a trial, so an interrupted sweep leaves a readable file that
a rerun continues from. Layout:

    {"name", "source", "created", "updated", "select": {"metric", "mode"}, "space": {"axes", "fixed"},
     "random", "seed", "trials": [{"id", "overrides", "status", "run", "final_metrics", "best_metrics",
     "exit_code", "error", "attempts"}]}

`status` is pending, running, completed, failed or interrupted. `best_metrics` is the eval line at
which the selection metric was best (with its `epoch` and `step`).
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

from peftzoo_engine import rundir
from peftzoo_engine.rundir import atomic_write, now
from recipes.errors import RecipeError
from registry.errors import UserError

FILENAME = "sweep.json"
STATUSES = ("pending", "running", "completed", "failed", "interrupted")


class DamagedSweepFile(UserError):
    """sweep.json is not what the sweep wrote: it names the file, where, and the fix."""


def best_line(run_dir: Path, metric: str, mode: str) -> dict[str, Any] | None:
    """The eval line of metrics.jsonl with the best `metric` (first of ties), or None without one."""
    best = None
    for line in rundir.read_metrics(Path(run_dir)):
        value = line.get(metric)
        if line.get("type") != "eval" or not isinstance(value, (int, float)) or math.isnan(value):
            continue
        if best is None or (value > best[metric] if mode == "max" else value < best[metric]):
            best = line
    return {k: v for k, v in best.items() if k != "type"} if best else None


class SweepRecord:
    """The in-memory sweep.json, saved after every update (thread-safe: workers finish concurrently)."""

    def __init__(self, directory: Path, data: dict[str, Any]):
        self.directory = directory
        self.data = data
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.directory / FILENAME

    @classmethod
    def load_or_create(
        cls, directory: Path, header: dict[str, Any], trial_values: list[tuple[str, dict[str, Any]]]
    ) -> SweepRecord:
        path = directory / FILENAME
        if path.is_file():
            data = read(directory)
            known = {t["id"]: t for t in data["trials"]}
            for trial_id, values in trial_values:  # same directory means same definition: same trials
                if trial_id not in known or known[trial_id]["overrides"] != values:
                    raise RecipeError(
                        f"{str(path)!r} does not match this sweep (trial {trial_id} differs); "
                        "it was edited by hand: move it away to start the sweep afresh"
                    )
            for trial in data["trials"]:  # a sweep moved or copied since (rsync from a cluster): its own runs
                recorded = Path(trial["run"]) if trial.get("run") else None
                if recorded is not None and (directory / trial["id"] / recorded.name).is_dir():
                    trial["run"] = str(directory / trial["id"] / recorded.name)
            select = header.get("select")
            if (
                select and data.get("select") != select
            ):  # a rerun with another --metric/--mode: re-rank the finished trials
                for trial in data["trials"]:
                    if trial.get("status") == "completed" and trial.get("run"):
                        trial["best_metrics"] = best_line(Path(trial["run"]), select["metric"], select["mode"])
            data.update({k: v for k, v in header.items() if k not in ("created",)})
        else:
            data = {
                **header,
                "created": now(),
                "trials": [
                    {
                        "id": tid,
                        "overrides": values,
                        "status": "pending",
                        "run": None,
                        "final_metrics": None,
                        "best_metrics": None,
                        "exit_code": None,
                        "error": None,
                        "attempts": [],
                    }
                    for tid, values in trial_values
                ],
            }
        record = cls(directory, data)
        record.save()
        return record

    def trial(self, trial_id: str) -> dict[str, Any]:
        return next(t for t in self.data["trials"] if t["id"] == trial_id)

    def update(self, trial_id: str, **changes: Any) -> None:
        with self._lock:
            self.trial(trial_id).update(changes)
            self.save_locked()

    def save(self) -> None:
        with self._lock:
            self.save_locked()

    def save_locked(self) -> None:
        self.data["updated"] = now()
        atomic_write(self.path, json.dumps(self.data, indent=2, default=str) + "\n")


def read(directory: Path) -> dict[str, Any]:
    """sweep.json of a sweep directory, checked: an object whose `trials` is a list of objects, each with
    an `id`, its `overrides` and a known `status`. Anything else is one DamagedSweepFile."""
    path = Path(directory) / FILENAME
    fix = "move it away and run the sweep's command again: finished trials are found again from their run directories"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DamagedSweepFile(f"{path} is missing; give a sweep directory (the one `sweep:` printed)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedSweepFile(f"{path} could not be read ({exc}); {fix}") from None
    except json.JSONDecodeError as exc:
        raise DamagedSweepFile(
            f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}); the file is damaged: {fix}"
        ) from None
    if not isinstance(data, dict):
        raise DamagedSweepFile(
            f"{path}: a JSON {type(data).__name__}, not the sweep's object; the file is damaged: {fix}"
        )
    trials = data.get("trials")
    if not isinstance(trials, list):
        what = "has no trials" if trials is None else f"has trials that are a {type(trials).__name__}, not a list"
        raise DamagedSweepFile(f"{path} {what}; the file is damaged: {fix}")
    for index, trial in enumerate(trials):
        problem = _trial_problem(trial)
        if problem:
            raise DamagedSweepFile(f"{path}, trials[{index}]: {problem}; the file is damaged: {fix}")
    return data


def _trial_problem(trial: Any) -> str | None:
    if not isinstance(trial, dict):
        return f"a {type(trial).__name__}, not a trial object"
    if not isinstance(trial.get("id"), str) or not trial["id"]:
        return f"id {trial.get('id')!r} is not a trial id (trial-000, ...)"
    if not isinstance(trial.get("overrides"), dict):
        return f"{trial['id']}: overrides {trial.get('overrides')!r} is not a mapping of recipe keys to values"
    if trial.get("status") not in STATUSES:
        return f"{trial['id']}: status {trial.get('status')!r} is not one of {', '.join(STATUSES)}"
    return None
