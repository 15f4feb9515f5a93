"""Find and read the runs to compare: run directories, sweep directories, or folders holding them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peftzoo_engine import rundir
from peftzoo_tools.sweep import record as sweep_record
from peftzoo_tools.sweep.trials import runs_in as trial_runs_in
from recipes.errors import RecipeError


@dataclass
class Run:
    path: Path
    info: dict[str, Any]
    recipe: dict[str, Any]
    lines: list[dict[str, Any]]
    sweep: Path | None = None
    """The sweep directory the run is a trial of, if any."""
    swept: dict[str, Any] = field(default_factory=dict)
    """Its trial's swept values (sweep.json overrides)."""

    label: str = ""
    """How the table and page name the run: its directory's name, or as many trailing path parts as
    tell it apart from another run of the same name (copies from two machines, two folders)."""

    @property
    def name(self) -> str:
        return self.label or self.path.name

    def evals(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("type") == "eval"]

    def final(self) -> dict[str, Any]:
        return self.info.get("final_metrics") or (self.evals()[-1] if self.evals() else {})


@dataclass
class Sweep:
    path: Path
    data: dict[str, Any]
    runs: list[Run]


is_run = rundir.is_run


def is_sweep(path: Path) -> bool:
    return (path / sweep_record.FILENAME).is_file()


def read_run(path: Path) -> Run:
    """A run through peftzoo_engine.rundir's readers: a damaged file is one message naming it and the line."""
    info = rundir.read_info(path)
    recipe = rundir.read_recipe(path)
    lines = rundir.read_metrics(path, partial_last_line_ok=info.get("status") == "running")
    return Run(path.resolve(), info, recipe, lines)


def read_sweep(path: Path) -> Sweep:
    data = sweep_record.read(path)
    runs = []
    for trial in data["trials"]:
        found = _trial_run(path, trial)
        if found is not None:
            run = read_run(found)
            run.sweep, run.swept = path.resolve(), dict(trial.get("overrides") or {})
            runs.append(run)
    return Sweep(path.resolve(), data, runs)


def _trial_run(sweep: Path, trial: dict[str, Any]) -> Path | None:
    """The trial's run directory, found in this sweep directory (`<sweep>/<trial id>/`, its latest
    attempt, also while it runs and sweep.json does not name it yet), not at the absolute path sweep.json
    recorded: a sweep copied or moved elsewhere (rsync from a cluster) must show its own runs, never
    the original's."""
    inside = [p for p in trial_runs_in(sweep / str(trial.get("id", ""))) if is_run(p)]
    return inside[-1] if inside else None


def collect(paths: list[str]) -> tuple[list[Run], list[Sweep]]:
    """Every run under `paths` (each once) and the sweeps among them, in the order given."""
    runs: dict[Path, Run] = {}
    sweeps: dict[Path, Sweep] = {}
    for given in paths:
        path = Path(given).expanduser()
        if not path.exists():
            raise RecipeError(f"{given!r} does not exist; give run directories, sweep directories, or folders of them")
        found = 0
        for root in _walk(path):
            if is_sweep(root) and root.resolve() not in sweeps:
                sweep = read_sweep(root)
                sweeps[sweep.path] = sweep
                for run in sweep.runs:
                    runs.setdefault(run.path, run)
                found += len(sweep.runs)
            elif is_run(root):
                runs.setdefault(root.resolve(), read_run(root))
                found += 1
        if not found:
            raise RecipeError(f"{given!r} holds no run directory (run.json + recipe.yaml) or sweep (sweep.json)")
    _label(list(runs.values()))
    return list(runs.values()), list(sweeps.values())


def _label(runs: list[Run]) -> None:
    """Name every run by its directory, lengthened by parent folders where two runs share a name."""
    by_name: dict[str, list[Run]] = {}
    for run in runs:
        by_name.setdefault(run.path.name, []).append(run)
    for same in by_name.values():
        depth = 1
        while len(same) > 1 and len({"/".join(r.path.parts[-depth:]) for r in same}) < len(same):
            depth += 1  # paths are distinct (runs are keyed by resolved path), so this ends
        for run in same:
            run.label = "/".join(run.path.parts[-depth:])


def _walk(path: Path):
    """Run and sweep directories at or below `path`; a sweep's trials come through its sweep.json."""
    if is_sweep(path) or is_run(path):
        yield path
        return
    if not path.is_dir():
        return
    for root, dirs, _ in os.walk(path):
        here = Path(root)
        if is_sweep(here) or is_run(here):
            dirs[:] = []
            yield here
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
