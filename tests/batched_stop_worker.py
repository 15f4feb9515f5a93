"""`python -m tests.batched_stop_worker SWEEP_ARGS...` runs `python -m recipes.sweep SWEEP_ARGS...` with the batched
group held inside its first training step of epoch 2 until a stop signal arrives, for
tests/test_batched_heads.py to send SIGTERM exactly there.

Before taking that step it touches READY (the path in the environment variable PEFTZOO_TEST_READY). Without
the hold, the signal landed wherever the group happened to be (a step takes milliseconds, an evaluation
longer), and a signal during evaluation stops before the group's first checkpoint.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import peftzoo_tools.sweep.batched.trainer as batched_trainer
from peftzoo_tools.sweep.cli import main

HOLD_S = 900.0

if __name__ == "__main__":
    ready = Path(os.environ["PEFTZOO_TEST_READY"])
    real_step = batched_trainer._step

    def step_then_hold(shared, batch, skipped):
        real_step(shared, batch, skipped)
        group = shared.progress
        if group.epoch == 2 and not ready.exists():
            ready.touch()
            deadline = time.monotonic() + HOLD_S
            while group.stop_signal is None:  # the trainer's handler sets it; the loop then checkpoints and stops
                if time.monotonic() > deadline:
                    sys.exit(f"no stop signal within {HOLD_S:g} s")
                time.sleep(0.01)

    batched_trainer._step = step_then_hold
    sys.exit(main(sys.argv[1:]))
