"""What a sweep will run: the base recipe, its trials, and every trial's recipe validated up front.

The sweep directory is named after the recipe and a hash of everything that defines the sweep (base
recipe after fixed overrides, axes, --random, --seed), so running the same command again finds the
same directory and continues it instead of starting over.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from peftzoo_tools.sweep import space as spaces
from recipes import overrides as override_parser
from recipes import schema
from recipes.errors import RecipeError
from registry.core import Registry
from registry.errors import did_you_mean

DEFAULT_SELECT = {"metric": "val/eeg_to_video/R@1", "mode": "max"}
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""A sweep file's `name`, as a recipe's (recipes.schema): it becomes a directory name, so no separators."""
SWEEP_FILE_KEYS = ("recipe", "space", "overrides", "random", "seed", "select", "name")


@dataclass
class Trial:
    id: str
    values: dict[str, Any]
    """The swept keys' values of this trial (dotted key -> value)."""
    recipe: BaseModel | None = None

    @property
    def args(self) -> list[str]:
        return spaces.as_override_args(self.values)


@dataclass
class Plan:
    name: str
    base: dict[str, Any]
    """The base recipe with the fixed overrides applied (written to the sweep directory as base.yaml)."""
    space: spaces.Space
    random: int | None
    seed: int
    select: dict[str, str]
    source: str
    trials: list[Trial] = field(default_factory=list)

    def digest(self) -> str:
        # The seed only draws --random trials: a grid with another --seed is the same sweep (same directory).
        spec = {
            "base": self.base,
            "space": self.space.to_json(),
            "random": self.random,
            "seed": self.seed if self.random is not None else 0,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]

    def directory(self, output_dir: str | Path) -> Path:
        return Path(output_dir).expanduser().resolve() / f"{self.name}-sweep-{self.digest()}"


def is_sweep_file(raw: dict[str, Any]) -> bool:
    """A YAML with a `space` section is a sweep file (a recipe has no such key)."""
    return "space" in raw and "recipe" in raw


def from_command(
    recipe_arg: str,
    items: list[str],
    random: int | None,
    seed: int,
    select: dict[str, str] | None,
    max_trials: int = spaces.MAX_TRIALS,
) -> Plan:
    """A plan from `RECIPE key=[v1,v2] ...`, where RECIPE may also be a sweep file (base recipe + space);
    a sweep of more than `max_trials` trials is refused before any is listed."""
    path = schema.resolve(recipe_arg)
    raw = schema.read_yaml(path)
    if is_sweep_file(raw):
        return _finish(_from_sweep_file(path, raw, items, random, seed, select), max_trials)
    space = spaces.from_arguments(items)
    if not space.axes:
        raise RecipeError("nothing to sweep: give at least one key with a list of values, e.g. train.lr=[1e-3,3e-4]")
    base = _apply(raw, spaces.as_override_args(space.fixed), f"recipe {str(path)!r}")
    plan = Plan(
        _name(base, path),
        base,
        space,
        random,
        0 if seed is None else seed,
        _select(select, base),
        f"recipe {str(path)!r}",
    )
    return _finish(plan, max_trials)


def _from_sweep_file(
    path: Path,
    raw: dict[str, Any],
    items: list[str],
    random: int | None,
    seed: int | None,
    select: dict[str, str] | None,
) -> Plan:
    source = f"sweep file {str(path)!r}"
    unknown = sorted(set(raw) - set(SWEEP_FILE_KEYS))
    if unknown:
        raise RecipeError(f"{source}: unknown key {unknown[0]!r} (allowed: {', '.join(SWEEP_FILE_KEYS)})")
    recipe_ref = raw["recipe"]
    if isinstance(recipe_ref, dict):  # the base recipe inline
        base_raw, recipe_path = recipe_ref, path
    elif isinstance(recipe_ref, str):
        candidate = path.parent / recipe_ref
        recipe_path = schema.resolve(str(candidate) if candidate.is_file() else recipe_ref)
        base_raw = schema.read_yaml(recipe_path)
    else:
        raise RecipeError(f"{source}: `recipe` must be a recipe path, a bundled recipe name, or the recipe inline")
    space = spaces.from_mapping(raw["space"], raw.get("overrides"), source)
    extra = spaces.from_arguments(items)  # command-line additions: more axes or fixed values
    for key in set(extra.axes) | set(extra.fixed):
        space.axes.pop(key, None)
        space.fixed.pop(key, None)
    space.axes.update(extra.axes)
    space.fixed.update(extra.fixed)
    base = _apply(base_raw, spaces.as_override_args(space.fixed), source)
    file_random = raw.get("random")
    if file_random is not None and (not isinstance(file_random, int) or isinstance(file_random, bool)):
        raise RecipeError(f"{source}: random must be a number of trials, got {file_random!r}")
    file_seed = raw.get("seed", 0)
    if seed is None and (not isinstance(file_seed, int) or isinstance(file_seed, bool)):
        raise RecipeError(f"{source}: seed (of the --random draws) must be an integer, got {file_seed!r}")
    file_name = raw.get("name")
    if file_name is not None and not (isinstance(file_name, str) and NAME_PATTERN.fullmatch(file_name)):
        raise RecipeError(
            f"{source}: name {file_name!r} names the sweep directory: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit), as a recipe's name"
        )
    file_select = raw.get("select")
    if file_select is not None and not isinstance(file_select, dict):
        raise RecipeError(f"{source}: select must be {{metric: ..., mode: max|min}}, got {file_select!r}")
    return Plan(
        raw.get("name") or _name(base, recipe_path),
        base,
        space,
        random if random is not None else file_random,
        seed if seed is not None else file_seed,
        _select(select or file_select, base),
        source,
    )


