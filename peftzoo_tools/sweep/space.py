"""The search space of a sweep and the trials drawn from it.

A space maps dotted recipe keys to an axis: a list of values (grid), or, in a sweep file, a
distribution `{loguniform: [lo, hi]}`, `{uniform: [lo, hi]}`, `{randint: [lo, hi]}` (hi inclusive),
or `{choice: [v1, v2, ...]}`. Without `--random N` every combination of the list axes is a trial
(distributions then need --random); with it, N trials are drawn with a seeded generator: distinct
combinations (without replacement) when every axis is a list or a choice, else each axis independently.

Grid and sampling are a few lines of itertools/numpy; Ray Tune's search spaces would pull the
optional `ray` extra into every sweep, so they are written here.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recipes import overrides as override_parser
from recipes.errors import RecipeError

DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice")
MAX_TRIALS = 10_000
"""The most trials one sweep runs unless --max-trials says more: a space larger than any machine can train
(10 keys of 10 values is 1e10 combinations) is refused at once instead of being listed until killed."""

logger = logging.getLogger("peftzoo_tools.sweep")


@dataclass
class Space:
    """Axes (dotted key -> list of values or a distribution) plus overrides fixed for every trial."""

    axes: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)

    def is_grid(self) -> bool:
        return all(isinstance(v, list) for v in self.axes.values())

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.axes.values()) if self.is_grid() else 0

    def to_json(self) -> dict[str, Any]:
        return {"axes": self.axes, "fixed": self.fixed}


def from_arguments(items: list[str]) -> Space:
    """`key=[v1,v2]` is an axis; `key=value` is fixed for every trial. To fix a list value, make it an
    axis of one value: `eeg.head.hidden=[[256,256]]`."""
    space = Space()
    for item in items:
        parts, value = _parse(item)
        key = ".".join(parts)
        if key in space.axes or key in space.fixed:
            raise RecipeError(f"sweep argument {item!r}: {key} is given twice; give each key once")
        if isinstance(value, list):
            if not value:
                raise RecipeError(
                    f"sweep argument {item!r}: the list of values is empty; give at least one, e.g. {key}=[1e-3,3e-4]"
                )
            _check_distinct(value, f"sweep argument {item!r}")
            space.axes[key] = value
        else:
            space.fixed[key] = value
    return space


def _parse(item: str) -> tuple[list[str], Any]:
    """recipes.overrides' parse, with a hint for the usual cause of a cut-off list: the shell split an
    unquoted `key=[a, b]` at its space into two arguments."""
    try:
        return override_parser.parse(item)
    except RecipeError as exc:
        value = item.partition("=")[2].strip()
        if value[:1] in "[{" and value.count(value[0]) > value.count("]" if value[0] == "[" else "}"):
            raise RecipeError(
                f"{exc}; a list or mapping with spaces must be one shell argument: quote it, e.g. "
                f"'train.lr=[1e-3, 3e-4]'"
            ) from None
        raise


def _check_distinct(values: list[Any], where: str) -> None:
    """Refuse a value listed twice: its trials would be the same configuration, run twice and then
    counted by the summary as if they were seeds (repeat a configuration with seed=[0,1,...])."""
    for i, value in enumerate(values):
        for earlier in values[:i]:
            if type(value) is bool or type(earlier) is bool:  # True == 1 in Python, not in a recipe
                same = type(value) is type(earlier) and value == earlier
            else:
                same = value == earlier  # 1e-3 and 0.001 (and 1 and 1.0) are the same setting
            if same:
                raise RecipeError(
                    f"{where}: the value {earlier!r} is listed twice; give each value once "
                    "(to repeat a configuration, sweep seed=[0,1,...])"
                )


def from_mapping(space_map: Any, fixed: Any, source: str) -> Space:
    """A sweep file's `space:` and `overrides:` sections, checked (located by key)."""
    if not isinstance(space_map, dict) or not space_map:
        raise RecipeError(
            f"{source}: `space` must be a mapping of dotted recipe keys to lists of values or distributions"
        )
    if fixed is not None and not isinstance(fixed, dict):
        raise RecipeError(f"{source}: `overrides` must be a mapping of dotted recipe keys to values")
    space = Space(fixed=dict(fixed or {}))
    for key, axis in space_map.items():
        where = f"{source}: space.{key}"
        if isinstance(axis, list):
            if not axis:
                raise RecipeError(f"{where}: the list of values is empty; give at least one")
            _check_distinct(axis, where)
            space.axes[str(key)] = axis
        elif isinstance(axis, dict) and len(axis) == 1 and next(iter(axis)) in DISTRIBUTIONS:
            kind, args = next(iter(axis.items()))
            _check_distribution(kind, args, where)
            space.axes[str(key)] = {kind: args}
        else:
            raise RecipeError(
                f"{where}: expected a list of values or one of "
                f"{{{', '.join(f'{d}: [...]' for d in DISTRIBUTIONS)}}}, got {axis!r}"
            )
    return space


