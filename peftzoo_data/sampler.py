"""Batch samplers that can start mid-epoch, so a resumed run sees exactly the batches it would have.

Each epoch's order comes from its own generator seeded by (seed, epoch): it depends on nothing that
happened before, and `set_epoch(epoch, start_batch)` skips the batches already trained on.

- `ShuffledBatches`: a random permutation cut into full batches (drop_last).
- `GroupDisjointBatches`: batches in which no two pairs share an id, for losses that do not mask
  pairs of one stimulus: given the stimulus ids (PairedData.stimulus), pairs of one stimulus are
  then never each other's negatives.

Under torchrun every process builds the same global batches and `shard(rank, size)` makes it yield
only its contiguous slice of each, so the slices gathered in rank order are the global batch.
"""

from __future__ import annotations

import abc

import numpy as np
import torch
from torch.utils.data import Sampler


class _EpochBatches(Sampler[list[int]], abc.ABC):
    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.start_batch = 0, 0
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        """Yield only slice `rank` of `world_size` equal slices of every batch (batch_size must divide)."""
        if self.batch_size % world_size:
            raise ValueError(f"batch size {self.batch_size} does not split into {world_size} equal slices")
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)

    @abc.abstractmethod
    def batches(self) -> list[list[int]]:
        """This epoch's batches, in order."""

    def __iter__(self):
        per_process = self.batch_size // self.world_size
        lo = self.rank * per_process
        return (batch[lo : lo + per_process] for batch in self.batches()[self.start_batch :])

    def __len__(self) -> int:
        return len(self.batches()) - self.start_batch


class ShuffledBatches(_EpochBatches):
    def batches(self) -> list[list[int]]:
        order = torch.randperm(self.n, generator=self.generator()).tolist()
        return [order[i : i + self.batch_size] for i in range(0, self.n - self.batch_size + 1, self.batch_size)]

    def __len__(self) -> int:
        return self.n // self.batch_size - self.start_batch


class GroupDisjointBatches(_EpochBatches):
    def __init__(self, groups: np.ndarray, batch_size: int, seed: int):
        super().__init__(len(groups), batch_size, seed)
        self.groups = np.asarray(groups)
        self._cache: tuple[int, list[list[int]]] | None = None

    def batches(self) -> list[list[int]]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=self.generator())))
        order = rng.permutation(self.n)
        # Visit pairs in random order; each goes to the first batch being filled that lacks its group.
        open_batches: list[tuple[list[int], set]] = []
        full: list[list[int]] = []
        for i in order:
            g = self.groups[i]
            for members, seen in open_batches:
                if g not in seen:
                    members.append(int(i))
                    seen.add(g)
                    break
            else:
                open_batches.append(([int(i)], {g}))
            done = [b for b in open_batches if len(b[0]) == self.batch_size]
            for b in done:
                open_batches.remove(b)
                full.append(b[0])
        batches = [full[j] for j in rng.permutation(len(full))]  # incomplete batches dropped (drop_last)
        self._cache = (self.epoch, batches)
        return batches


class IndexBatches:
    """The loader of a stage in which both sides' features are cached: each batch is only the pairs'
    indices, groups and stimulus ids, taken with one numpy lookup per epoch (per batch where batches differ in
    size). A DataLoader would call __getitem__ and collate per pair, which costs as much as a head's forward and
    backward at these sizes.
    """

    def __init__(self, batch_sampler: Sampler[list[int]], indices: np.ndarray, groups: np.ndarray, data=None):
        self.batch_sampler = batch_sampler
        self.indices, self.groups = np.asarray(indices), np.asarray(groups)
        self.data = data
        """The PairedData the indices point into (evaluation reads which pairs share a video), as
        a DataLoader's PairTorchDataset holds it."""
        stimulus = getattr(data, "stimulus_ids", None)
        self.stimulus = self.groups if stimulus is None else np.asarray(stimulus)

    def __iter__(self):
        batches = list(self.batch_sampler)
        if len({len(b) for b in batches}) != 1:  # evaluation's last batch may be short
            for positions in batches:
                yield self._batch(self.indices[positions])
            return
        # Training batches are all full: one lookup for the epoch, and each batch is a row of it.
        epoch = self._batch(self.indices[np.asarray(batches)])
        for i in range(len(batches)):
            yield {key: rows[i] for key, rows in epoch.items()}

    def _batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        return {
            "index": torch.from_numpy(index),
            "group": torch.from_numpy(self.groups[index]),
            "stimulus": torch.from_numpy(self.stimulus[index]),
        }

    def __len__(self) -> int:
        return len(self.batch_sampler)


class InOrder(Sampler[list[int]]):
    """Consecutive batches over n items, in order (the last one may be short): evaluation batches."""

    def __init__(self, n: int, batch_size: int):
        self.n, self.batch_size = n, batch_size

    def __iter__(self):
        return (list(range(i, min(i + self.batch_size, self.n))) for i in range(0, self.n, self.batch_size))

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)
