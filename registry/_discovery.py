"""Entry-point discovery, kept behind this one module.

It wraps the `entrypoints` package: listing reads `entry_points.txt` metadata only and imports
nothing. A malformed entry (which `entrypoints` turns into a warning and skips) is returned as a
problem instead of being lost.
"""

from __future__ import annotations

import dataclasses
import warnings

import entrypoints


@dataclasses.dataclass(frozen=True)
class EntryPointRecord:
    """What the metadata says about one registered component, before anything is imported."""

    group: str
    name: str
    module: str
    attr: str | None
    distribution: str
    version: str | None

    @property
    def target(self) -> str:
        return f"{self.module}:{self.attr}" if self.attr else self.module

    def load(self) -> object:
        ep = entrypoints.EntryPoint(self.name, self.module, self.attr)
        return ep.load()


def discover(group: str, path: list[str] | None = None) -> tuple[list[EntryPointRecord], list[str]]:
    """All entry points of `group` on `path` (default sys.path), and the malformed ones as messages.

    A distribution found twice on the path (say an editable install and a build folder) counts once,
    first on the path wins, like an import; different distributions with one name are all returned.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = entrypoints.get_group_all(group, path=path)
    records = [
        EntryPointRecord(
            group=group,
            name=ep.name,
            module=ep.module_name,
            attr=ep.object_name,
            distribution=ep.distro.name if ep.distro else "unknown",
            version=ep.distro.version if ep.distro else None,
        )
        for ep in found
    ]
    problems = [f"{group}: {w.message}" for w in caught if "entry point" in str(w.message).lower()]
    return records, problems
