"""A shuffling sampler that can start mid-epoch, so a resumed run sees exactly the batches it would have.

Each epoch's order is a permutation drawn from its own generator seeded by (seed, epoch): it depends
on nothing that happened before, and `set_epoch(epoch, start)` skips the pairs already trained on.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch, self.start = n, seed, 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator)[self.start :].tolist())

    def __len__(self) -> int:
        return self.n - self.start
