"""One process of a 2-process `peftzoo_tools.run` (tests/test_distributed.py), optionally hit by SIGTERM.

`python -m tests.distributed_run_worker SIGNAL_AT_STEP ARGS...` with torchrun's environment runs
`peftzoo_tools.run ARGS...`; with SIGNAL_AT_STEP > 0, rank 1 alone sends itself SIGTERM during that
training step, as when a scheduler signals one process of a job.
"""

from __future__ import annotations

import os
import sys

from peftzoo_model.losses.clip import ClipLoss
from peftzoo_tools.run import main
from tests.interrupt import sigterm_during_step

if __name__ == "__main__":
    at_step, args = int(sys.argv[1]), sys.argv[2:]
    if at_step and os.environ["RANK"] == "1":
        ClipLoss.forward = sigterm_during_step(ClipLoss, at_step)
    sys.exit(main(args))
