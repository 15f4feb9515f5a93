"""no_negatives: the loss masked (almost) every negative, so it could not learn.

With `loss.mask_same_group` (on by default) pairs sharing a stimulus id are not each other's
negatives. Where the ids are too coarse for the train split (an old groups.npy by recording and a
train split of one recording: issue 19's first run) every negative is masked: the clip loss is then
exactly 0, nothing receives a gradient, and a LoRA's B stays at zero, which looks like a frozen
adapter. Two ways to see it:
- live: the share of off-diagonal logits the loss masked, logged as `train/masked_share`
  (peftzoo_model/losses/base.py), above 1 - FLOOR_FRACTION after warm-up;
- from the data: the expected unmasked negatives per anchor on the train split under the run's
  sampler and masking (peftzoo_data/negatives.py, the number recipes/preflight.py refuses on).
The fix is never to turn masking on (it is the cause): it is ids that tell the stimuli apart.
"""

from __future__ import annotations

import numpy as np

from peftzoo_data.negatives import FLOOR_FRACTION, Negatives, expected_negatives
from peftzoo_tools.doctor.curves import median
from peftzoo_tools.doctor.findings import Finding, fmt
from peftzoo_tools.doctor.run_reader import RunRecord

FIX_WITHOUT_STIMULUS = (
    "give each pair its stimulus id, so that masking takes out only pairs of one stimulus: ingest writes stimulus.npy "
    "(negatives: {by: stimulus}, the default); an arrays folder takes stimulus.npy beside groups.npy; or put more "
    "recordings (groups) in the train split. Do not count on loss.mask_same_group: true here, it is what masks them all"
)


def masks(recipe: dict) -> bool:
    """Whether the run's loss masks pairs of one stimulus (the built-in losses' mask_same_group, on by default)."""
    loss = recipe.get("loss") or {}
    if isinstance(loss, str):
        loss = {"name": loss}
    return loss.get("name", "clip") in ("clip", "siglip", "protonce") and bool(loss.get("mask_same_group", True))


def sampling(recipe: dict, ids: np.ndarray) -> Negatives:
    """Expected negatives for the train split's ids under the recipe's sampler and masking (as preflight)."""
    train = recipe.get("train") or {}
    masked = masks(recipe)
    choice = train.get("sampler", "auto")
    disjoint = choice == "group_disjoint" or (choice == "auto" and len(np.unique(ids)) < len(ids) and not masked)
    return expected_negatives(ids, int(train.get("batch_size", 64)), masked, disjoint)


def check_masked_share(run: RunRecord) -> list[Finding]:
    """no_negatives from the live count of masked logits (`train/masked_share` of the epoch lines, else of the
    train lines)."""
    lines = [line for line in run.epochs if line.get("train/masked_share") is not None]
    kind = "epoch"
    if not lines:
        lines, kind = [line for line in run.train if line.get("train/masked_share") is not None], "train"
    shares = [float(line["train/masked_share"]) for line in lines]
    if not shares:
        return []
    level = median(shares[len(shares) // 3 :] or shares)
    if level <= 1 - FLOOR_FRACTION:
        return []
    b = run.batch_pairs()
    return [
        Finding(
            "no_negatives",
            "error",
            f"the loss masked {fmt(100 * level)}% of the off-diagonal logits "
            f"(median of {len(shares)} {kind} lines, batches of {b}): "
            f"{fmt((1 - level) * (b - 1))} of {b - 1} negatives per anchor remained; a loss without negatives is "
            "flat and trains nothing",
            FIX_WITHOUT_STIMULUS,
        )
    ]


def check_data(stimulus_ids: np.ndarray, train_idx: np.ndarray, recipe: dict, has_stimulus: bool) -> list[Finding]:
    """no_negatives from the data: the expected negatives per anchor on the train split are below the floor."""
    found = sampling(recipe, np.asarray(stimulus_ids)[np.asarray(train_idx)])
    if not found.too_few:
        return []
    fix = (
        FIX_WITHOUT_STIMULUS
        if not has_stimulus
        else (
            f"put pairs of more stimuli in the train split (it has {found.stimuli}), "
            "or give stimulus ids that tell them apart "
            "(stimulus.npy; ingest's negatives: {by: stimulus})"
        )
    )
    return [
        Finding(
            "no_negatives",
            "error",
            f"{found.describe()}: below the floor of {found.floor:.2f} "
            f"({int(100 * FLOOR_FRACTION)}% of the other pairs)"
            + (", so the loss is exactly 0 and nothing trains" if found.mean <= 0 else ""),
            fix,
        )
    ]
