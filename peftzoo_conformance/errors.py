"""The one error the kit raises: it names the check that failed and the component it failed on.

Defined beside the quick checks in registry/quick.py (list-registry raises it without the kit)."""

from __future__ import annotations

import functools

from registry.quick import ConformanceError, require

__all__ = ["ConformanceError", "crash_message", "named_check", "require"]


def crash_message(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"crashed with {type(exc).__name__}: {lines[0] if lines else '(no message)'}"


def named_check(check: str, kind: str):
    """Decorate `check_x(name, ...)`: any exception inside it (a crash of the component, a UserError from
    building it) becomes a ConformanceError under this check's name, so no failure is untagged. pytest's
    skip is not an Exception and passes through."""

    def decorate(fn):
        @functools.wraps(fn)
        def checked(name: str, *args, **kwargs):
            try:
                return fn(name, *args, **kwargs)
            except ConformanceError:
                raise
            except Exception as exc:  # noqa: BLE001 - that is the point: every crash is reported under the check
                raise ConformanceError(check, kind, name, crash_message(exc)) from exc

        return checked

    return decorate