def _check_distribution(kind: str, args: Any, where: str) -> None:
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise RecipeError(f"{where}: choice needs a non-empty list of values")
        _check_distinct(args, f"{where}: choice")
        return
    numeric = (
        isinstance(args, list)
        and len(args) == 2
        and all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    )
    if not numeric or args[0] > args[1]:
        raise RecipeError(f"{where}: {kind} needs [low, high] numbers with low <= high, got {args!r}")
    if kind == "loguniform" and args[0] <= 0:
        raise RecipeError(f"{where}: loguniform needs a positive low bound, got {args[0]!r}")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise RecipeError(f"{where}: randint needs integer bounds, got {args!r}")


def check_size(space: Space, random: int | None, limit: int = MAX_TRIALS) -> int:
    """The number of trials the sweep will run, computed before any is listed; RecipeError over `limit`."""
    if random is not None:
        if random > limit:
            raise RecipeError(
                f"--random {random:,} trials is more than the limit of {limit:,} trials per sweep; "
                f"draw fewer, or raise the limit with --max-trials {random}"
            )
        return random
    size = space.grid_size()
    if size > limit:
        shape = " x ".join(f"{len(v)} ({k})" for k, v in space.axes.items())
        raise RecipeError(
            f"the grid has {size:,} trials ({shape}), more than the limit of {limit:,} trials per sweep; "
            f"draw a sample of it with --random N (e.g. --random 100), list fewer values, "
            f"or raise the limit with --max-trials {size}"
        )
    return size


def trials(space: Space, random: int | None, seed: int, limit: int = MAX_TRIALS) -> list[dict[str, Any]]:
    """Each trial's swept values (dotted key -> value), in a deterministic order; at most `limit` of them."""
    keys = list(space.axes)
    if random is None:
        if not space.is_grid():
            dists = [k for k, v in space.axes.items() if not isinstance(v, list)]
            raise RecipeError(
                f"space keys {', '.join(dists)} are distributions, which cannot be gridded; "
                "add --random N (or random: N)"
            )
        check_size(space, random, limit)
        return [dict(zip(keys, combo)) for combo in itertools.product(*space.axes.values())]
    if random < 1:
        raise RecipeError(f"--random {random}: give the number of trials to draw, at least 1")
    check_size(space, random, limit)
    rng = np.random.default_rng(seed)
    finite = {
        k: v if isinstance(v, list) else v["choice"]
        for k, v in space.axes.items()
        if isinstance(v, list) or "choice" in v
    }
    if len(finite) == len(keys):  # lists and choices only: distinct combinations, as a grid search would run
        sizes = [len(v) for v in finite.values()]
        total = math.prod(sizes)
        if random > total:
            logger.warning(
                "--random %d is more than the %d combinations of the grid: running all %d once each",
                random,
                total,
                total,
            )
        # numpy draws k of n without replacement in O(k) memory for k << n; a combination is decoded from
        # its index (mixed radix, last key fastest as in itertools.product) instead of listing the grid,
        # which for a large space (10 keys of 10 values: 1e10 combinations) would not fit in memory.
        picks = sorted(int(i) for i in rng.choice(total, size=min(random, total), replace=False))
        return [_combination(finite, sizes, i) for i in picks]
    return [{k: _draw(space.axes[k], rng) for k in keys} for _ in range(random)]


def _combination(axes: dict[str, list[Any]], sizes: list[int], index: int) -> dict[str, Any]:
    """The index-th combination of itertools.product(*axes.values())."""
    chosen: list[Any] = []
    for values, size in zip(reversed(list(axes.values())), reversed(sizes)):
        index, digit = divmod(index, size)
        chosen.append(values[digit])
    return dict(zip(axes, reversed(chosen)))


def _draw(axis: Any, rng: np.random.Generator) -> Any:
    if isinstance(axis, list):
        return axis[int(rng.integers(len(axis)))]
    kind, args = next(iter(axis.items()))
    if kind == "choice":
        return args[int(rng.integers(len(args)))]
    low, high = args
    if kind == "uniform":
        return float(rng.uniform(low, high))
    if kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return int(rng.integers(low, high + 1))


def as_override_args(values: dict[str, Any]) -> list[str]:
    """`key=value` command-line overrides (YAML flow values) that recipes.overrides parses back to `values`."""
    import json

    # JSON is a subset of YAML's flow style: numbers, strings, lists and mappings round-trip exactly.
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]
