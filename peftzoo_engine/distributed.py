"""Data-parallel training under torchrun: the process group, batch sharding, gathering with gradient.

`torchrun --nproc_per_node=N -m recipes.run RECIPE` starts N processes. `train.batch_size` stays
the global batch: every process embeds its 1/N slice of each batch, the embeddings of all processes
are gathered *with their gradients* (torch.distributed.nn.functional.all_gather) and every process
computes the loss over the whole batch, so each pair keeps all batch_size - 1 negatives. Through the
gather's backward and DDP's gradient averaging, the update is the one a single process makes on the
concatenated batch (open_clip's gather-with-grad without local loss). A recipe therefore trains the
same on 1 or N processes: same batches, same number of steps, same schedule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from recipes.errors import RecipeError


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """The process that writes the run directory and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current() -> World:
    """The world of the initialized process group, or a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def init_from_environment(device_type: str) -> World:
    """Join the process group torchrun describes in the environment (NCCL on GPUs, gloo on CPU).

    Without torchrun's variables this is a single process and nothing is initialized.
    """
    size = int(os.environ.get("WORLD_SIZE", 1))
    if size <= 1 or dist.is_initialized():
        return current()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device_type == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    # Generous timeout: evaluation and feature caching run on every process and take long on big data.
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=dt.timedelta(hours=1))
    return current()


def device_for(device: torch.device, world: World) -> torch.device:
    """Each process of a multi-GPU run takes the GPU of its local rank."""
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def check_batch_size(batch_size: int, world: World) -> None:
    if batch_size % world.size:
        raise RecipeError(
            f"train.batch_size {batch_size} does not split over {world.size} processes; "
            f"make it a multiple of {world.size} (it is the global batch, each process takes 1/{world.size})"
        )


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """The tensors of all processes, concatenated in rank order; gradients flow back to each one's slice."""
    if not current().distributed:
        return x
    return torch.cat(dist_fn.all_gather(x))


def gather(x: torch.Tensor) -> torch.Tensor:
    """All processes' tensors, concatenated in rank order, without gradient."""
    world = current()
    if not world.distributed:
        return x
    parts = [torch.empty_like(x) for _ in range(world.size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_objects(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order (a one-element list for a single process)."""
    world = current()
    if not world.distributed:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's `obj` on every process."""
    if not current().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def max_over_processes(value: int, device: torch.device) -> int:
    """The largest `value` of all processes (e.g. a stop signal received by any one of them)."""
    if not current().distributed:
        return value
    t = torch.tensor([value], dtype=torch.long, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


class _EmbedBatch(nn.Module):
    """Makes `model.embed_batch` the forward DDP wraps: DDP prepares its gradient reduction in forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], device: torch.device):
        return self.model.embed_batch(batch, device)


class BatchEmbedder:
    """`embed(batch, device)` with gradient synchronization when several processes train.

    For a single process it is `model.embed_batch`. Under torchrun it goes through a
    DistributedDataParallel wrapper (built per stage, as the trainable parameters change), and
    `no_sync()` defers the gradient all-reduce to the last micro-batch of an accumulated step.
    """

    def __init__(self, model: nn.Module, device: torch.device):
        self.model = model
        self.ddp = None
        if current().distributed:
            # broadcast_buffers off: the encoders keep no running statistics, only constant index buffers.
            self.ddp = DistributedDataParallel(
                _EmbedBatch(model),
                device_ids=[device.index] if device.type == "cuda" else None,
                broadcast_buffers=False,
            )

    def __call__(self, batch: dict[str, torch.Tensor], device: torch.device):
        return self.ddp(batch, device) if self.ddp is not None else self.model.embed_batch(batch, device)

    def no_sync(self) -> contextlib.AbstractContextManager:
        return self.ddp.no_sync() if self.ddp is not None else contextlib.nullcontext()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
