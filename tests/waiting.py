"""Waiting for a condition in a test: poll until it holds, or fail clearly; never carry on after a deadline.

A test that sends a signal "once the run is training" must know the run is training: a fixed sleep, or a
deadline after which the test goes on regardless, fails on a loaded machine (CI beside other jobs).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

GENEROUS = 900.0
"""Seconds: far beyond what any condition here takes on an idle machine, so only a real hang reaches it."""


def wait_until(
    condition: Callable[[], T],
    what: str,
    timeout: float = GENEROUS,
    proc: subprocess.Popen | None = None,
    interval: float = 0.05,
) -> T:
    """Poll `condition()` until it returns something truthy, and return that. Fails the test, naming `what`,
    when `timeout` seconds pass or `proc` (the process expected to bring the condition about) ends first;
    a process still running then is killed."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(
                f"waiting for {what}: the process ended (exit {proc.returncode}) before it happened\n"
                f"{(err or '')[-3000:]}"
            )
        if time.monotonic() > deadline:
            if proc is not None:
                proc.kill()
                proc.communicate()
            pytest.fail(f"waiting for {what}: it did not happen within {timeout:g} s")
        time.sleep(interval)
