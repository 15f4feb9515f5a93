"""The registry: entry-point discovery per kind, lazy per-component loading, build().

Everything is read from installed metadata (built-ins are registered by peftzoo's own pyproject,
like any plugin). Nothing is imported until a component is asked for, and a component that fails
to load is reported for itself without affecting the others.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from registry import _describe, _discovery
from registry.component import describe, protocol_problem, remember_name
from registry.errors import (
    ComponentLoadError,
    DuplicateComponentError,
    UnknownComponentError,
    UnknownKindError,
    UserError,
)
from registry.kinds import KIND_GROUPS

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Entry:
    """One registered name of one kind, as listed (never imported to make this)."""

    kind: str
    name: str
    target: str
    distribution: str
    version: str | None
    description: str
    duplicate_of: list[str] = dataclasses.field(default_factory=list)


class ComponentConfigError(UserError):
    """Options that a component's `Config` rejects, each error located by its key."""

    def __init__(self, kind: str, name: str, error: ValidationError):
        self.kind, self.name, self.error = kind, name, error
        lines = []
        for err in error.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(options)"
            lines.append(f"  {loc}: {err['msg']}")
        super().__init__(f"bad options for {kind} {name!r}:\n" + "\n".join(lines))


class Registry:
    """Components of every kind, discovered from entry points on `path` (default: sys.path)."""

    def __init__(self, path: list[str] | None = None):
        self.path = path
        self._records: dict[str, list[_discovery.EntryPointRecord]] = {}
        self._problems: dict[str, list[str]] = {}
        self._loaded: dict[tuple[str, str], Any] = {}
        self._failed: dict[tuple[str, str], ComponentLoadError] = {}

    # -- listing (metadata only) -------------------------------------------------------------
    def _group_records(self, kind: str) -> list[_discovery.EntryPointRecord]:
        if kind not in KIND_GROUPS:
            raise UnknownKindError(kind, KIND_GROUPS)
        if kind not in self._records:
            records, problems = _discovery.discover(KIND_GROUPS[kind], self.path)
            self._records[kind], self._problems[kind] = records, problems
        return self._records[kind]

    def problems(self) -> list[str]:
        """Malformed entry points found while listing (they are skipped, and said here)."""
        for kind in KIND_GROUPS:
            self._group_records(kind)
        return [p for kind in KIND_GROUPS for p in self._problems[kind]]

    def entries(self, kind: str | None = None) -> list[Entry]:
        """Every registered (kind, name), duplicates included and marked, sorted; imports nothing."""
        kinds = [kind] if kind is not None else list(KIND_GROUPS)
        out: list[Entry] = []
        for k in kinds:
            records = self._group_records(k)
            by_name: dict[str, list[_discovery.EntryPointRecord]] = {}
            for rec in records:
                by_name.setdefault(rec.name, []).append(rec)
            for name in sorted(by_name):
                recs = by_name[name]
                for rec in recs:
                    others = [_provider(r) for r in recs if r is not rec]
                    out.append(
                        Entry(
                            kind=k,
                            name=name,
                            target=rec.target,
                            distribution=rec.distribution,
                            version=rec.version,
                            description=_describe.static_description(rec.module, rec.attr),
                            duplicate_of=others,
                        )
                    )
        return out

    def names(self, kind: str) -> list[str]:
        """The registered names of `kind`, sorted; imports nothing."""
        return sorted({rec.name for rec in self._group_records(kind)})

    # -- loading -----------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Any:
        """The component registered as `name`, imported on first use.

        Raises UnknownComponentError (with did-you-mean), DuplicateComponentError when two
        distributions claim the name, ComponentLoadError when the import or the protocol fails.
        """
        key = (kind, name)
        if key in self._loaded:
            return self._loaded[key]
        if key in self._failed:
            raise self._failed[key]
        recs = [r for r in self._group_records(kind) if r.name == name]
        if not recs:
            raise UnknownComponentError(kind, name, self.names(kind))
        if len(recs) > 1:
            raise DuplicateComponentError(kind, name, [_provider(r) for r in recs])
        rec = recs[0]
        try:
            obj = rec.load()
        except Exception as exc:  # any failure of third-party code is reported, never fatal
            err = ComponentLoadError(kind, name, rec.target, _provider(rec), exc)
            self._failed[key] = err
            raise err from exc
        problem = protocol_problem(obj)
        if problem:
            err = ComponentLoadError(kind, name, rec.target, _provider(rec), problem)
            self._failed[key] = err
            raise err
        self._loaded[key] = obj
        return obj

    def load_all(self, kind: str) -> dict[str, Any]:
        """Every loadable component of `kind`; those that fail are logged and left out."""
        out = {}
        for name in self.names(kind):
            try:
                out[name] = self.get(kind, name)
            except UserError as exc:
                logger.warning("%s", exc)
        return out

    def load_error(self, kind: str, name: str) -> UserError | None:
        """Why `name` cannot be used (unknown, duplicate, failed load), or None if it can."""
        try:
            self.get(kind, name)
        except UserError as exc:
            return exc
        return None

    def check(self, entry: Entry) -> str:
        """'ok' or 'error: <Type>: <message>' for one listed entry, loading it."""
        if entry.duplicate_of:
            return f"error: DuplicateComponentError: also registered by {', '.join(entry.duplicate_of)}"
        try:
            self.get(entry.kind, entry.name)
        except ComponentLoadError as exc:
            return f"error: {exc.reason}"
        except UserError as exc:
            return f"error: {type(exc).__name__}: {exc}"
        return "ok"

    def description(self, kind: str, name: str) -> str:
        """The loaded component's description (imports it)."""
        return describe(self.get(kind, name))

    # -- building ----------------------------------------------------------------------------
    def build(self, kind: str, spec: str | Mapping[str, Any] | BaseModel, **context: Any) -> Any:
        """Build a component from a name, a mapping with `name` plus options, or a validated config."""
        if isinstance(spec, BaseModel):
            name = getattr(spec, "name", None)
            if not isinstance(name, str):
                raise TypeError("a config passed to build() must carry its component `name`")
            return remember_name(self.get(kind, name).from_config(spec, name=name, **context), name)
        if isinstance(spec, str):
            name, options = spec, {}
        elif isinstance(spec, Mapping):
            options = dict(spec)
            name = options.pop("name", None)
            if not isinstance(name, str):
                raise UserError(f"a {kind} spec needs a `name` (got {dict(spec)!r})")
        else:
            raise UserError(f"a {kind} spec is a name or a mapping with `name`, not {type(spec).__name__}")
        component = self.get(kind, name)
        try:
            config = component.Config.model_validate(options)
        except ValidationError as exc:
            raise ComponentConfigError(kind, name, exc) from None
        return remember_name(component.from_config(config, name=name, **context), name)


def _provider(rec: _discovery.EntryPointRecord) -> str:
    return f"{rec.distribution} {rec.version}" if rec.version else rec.distribution
