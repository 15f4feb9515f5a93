"""Which installed components the kit runs on: all of a kind, or those of one distribution."""

from __future__ import annotations

import os
import re

import registry

ENV = "PEFTZOO_CONFORMANCE_DISTRIBUTION"


def normalize(distribution: str) -> str:
    """PEP 503 style: 'My.Plugin-x' and 'my_plugin_x' are one distribution."""
    return re.sub(r"[-_.]+", "_", distribution).lower()


def components(kind: str, distribution: str | None = None) -> list[str]:
    """Registered names of `kind`, sorted, optionally only those `distribution` registers."""
    distribution = distribution or os.environ.get(ENV) or None
    if not distribution:
        return registry.names(kind)
    wanted = normalize(distribution)
    return sorted({e.name for e in registry.entries(kind) if normalize(e.distribution) == wanted})
