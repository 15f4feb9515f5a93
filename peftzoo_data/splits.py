"""Group-aware splits and the data error, without torch: `python -m recipes.ingest` splits its pairs
with these and must start quickly; peftzoo_data/base.py re-exports them (the plugin contract's
`from peftzoo_data.base import group_split, DataError`)."""

from __future__ import annotations

import numpy as np

from registry.errors import UserError

SPLITS = ("train", "val", "test")


class DataError(UserError, ValueError):
    """Data that is missing, malformed, or inconsistent with itself."""


def group_split(groups: np.ndarray, val_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded train/val split of whole groups, val getting about `val_fraction` of the pairs."""
    groups = np.asarray(groups)
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    order = rng.permutation(unique)
    target = int(round(val_fraction * len(groups)))
    val_groups: list = []
    count = 0
    counts = {g: c for g, c in zip(*np.unique(groups, return_counts=True))}
    for g in order:
        if count >= target:
            break
        val_groups.append(g)
        count += counts[g]
    is_val = np.isin(groups, np.asarray(val_groups))
    if val_fraction > 0 and is_val.all():
        raise DataError(
            f"val_fraction {val_fraction} leaves no pair for training (only {len(unique)} groups); lower it"
        )
    return {"train": np.flatnonzero(~is_val), "val": np.flatnonzero(is_val)}


def splits_from_labels(labels: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    """Splits from per-pair labels ('train'/'val'/'test'), refusing labels that cut a group."""
    labels = np.asarray(labels).astype(str)
    unknown = sorted({str(x) for x in np.unique(labels)} - set(SPLITS))
    if unknown:
        raise DataError(f"split.npy has labels {unknown}; allowed are {list(SPLITS)}")
    for g in np.unique(groups):
        seen = [str(x) for x in np.unique(labels[groups == g])]
        if len(seen) > 1:
            raise DataError(
                f"split.npy puts group {int(g)} in {seen}; a group (the leakage unit: recording, subject, session or "
                f"block) must lie in one split, or its pairs leak across the split"
            )
    return {s: np.flatnonzero(labels == s) for s in SPLITS if (labels == s).any()}
