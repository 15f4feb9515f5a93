"""Errors of the registry.

`UserError` is the root of every error caused by what a user wrote or installed (a recipe, an option,
a plugin). Command-line entry points print its message alone, with no traceback; every other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """An error in the user's input that has one clear message naming the problem and the fix."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' did you mean 'x'?' when a close match exists, else ''."""
    matches = difflib.get_close_matches(str(word), sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {matches[0]!r}?" if matches else ""


class UnknownKindError(UserError, KeyError):
    def __init__(self, kind: str, kinds: Iterable[str]):
        kinds = sorted(kinds)
        super().__init__(f"{kind!r} is not a kind of component{did_you_mean(kind, kinds)} (kinds: {', '.join(kinds)})")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class UnknownComponentError(UserError, KeyError):
    def __init__(self, kind: str, name: str, installed: Iterable[str]):
        installed = sorted(installed)
        self.kind, self.name, self.installed = kind, name, installed
        listing = ", ".join(installed) if installed else "none installed"
        super().__init__(
            f"{name!r} is not a registered {kind[:-1] if kind.endswith('s') else kind} "
            f"(kind {kind!r}){did_you_mean(name, installed)} (installed: {listing})"
        )

    def __str__(self) -> str:
        return self.args[0]


class DuplicateComponentError(UserError):
    """Two distributions register one name: the user must choose by uninstalling one."""

    def __init__(self, kind: str, name: str, providers: list[str]):
        self.kind, self.name, self.providers = kind, name, providers
        super().__init__(
            f"{kind} {name!r} is registered by more than one distribution ({', '.join(providers)}); "
            f"uninstall all but one of them (pip uninstall ...) so the choice is explicit"
        )


class ComponentLoadError(UserError):
    """A registered component could not be imported or does not follow the component protocol."""

    def __init__(self, kind: str, name: str, target: str, distribution: str, cause: BaseException | str):
        self.kind, self.name, self.target, self.distribution = kind, name, target, distribution
        self.cause = cause
        reason = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else cause
        self.reason = reason
        super().__init__(
            f"{kind} {name!r} ({target}, from {distribution}) failed to load: {reason}; "
            f"fix or reinstall that distribution, or uninstall it"
        )
