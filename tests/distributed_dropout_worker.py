"""One process of a 2-process `peftzoo_tools.run` (tests/test_engine_distributed.py) that prints the dropout
mask its global random state draws when training starts, and exits there (both processes reach that
point after the same collectives, so neither waits for the other).

`python -m tests.distributed_dropout_worker ARGS...` with torchrun's environment runs `peftzoo_tools.run ARGS...`.
"""

from __future__ import annotations

import os
import sys

import torch

import peftzoo_engine.stages
from peftzoo_tools.run import main

if __name__ == "__main__":

    def print_mask_and_exit(*args, **kwargs):
        """Stands in for the first epoch: the mask this process's dropout would draw, then exit."""
        mask = torch.nn.functional.dropout(torch.ones(64), 0.5, training=True).bool().int().tolist()
        print("dropout mask:", "".join(map(str, mask)), flush=True)
        os._exit(0)

    peftzoo_engine.stages.train_epoch = print_mask_and_exit
    sys.exit(main(sys.argv[1:]))
