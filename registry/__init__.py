"""peftzoo's component registry: kinds, entry-point discovery, build(), list-registry.

Module-level functions act on a process-wide default registry over sys.path:

    registry.names("strategies")                  # ['full', 'head_only', ...], imports nothing
    registry.get("strategies", "head_only")       # the component class, imported now
    registry.build("heads", {"name": "mlp", "hidden": [512]}, in_dim=200, out_dim=256)

This package imports none of encoders/, adapters/ or recipes/.
"""

from __future__ import annotations

from typing import Any

from registry.component import ComponentConfig, describe, name_of
from registry.core import ComponentConfigError, Entry, Registry
from registry.errors import (
    ComponentLoadError,
    DuplicateComponentError,
    UnknownComponentError,
    UnknownKindError,
    UserError,
    did_you_mean,
)
from registry.kinds import KIND_GROUPS, KINDS

_default: Registry | None = None


def default() -> Registry:
    """The process-wide registry over sys.path."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def refresh() -> None:
    """Forget what was discovered, e.g. after installing a plugin in this process."""
    global _default
    _default = None


def names(kind: str) -> list[str]:
    return default().names(kind)


def get(kind: str, name: str) -> Any:
    return default().get(kind, name)


def build(kind: str, spec: Any, **context: Any) -> Any:
    return default().build(kind, spec, **context)


def entries(kind: str | None = None) -> list[Entry]:
    return default().entries(kind)


__all__ = [
    "KINDS",
    "KIND_GROUPS",
    "ComponentConfig",
    "ComponentConfigError",
    "ComponentLoadError",
    "DuplicateComponentError",
    "Entry",
    "Registry",
    "UnknownComponentError",
    "UnknownKindError",
    "UserError",
    "build",
    "default",
    "describe",
    "did_you_mean",
    "entries",
    "get",
    "name_of",
    "names",
    "refresh",
]
