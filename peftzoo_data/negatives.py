"""How many negatives each anchor gets on the train split, from the sampler and the loss's masking.

A contrastive loss learns from the negatives left in a batch. Masking pairs of one stimulus
(`loss.mask_same_group`) on a train split where every pair shares one id leaves none: the clip loss
is then exactly 0 and nothing moves (the first run of issue 19: a split by subject whose train split
was one recording, with the recording as the id). This is computed from the ids alone, before
training (recipes/preflight.py), and by the doctor on a finished run (peftzoo_tools/doctor/data_checks.py).

Expected unmasked negatives per anchor, with batch size B over N training pairs, n_s pairs of stimulus s:
- group-disjoint sampler (every batch of distinct stimuli), or no masking: B - 1;
- random batches with masking: an anchor of s meets (B - 1) (N - n_s) / (N - 1) pairs of other stimuli
  on average (drawing B - 1 others without replacement), so the mean over anchors is
  (B - 1) (1 - sum n_s (n_s - 1) / (N (N - 1))) and the least is at the largest stimulus.
"""

from __future__ import annotations

import dataclasses

import numpy as np

FLOOR_FRACTION = 0.05
"""Refused below this share of the batch's other pairs as unmasked negatives, on average (and at 0 for
certain): the loss then learns from almost nothing, or from a few stimuli only."""


@dataclasses.dataclass(frozen=True)
class Negatives:
    batch: int
    """Pairs in a (global) batch."""
    mean: float
    """Expected unmasked negatives per anchor, averaged over the train split's pairs."""
    least: float
    """Expected unmasked negatives of the anchor that has the fewest (the largest stimulus)."""
    stimuli: int
    """Distinct stimulus ids in the train split."""
    largest: int
    """Pairs of the most frequent stimulus id."""
    pairs: int
    masked: bool
    """Whether the loss masks pairs of one stimulus (and the sampler mixes them)."""

    @property
    def floor(self) -> float:
        return FLOOR_FRACTION * (self.batch - 1)

    @property
    def masked_share(self) -> float:
        """Expected share of a batch's off-diagonal logits that masking takes out."""
        return 1.0 - self.mean / (self.batch - 1) if self.batch > 1 else 0.0

    @property
    def too_few(self) -> bool:
        return self.batch > 1 and (self.mean <= 0 or self.mean < self.floor)

    def describe(self) -> str:
        return (
            f"{self.pairs} training pairs of {self.stimuli} distinct stimulus id{'s' if self.stimuli != 1 else ''} "
            f"(the largest has {self.largest} pairs), batches of {self.batch}"
            + (", masking pairs of one stimulus" if self.masked else "")
            + f": {self.mean:.2f} unmasked negatives per anchor on average (least {self.least:.2f}) of "
            f"{self.batch - 1} others, {100 * self.masked_share:.0f}% of the logits masked"
        )


def expected_negatives(ids: np.ndarray, batch: int, masked: bool, disjoint: bool) -> Negatives:
    """Negatives per anchor for the train split's stimulus ids `ids` (see the module's docstring)."""
    ids = np.asarray(ids)
    n = len(ids)
    batch = min(int(batch), n)
    _, counts = np.unique(ids, return_counts=True) if n else (None, np.zeros(0, dtype=np.int64))
    largest = int(counts.max()) if n else 0
    others = max(batch - 1, 0)
    if not masked or disjoint or n < 2:
        mean = least = float(others)
    else:
        same = float((counts * (counts - 1)).sum()) / (n * (n - 1))
        mean = others * (1.0 - same)
        least = others * (n - largest) / (n - 1)
    return Negatives(batch, mean, least, len(counts), largest, n, masked and not disjoint)
