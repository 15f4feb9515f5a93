"""SIGTERM and SIGINT during training.

Inside the optimizer-step loop a first signal asks for a stop after the current step (with a
checkpoint at that step; under torchrun all processes agree on the step). Anywhere else (feature and
video-clip caching, evaluation, protonce's clustering, which take minutes with big encoders) it
stops at once by raising StopRequested: nothing is left half-written, since every run and cache
file is written atomically, and the run resumes from its last checkpoint. A second signal raises
KeyboardInterrupt at once, wherever training is.
"""

from __future__ import annotations

import contextlib
import logging
import signal

from peftzoo_engine.progress import Progress

logger = logging.getLogger(__name__)


class StopRequested(BaseException):
    """A signal outside the step loop. A BaseException, as KeyboardInterrupt: `except Exception`
    clauses (a damaged cache entry being recomputed, say) must not swallow it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextlib.contextmanager
def stop_requests(progress: Progress):
    """While inside, SIGTERM and SIGINT stop training as the module says; the previous handlers come back after."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def request_stop(signum, frame):
        name = signal.Signals(signum).name
        if progress.stop_signal is not None:
            raise KeyboardInterrupt(f"second {name}")
        progress.stop_signal = signum
        if progress.phase == "training steps":
            logger.warning("%s: stopping after this step with a checkpoint (a second signal exits at once)", name)
            return
        logger.warning("%s during %s: stopping now; the run resumes from its last checkpoint", name, progress.phase)
        raise StopRequested(signum)

    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def phase(progress: Progress, name: str):
    """Name what training is doing (for the stop message); leaving the step loop with a stop asked
    for stops at once."""
    before, progress.phase = progress.phase, name
    try:
        yield
    finally:
        progress.phase = before
    if name == "training steps" and progress.stop_signal is not None:
        raise StopRequested(progress.stop_signal)