def _apply(raw: dict[str, Any], args: list[str], source: str) -> dict[str, Any]:
    try:
        return override_parser.apply(raw, args)
    except RecipeError as exc:
        raise RecipeError(f"{source}: {exc}") from None


def _name(base: dict[str, Any], path: Path) -> str:
    name = base.get("name")
    return name if isinstance(name, str) and name else path.stem


def _select(given: dict[str, str] | None, base: dict[str, Any]) -> dict[str, str]:
    """The selection metric: the command's, else the recipe's train.select, else val/eeg_to_video/R@1 (max)."""
    recipe_select = (base.get("train") or {}).get("select") if isinstance(base.get("train"), dict) else None
    chosen = {"metric": DEFAULT_SELECT["metric"], "mode": None}
    for source in (recipe_select if isinstance(recipe_select, dict) else {}), (given or {}):
        if source.get("metric") and source.get("metric") != chosen["metric"]:
            chosen["mode"] = None  # a new metric brings its own direction unless given
        chosen.update({k: v for k, v in source.items() if k in ("metric", "mode") and v is not None})
    if chosen["mode"] is None:  # as train.select: losses and ranks are better low, recalls high
        chosen["mode"] = "min" if "loss" in str(chosen["metric"]) or str(chosen["metric"]).endswith("rank") else "max"
    if chosen["mode"] not in ("max", "min"):
        raise RecipeError(f"select mode {chosen['mode']!r}: use max or min")
    if chosen["metric"] not in schema.SELECTABLE_METRICS:  # a typo would rank every trial as "-"
        raise RecipeError(
            f"select metric {chosen['metric']!r} is not a metric the evaluation logs"
            f"{did_you_mean(str(chosen['metric']), schema.SELECTABLE_METRICS)}; "
            f"use one of {', '.join(schema.SELECTABLE_METRICS)}"
        )
    return {"metric": str(chosen["metric"]), "mode": chosen["mode"]}


def _finish(plan: Plan, max_trials: int = spaces.MAX_TRIALS) -> Plan:
    values = spaces.trials(plan.space, plan.random, plan.seed, max_trials)
    width = max(3, len(str(len(values) - 1)))
    plan.trials = [Trial(f"trial-{i:0{width}d}", v) for i, v in enumerate(values)]
    return plan


def validate(plan: Plan, reg: Registry, extra_args: list[str]) -> None:
    """Every trial's recipe through recipes.schema before any trial starts; one message for all problems.

    `extra_args` are overrides the sweep itself adds to every trial (the shared cache directory).
    """
    problems: dict[str, list[str]] = {}
    for trial in plan.trials:
        label = " ".join(trial.args)
        try:
            raw = override_parser.apply(plan.base, trial.args + extra_args)
            trial.recipe = schema.validate(raw, reg, source="trial")
        except RecipeError as exc:
            lines = str(exc).splitlines()
            for line in lines[1:] if len(lines) > 1 else lines:
                problems.setdefault(line.strip(), []).append(label)
    if problems:
        shown = []
        for line, labels in problems.items():
            more = f" and {len(labels) - 1} more" if len(labels) > 1 else ""
            shown.append(f"  {line}  [trial {labels[0]}{more}]")
        raise RecipeError(f"{plan.source}: the sweep has invalid trials; nothing was run:\n" + "\n".join(shown))


def base_yaml(plan: Plan) -> str:
    import yaml

    return yaml.safe_dump(plan.base, sort_keys=False)
