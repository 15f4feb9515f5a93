"""The component protocol every registered part follows, built-in or plugin.

A component is a class (or any object) with:
- `Config`: a pydantic model of its options (subclass `ComponentConfig` to forbid unknown keys);
- `description`: one line shown by `list-registry`;
- `from_config(config, **context)`: builds the part; the context is what the caller knows and the
  recipe does not (input and output sizes for a head, the seed for a data set, ...). It always
  holds `name`, the name the component was built by.
The recipe schema adds the `name` field itself, so a component's `Config` never declares it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pydantic import BaseModel, ConfigDict


class ComponentConfig(BaseModel):
    """Base of component option models: unknown keys are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def protocol_problem(obj: Any) -> str | None:
    """Why `obj` is not a usable component, or None when it is."""
    config = getattr(obj, "Config", None)
    if not (isinstance(config, type) and issubclass(config, BaseModel)):
        return f"{obj!r} has no `Config` pydantic model"
    if not callable(getattr(obj, "from_config", None)):
        return f"{obj!r} has no `from_config(config, **context)`"
    return None


NAME_ATTRIBUTE = "peftzoo_name"
"""Where `Registry.build` records the registry name a part was built by (the contract requires no `name`)."""


def remember_name(obj: Any, name: str) -> Any:
    """Record on a built part the registry name it was built by (a part without a `__dict__` keeps none)."""
    with contextlib.suppress(TypeError):
        vars(obj)[NAME_ATTRIBUTE] = name
    return obj


def name_of(obj: Any, default: str | None = None) -> str:
    """The registry name `obj` was built by: what the core names a part by, built-in or plugin. A part
    made without the registry: `default`, else its class name."""
    recorded = getattr(obj, "__dict__", {}).get(NAME_ATTRIBUTE)
    return recorded if isinstance(recorded, str) else (default or type(obj).__name__)


def describe(obj: Any) -> str:
    """The component's one-line description: its `description`, else its docstring's first line."""
    text = getattr(obj, "description", None) or getattr(obj, "__doc__", None) or ""
    lines = str(text).strip().splitlines()
    return lines[0].strip() if lines else ""
