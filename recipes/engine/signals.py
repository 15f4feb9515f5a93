"""SIGTERM and SIGINT during training: request a stop that the epoch loop honours after its step."""

from __future__ import annotations

import contextlib
import signal

from recipes.engine.progress import Progress


@contextlib.contextmanager
def stop_requests(progress: Progress):
    """While inside, SIGTERM and SIGINT set `progress.stop_signal`; the previous handlers come back after."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def request_stop(signum, frame):
        progress.stop_signal = signum

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
