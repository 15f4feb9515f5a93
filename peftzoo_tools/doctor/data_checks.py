"""Checks on the training data: eeg_units and same_group_negatives (facts 6 and 11 of docs/reference/doctor-codes.md).

- eeg_units: the encoders take microvolts (LaBraM divides by 100 and was pretrained on uV). Scalp
  EEG has a standard deviation of about 5-100 uV (fact 11). A median per-channel std below 0.5 is
  at least 10x too small (volts read as uV give ~1e-5, millivolts ~0.01); above 1000 is 10x too large
  (nanovolts, raw ADC counts). Each side has a 10x margin, so real recordings with quiet or noisy
  channels stay inside.
- same_group_negatives: pairs of one recording or stimulus used as negatives. Two ways in:
  (a) groups are given, the loss does not mask same-group pairs (loss.mask_same_group: false) and the
      sampler is random (train.sampler: random), so same-group pairs meet in a batch as negatives;
  (b) groups are missing or finer than the recordings: consecutive windows of *different* groups
      look alike. Measured on the trained model's embeddings: the share of consecutive pairs whose
      cosine exceeds the 95th percentile of random pairs' cosines. Independent windows give ~5%; we
      flag above 50% (SEED-DV puts 5 clips of a concept back to back: 4 of 5 neighbours alike).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from peftzoo_tools.doctor.findings import Finding, fmt

UV_LOW, UV_HIGH = 0.5, 1000.0
ALIKE_SHARE, MIN_ADJACENT = 0.5, 16


def eeg_std_uv(eeg: np.ndarray, k: int = 256) -> float:
    """Median over up to k windows and all channels of the per-channel standard deviation."""
    n = len(eeg)
    idx = np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(np.int64)) if n else np.zeros(0, np.int64)
    if not len(idx):
        return float("nan")
    x = np.asarray(eeg[idx], dtype=np.float64)
    std = x.std(axis=-1)
    std = std[np.isfinite(std)]
    return float(np.median(std)) if std.size else float("nan")


def check_eeg_units(eeg: np.ndarray, where: str = "the data") -> list[Finding]:
    level = eeg_std_uv(eeg)
    if not math.isfinite(level) or UV_LOW <= level <= UV_HIGH:
        return []
    if level < UV_LOW:
        if level < 1e-3:
            guess, factor = "volts", "1e6"
        else:
            guess, factor = "millivolts", "1e3"
        fix = (
            f"convert the EEG to microvolts (multiply eeg.npy by {factor}; MNE's get_data() returns volts, use "
            "get_data(units='uV')) and train again"
        )
    else:
        guess, factor = "nanovolts or raw ADC counts", "the unit's factor"
        fix = (
            "convert the EEG to microvolts (nanovolts: divide by 1e3; ADC counts: apply the amplifier's gain) "
            "and train again"
        )
    return [
        Finding(
            "eeg_units",
            "error",
            f"median per-channel EEG standard deviation in {where} is {fmt(level)} (scalp EEG: about 5-100 uV); "
            f"the values look like {guess}, not microvolts",
            fix,
        )
    ]


def check_group_masking(groups: np.ndarray, train_idx: np.ndarray, recipe: dict) -> list[Finding]:
    """(a): stimulus ids (or groups standing for them) given but neither the loss nor the sampler keeps
    pairs of one id apart. The fix never turns masking on where masking would leave no negatives."""
    loss = recipe.get("loss") or {}
    sampler = (recipe.get("train") or {}).get("sampler", "auto")
    if loss.get("mask_same_group", True) or sampler != "random":
        return []
    g = np.asarray(groups)[np.asarray(train_idx)]
    n = len(g)
    if n < 2:
        return []
    _, counts = np.unique(g, return_counts=True)
    p = float((counts * (counts - 1)).sum()) / (n * (n - 1))
    if p == 0:
        return []
    batch = min(int((recipe.get("train") or {}).get("batch_size", 64)), n)
    from peftzoo_data.negatives import expected_negatives

    masked = expected_negatives(g, batch, masked=True, disjoint=False)
    disjoint_ok = len(counts) >= batch
    if not masked.too_few:
        fix = "loss.mask_same_group: true (the default), or train.sampler: group_disjoint"
    elif disjoint_ok:
        fix = "train.sampler: group_disjoint (batches of distinct stimuli)"
    else:
        # Masking these ids would leave no negative (no_negatives): never advise it; the ids are too coarse.
        fix = (
            f"masking these ids would leave {masked.mean:.2f} negatives per anchor, so give each pair its stimulus "
            "id instead (stimulus.npy; ingest's negatives: {by: stimulus}) and mask those, or put more stimuli in "
            "the train split"
        )
    return [
        Finding(
            "same_group_negatives",
            "warning",
            f"{len(counts)} stimulus ids over {n} training pairs and loss.mask_same_group: false "
            "with train.sampler: random: "
            f"each pair meets on average {fmt(p * (batch - 1))} pairs of its own id as negatives per batch of {batch} "
            f"({fmt(100 * p)}% of all negatives)",
            fix,
        )
    ]


def adjacent_alike(z: torch.Tensor, groups: np.ndarray, seed: int = 0) -> tuple[float, int]:
    """(share, count): of consecutive pairs of different groups (rows 2i, 2i+1 of z), the share whose
    cosine exceeds the 95th percentile of cosines between random non-neighbours."""
    z = torch.nn.functional.normalize(z.float(), dim=1)
    a, b = z[0::2], z[1::2]
    m = min(len(a), len(b))
    a, b = a[:m], b[:m]
    g = np.asarray(groups)
    differ = torch.as_tensor(g[0::2][:m] != g[1::2][:m])
    if int(differ.sum()) < MIN_ADJACENT:
        return 0.0, int(differ.sum())
    adjacent = (a * b).sum(dim=1)[differ]
    rng = np.random.default_rng(seed)
    perm = torch.as_tensor(rng.permutation(m))
    shifted = torch.as_tensor((np.arange(m) + 1 + rng.integers(1, max(m - 1, 2), m)) % m)
    random_pairs = (a * b[shifted]).sum(dim=1)
    random_pairs = torch.cat([random_pairs, (a * a[perm]).sum(dim=1)[perm != torch.arange(m)]])
    threshold = torch.quantile(random_pairs, 0.95)
    return float((adjacent > threshold).float().mean()), int(differ.sum())


def check_adjacent(side_embeddings: dict[str, torch.Tensor], groups: np.ndarray, recipe: dict) -> list[Finding]:
    """(b): consecutive windows of different groups look alike on some side."""
    results = {side: adjacent_alike(z, groups) for side, z in side_embeddings.items()}
    alike = {side: r for side, r in results.items() if r[1] >= MIN_ADJACENT and r[0] > ALIKE_SHARE}
    if not alike:
        return []
    shown = "; ".join(f"{side}: {100 * share:.0f}% of {count}" for side, (share, count) in alike.items())
    unique = len(np.unique(groups)) == len(groups)
    state = "every pair is its own stimulus (no stimulus.npy or groups.npy)" if unique else "their stimulus ids differ"
    mask = (recipe.get("loss") or {}).get("mask_same_group", True)
    return [
        Finding(
            "same_group_negatives",
            "warning",
            f"consecutive windows look alike although {state}: {shown} neighbouring pairs "
            "are more similar than 95% of random "
            "pairs (independent windows: about 5%), so windows of one recording or stimulus are each other's negatives",
            "give every window its stimulus id in stimulus.npy (arrays; ingest's negatives: {by: stimulus}) or, where "
            "windows of one recording are alike, its recording in groups.npy"
            + (
                "; with groups, loss.mask_same_group: true keeps them apart"
                if not mask
                else " (loss.mask_same_group: true, the default, then masks them)"
            ),
        )
    ]
