"""Reading a run directory (docs/reference/run-directory.md) into what the checks need, without building a model.

A run is a directory holding run.json and recipe.yaml, read by peftzoo_engine.rundir; metrics.jsonl may
be short or missing (a run that failed early: said in `notes`) and, while the run trains, its last line
may be half written (left out). A damaged file is one message naming the file and the line (rundir's
DamagedRunFile); a path that is not a run is one NotARunError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from registry.errors import UserError


class NotARunError(UserError):
    """The path given to the doctor is not a run directory."""


@dataclasses.dataclass
class RunRecord:
    path: Path
    info: dict[str, Any]
    """run.json."""
    recipe: dict[str, Any]
    """recipe.yaml as written by the run: fully resolved, every default present."""
    lines: list[dict[str, Any]]
    """metrics.jsonl, in order."""
    notes: list[str] = dataclasses.field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("type") == kind]

    @property
    def train(self) -> list[dict[str, Any]]:
        return [line for line in self.of_type("train") if _finite(line.get("train/loss"))]

    @property
    def epochs(self) -> list[dict[str, Any]]:
        return self.of_type("epoch")

    @property
    def evals(self) -> list[dict[str, Any]]:
        return self.of_type("eval")

    def get(self, dotted: str, default: Any = None) -> Any:
        """A recipe value by dotted key (`train.batch_size`), `default` where absent."""
        return recipe_value(self.recipe, dotted, default)

    def total_steps(self) -> int:
        """Optimizer steps the run took (run.json, else the last metrics line)."""
        steps = self.info.get("steps")
        if isinstance(steps, int):
            return steps
        return max((int(line.get("step", 0)) for line in self.lines), default=0)

    def steps_done(self) -> int:
        """Optimizer steps the metrics show were taken (the last logged step); for a run still
        training or stopped early this is below the planned total."""
        return max(
            (int(line.get("step", 0)) for line in self.lines if isinstance(line.get("step"), (int, float))), default=0
        )

    def steps_per_epoch(self) -> int | None:
        """Optimizer steps in one epoch: the step of the first epoch line, else computed from the
        train split as recipes.compose.planned_steps does (full batches, whole accumulations)."""
        first = next(
            (line for line in self.epochs if line.get("epoch") == 1 and isinstance(line.get("step"), int)), None
        )
        if first is not None and first["step"] > 0:
            return int(first["step"])
        n_train = (self.info.get("splits") or {}).get("train")
        if not n_train:
            return None
        batch = min(int(self.get("train.batch_size", 64)), int(n_train)) or 1
        return (int(n_train) // batch) // max(int(self.get("train.accum_freq", 1)), 1) or None

    def warmup_steps(self) -> int:
        """Steps of linear warm-up of the first stage, as the trainer computes them from the recipe
        (peftzoo_engine.optim.warmup_steps over the stage's *planned* steps): a run interrupted or
        still training is judged against its plan, not against the steps it happened to reach."""
        explicit = self.get("train.warmup_steps")
        if explicit is not None:
            return int(explicit)
        stages = self.get("train.stages") or []
        epochs = stages[0].get("epochs") if stages and isinstance(stages[0], dict) else None
        per_epoch = self.steps_per_epoch()
        if per_epoch and epochs is None:
            epochs = self.get("train.epochs")
        planned = int(epochs) * per_epoch if per_epoch and isinstance(epochs, int) else self.total_steps()
        return int(round(float(self.get("train.warmup_fraction", 0.1)) * planned))

    def batch_pairs(self) -> int:
        """Pairs that see each other as negatives in one step: batch x accum_freq, at most the train split."""
        batch = int(self.get("train.batch_size", 64)) * int(self.get("train.accum_freq", 1))
        n_train = (self.info.get("splits") or {}).get("train")
        return min(batch, int(n_train)) if n_train else batch

    def weights_path(self) -> Path | None:
        """best.safetensors when the run kept one (train.select), else trainable.safetensors, else None."""
        from peftzoo_engine import rundir  # function-local while peftzoo_engine.trainer imports doctor.live (a cycle)

        for which in ("best", "last"):
            if rundir.weights_path(self.path, which).is_file():
                return rundir.weights_path(self.path, which)
        return None


def recipe_value(recipe: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = recipe
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return default if node is None and default is not None else node


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def raise_for_other_directory(path: Path) -> None:
    """NotARunError naming what `path` is instead, when it is something the commands make that holds
    or came from runs (a sweep, a bundle or export, an --output-dir with runs inside): the fix names the
    run directory to give."""
    if (path / "sweep.json").is_file():
        raise NotARunError(
            f"{str(path)!r} is a sweep directory, not a run directory; give one of its "
            f"trials (the `run` of each trial in {path / 'sweep.json'})"
        )
    if (path / "manifest.json").is_file():
        source = None
        with contextlib.suppress(OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            source = (json.loads((path / "manifest.json").read_text(encoding="utf-8")).get("source") or {}).get("run")
        origin = f" ({source})" if source else ""
        raise NotARunError(
            f"{str(path)!r} is an exported model (bundle or adapters), not a run; give the run directory "
            f"it was exported from{origin}"
        )
    from peftzoo_engine import rundir  # function-local while peftzoo_engine.trainer imports doctor.live (a cycle)

    try:
        runs = sorted(p.name for p in path.iterdir() if p.is_dir() and rundir.is_run(p))
    except OSError:
        runs = []
    if runs:
        shown = ", ".join(repr(str(path / r)) for r in runs[:3]) + (
            f" and {len(runs) - 3} more" if len(runs) > 3 else ""
        )
        raise NotARunError(
            f"{str(path)!r} is not a run directory but holds {len(runs)} run(s); give one of them: {shown}"
        )


def read_run(path: str | Path) -> RunRecord:
    """The run at `path`; NotARunError (one message, with the fix) when it is not one."""
    from peftzoo_engine import rundir  # function-local while peftzoo_engine.trainer imports doctor.live (a cycle)

    path = Path(path).expanduser()
    if not path.exists():
        raise NotARunError(f"{str(path)!r} does not exist; give the run directory that `run:` printed")
    if not path.is_dir():
        raise NotARunError(f"{str(path)!r} is a file, not a run directory; give the directory that `run:` printed")
    missing = [name for name in (rundir.RUN_JSON, rundir.RECIPE) if not (path / name).is_file()]
    if missing:
        raise_for_other_directory(path)
        raise NotARunError(
            f"{str(path)!r} is not a run directory (no {' or '.join(missing)}); give the directory that `run:` printed"
        )
    info, recipe = rundir.read_info(path), rundir.read_recipe(path)
    record = RunRecord(path=path.resolve(), info=info, recipe=recipe, lines=[])
    if info.get("status") == "failed" and info.get("error"):
        # Why it stopped comes first: the curves of a failed run show only what it did before that.
        record.notes.append(f"the run failed: {info['error']}")
    if not (path / rundir.METRICS).is_file():
        record.notes.append("no metrics.jsonl: the run logged nothing; only its recipe and weights were read")
        return record
    record.lines = rundir.read_metrics(path, partial_last_line_ok=info.get("status") == "running")
    return record
