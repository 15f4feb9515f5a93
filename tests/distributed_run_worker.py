"""One process of a 2-process `recipes.run` (tests/test_distributed.py), optionally hit by SIGTERM.

`python -m tests.distributed_run_worker SIGNAL_AT_STEP ARGS...` with torchrun's environment runs
`recipes.run ARGS...`; with SIGNAL_AT_STEP > 0, rank 1 alone sends itself SIGTERM during that
training step, as when a scheduler signals one process of a job.
"""

from __future__ import annotations

import os
import signal
import sys

from recipes.losses.clip import ClipLoss
from recipes.run import main

if __name__ == "__main__":
    at_step, args = int(sys.argv[1]), sys.argv[2:]
    if at_step and os.environ["RANK"] == "1":
        real_forward, calls = ClipLoss.forward, {"n": 0}

        def forward_then_sigterm(self, *a, **k):
            out = real_forward(self, *a, **k)
            if self.training:
                calls["n"] += 1
                if calls["n"] == at_step:
                    os.kill(os.getpid(), signal.SIGTERM)
            return out

        ClipLoss.forward = forward_then_sigterm
    sys.exit(main(args))
