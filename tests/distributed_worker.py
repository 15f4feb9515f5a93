"""One process of the 2-process gloo test (tests/test_distributed.py): its slice of a global batch.

Run as `python -m tests.distributed_worker OUT_DIR ACCUM_FREQ[,ACCUM_FREQ...]` with torchrun's
environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); for each accum_freq, on a freshly built
model, writes the loss and gradients it ends with to OUT_DIR/rank<R>-accum<A>.pt. One launch serves
every accum_freq: starting the two interpreters costs far more than the steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from peftzoo_engine import Precision, accumulated_backward, distributed
from tests.distributed_case import global_batches, model_and_data, slice_of


def main(out_dir: str, accum_freqs: list[int]) -> None:
    world = distributed.init_from_environment("cpu")
    device = torch.device("cpu")
    for accum_freq in accum_freqs:
        model, data = model_and_data()
        micro = [slice_of(b, world.rank, world.size) for b in global_batches(data, accum_freq)]
        embed = distributed.BatchEmbedder(model, device)
        loss = accumulated_backward(model, micro, device, Precision("fp32", device), embed)
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        torch.save({"loss": loss.detach(), "grads": grads}, Path(out_dir) / f"rank{world.rank}-accum{accum_freq}.pt")
    distributed.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], [int(a) for a in sys.argv[2].split(",")])
