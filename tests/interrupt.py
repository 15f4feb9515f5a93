"""Interrupting a training run from inside, as a scheduler would: SIGTERM during a given training step.

The tests of resume (tests/test_resume.py, tests/test_engine_resume.py, the 2-process worker)
replace a loss's `forward` with one that counts training-mode calls (one per training step) and
sends this process SIGTERM during the chosen one; the trainer's handler then stops at that step.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable


def sigterm_during_step(loss_class: type, step: int) -> Callable:
    """A `forward` for `loss_class` that runs the real one and sends SIGTERM to this process during
    training step `step` (counted from 1 over training-mode calls; evaluation calls do not count)."""
    real_forward = loss_class.forward
    calls = 0

    def forward_then_sigterm(self, *args, **kwargs):
        nonlocal calls
        out = real_forward(self, *args, **kwargs)
        if self.training:
            calls += 1
            if calls == step:
                os.kill(os.getpid(), signal.SIGTERM)
        return out

    return forward_then_sigterm
