"""Dotted command-line overrides: `train.lr=3e-4 eeg.strategy.r=8 eeg.head.hidden=[256]`.

Values are parsed as YAML scalars (or flow collections). Setting an option under a component that
the recipe names by a bare string turns it into a mapping: `eeg.strategy.r=8` on `strategy: lora`
gives `strategy: {name: lora, r: 8}`. Changing a component's name (`data.name=arrays`) starts it from
the new component's defaults, keeping only the options the command line gives it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import yaml

from recipes.errors import RecipeError
from registry import yamlio

logger = logging.getLogger(__name__)


def parse(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise RecipeError(f"override {item!r} is not key=value; write e.g. train.lr=3e-4")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    if not key.strip() or any(not p.strip() for p in parts):
        raise RecipeError(f"override {item!r} has an empty key part; write dotted keys such as train.lr=3e-4")
    try:
        value = yamlio.load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"override {item!r}: the value is not valid YAML ({problem})") from None
    return [p.strip() for p in parts], value


def apply(raw: dict[str, Any], items: list[str]) -> dict[str, Any]:
    """A copy of `raw` with each `key=value` of `items` applied in order.

    An override that changes a component's `name` (`data.name=arrays`) starts that component from
    the new one's defaults, as Hydra's config groups do: the options the recipe gave the old
    component are dropped (they rarely fit the new one), while options set by the command line,
    before or after, are kept.
    """
    out = copy.deepcopy(raw)
    given: list[tuple[str, ...]] = []
    for item in items:
        parts, value = parse(item)
        node: Any = out
        for depth, part in enumerate(parts[:-1]):
            here = ".".join(parts[: depth + 1])
            node = _child(node, part, here, item)
        if len(parts) > 1 and parts[-1] == "name" and isinstance(node, dict) and node.get("name") not in (None, value):
            _restart(node, tuple(parts[:-1]), given, item)
        _set(node, parts[-1], value, ".".join(parts), item)
        given.append(tuple(parts))
    return out


def _restart(node: dict, path: tuple[str, ...], given: list[tuple[str, ...]], item: str) -> None:
    """Drop the options of a component whose name changes, except those the command line set."""
    kept = {k for k in node if k == "name" or any(g[: len(path) + 1] == (*path, k) for g in given)}
    dropped = sorted(k for k in node if k not in kept)
    for key in dropped:
        del node[key]
    if dropped:
        logger.info(
            "override %s starts %s from its defaults: the recipe's %s no longer apply",
            item,
            ".".join(path),
            ", ".join(dropped),
        )


def _child(node: Any, part: str, here: str, item: str) -> Any:
    if isinstance(node, dict):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, str):  # a component named by a bare string gets its options
            child = node[part] = {"name": child}
        elif not isinstance(child, (dict, list)):
            raise RecipeError(f"override {item!r}: {here} is a value ({child!r}), not a section with keys")
        return child
    if isinstance(node, list):
        index = _index(node, part, here, item)
        if isinstance(node[index], str):
            node[index] = {"name": node[index]}
        return node[index]
    raise RecipeError(f"override {item!r}: cannot go below {here}")


def _set(node: Any, part: str, value: Any, key: str, item: str) -> None:
    if isinstance(node, dict):
        node[part] = value
    elif isinstance(node, list):
        node[_index(node, part, key, item)] = value
    else:
        raise RecipeError(f"override {item!r}: cannot set {key}")


def _index(node: list, part: str, here: str, item: str) -> int:
    parent = here.rsplit(".", 1)[0]
    if not part.lstrip("-").isdigit():
        raise RecipeError(f"override {item!r}: {parent} is a list; index it by position, e.g. {parent}.0")
    index = int(part)
    if not -len(node) <= index < len(node):
        raise RecipeError(f"override {item!r}: {parent} has {len(node)} items, no index {index}")
    return index
