"""The one error the kit raises: it names the check that failed and the component it failed on."""

from __future__ import annotations


class ConformanceError(AssertionError):
    """A component breaks the plugin contract; the message starts with `[check_name]`."""

    def __init__(self, check: str, kind: str, name: str, message: str):
        self.check, self.kind, self.name = check, kind, name
        super().__init__(f"[{check}] {kind} {name!r}: {message}")


def require(condition: bool, check: str, kind: str, name: str, message: str) -> None:
    if not condition:
        raise ConformanceError(check, kind, name, message)
