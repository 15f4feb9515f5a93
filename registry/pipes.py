"""Commands whose output is piped into a reader that stops early (`python -m recipes.compare RUNS | head`).

The reader closing the pipe is not an error of the command: `quiet_on_broken_pipe` ends it quietly
instead of with a BrokenPipeError traceback. Every command-line `main` in the project wears it. It
follows the recipe of Python's signal documentation: stdout is pointed at /dev/null, so that the
interpreter's last flush at exit does not raise a second time.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

Main = TypeVar("Main", bound=Callable[..., "int | None"])


def quiet_on_broken_pipe(main: Main) -> Main:
    """`main`, ending with status 0 and no traceback when its reader has gone (what it printed until then
    was read; what it did, such as a finished run's files, stays)."""

    @functools.wraps(main)
    def guarded(*args, **kwargs):
        try:
            code = main(*args, **kwargs)
            sys.stdout.flush()  # inside the guard: a pipe closed under buffered output breaks here
            return code
        except BrokenPipeError:
            _stdout_to_devnull()
            return 0

    guarded.quiet_on_broken_pipe = True  # type: ignore[attr-defined]
    return guarded  # type: ignore[return-value]


def _stdout_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout replaced by an object without a file descriptor (tests)
        pass
