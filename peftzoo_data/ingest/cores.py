"""How many cores this process may use: the default of `--workers`, and of the threads that hash a study's files."""

from __future__ import annotations

import os


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
