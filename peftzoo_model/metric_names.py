"""The names of the retrieval metrics: one place for them, read by the code that computes them
(peftzoo_model/metrics.py), the recipe schema (train.select's metric), evaluate, compare and the sweeps.

Plain Python (no torch), so the recipe schema stays quick to import.
"""

from __future__ import annotations

KS = (1, 5, 10)
DIRECTIONS = ("eeg_to_video", "video_to_eeg")
RANK_METRICS = ("mean_rank", "median_rank")
RETRIEVAL_METRICS = (*(f"R@{k}" for k in KS), *RANK_METRICS)
"""Each direction's metrics: `<prefix>/<direction>/<metric>`."""
SELECTABLE_METRICS = ("val/loss", *(f"val/{d}/{m}" for d in DIRECTIONS for m in RETRIEVAL_METRICS))
"""What the per-epoch evaluation logs that train.select may rank epochs by."""


def lower_is_better(metric: str) -> bool:
    """Losses and ranks improve downwards, recalls upwards."""
    return metric.endswith("/loss") or metric.endswith("_rank")
