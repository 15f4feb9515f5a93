"""`python -m tests.slow_eval_worker ARGS...` runs `peftzoo_tools.run ARGS...` with the evaluation of epoch 2
made slow (it prints `evaluating` and sleeps), for tests/test_engine_signals.py to signal it there."""

from __future__ import annotations

import sys
import time

import peftzoo_engine.stages
from peftzoo_tools.run import main

if __name__ == "__main__":
    real_evaluate_epoch = peftzoo_engine.stages.evaluate_epoch

    def slow_evaluate_epoch(ctx):
        if ctx.progress.epoch == 2:
            print("evaluating", flush=True)
            time.sleep(300)
        return real_evaluate_epoch(ctx)

    peftzoo_engine.stages.evaluate_epoch = slow_evaluate_epoch
    sys.exit(main(sys.argv[1:]))
