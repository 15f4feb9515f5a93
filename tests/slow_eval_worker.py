"""`python -m tests.slow_eval_worker ARGS...` runs `recipes.run ARGS...` with the evaluation of epoch 2
made slow (it prints `evaluating` and sleeps), for tests/test_engine_signals.py to signal it there."""

from __future__ import annotations

import sys
import time

import recipes.engine.stages
from recipes.run import main

if __name__ == "__main__":
    real_evaluate_epoch = recipes.engine.stages.evaluate_epoch

    def slow_evaluate_epoch(model, val_loader, run, device, progress, precision):
        if progress.epoch == 2:
            print("evaluating", flush=True)
            time.sleep(300)
        return real_evaluate_epoch(model, val_loader, run, device, progress, precision)

    recipes.engine.stages.evaluate_epoch = slow_evaluate_epoch
    sys.exit(main(sys.argv[1:]))
