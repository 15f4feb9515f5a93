"""The retrieval metrics, computed: ranks, recalls and the validation pass over a loader, for training's
validation (peftzoo_engine/evaluation.py), `python -m recipes.evaluate` and the batched sweep trainer.
Their names are peftzoo_model/metric_names.py's.

Ranks are 1-based and pessimistic on ties (a pair ranks behind every candidate scoring at least as
high), so collapsed embeddings score rank N, never a perfect R@1. A pair whose
similarity to its partner is not finite (a NaN or inf embedding: a diverged model) ranks last, and the
number of non-finite embeddings is reported (`<split>/nonfinite`), so a diverged model cannot score a hit.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging

import numpy as np
import torch
from torch.utils.data import DataLoader

from peftzoo_model.metric_names import (  # noqa: F401 (the names, re-exported beside the code that computes them)
    DIRECTIONS,
    KS,
    RANK_METRICS,
    RETRIEVAL_METRICS,
    SELECTABLE_METRICS,
    lower_is_better,
)

logger = logging.getLogger(__name__)


def ranks(similarity: torch.Tensor, same: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """1-based rank of the true partner (the diagonal) in each row, ties counted against it.

    A row whose diagonal is NaN or inf ranks last (N); a NaN candidate never outranks the partner
    (NaN compares false), an inf one always does. `same` (N,) labels pairs that show the same
    stimulus (identical videos): the other pairs of its label are not counted against a pair, since
    an identical video embeds identically and would otherwise tie with the partner and turn every
    hit into rank 2 (a stimulus shown twice is the norm in EEG experiments).
    """
    diag = torch.diagonal(similarity)[:, None]
    above = similarity >= diag
    if same is not None:
        same = torch.as_tensor(np.asarray(same), device=similarity.device)
        above &= (same[:, None] != same[None, :]) | torch.eye(len(same), dtype=torch.bool, device=similarity.device)
    counted = above.sum(dim=1)
    return torch.where(torch.isfinite(diag[:, 0]), counted, torch.full_like(counted, similarity.shape[1]))


def same_video_labels(video, indices: np.ndarray) -> np.ndarray:
    """(len(indices),) int64: pairs whose uint8 videos are byte-identical share a label (read row by
    row, so a memory-mapped array is never loaded whole)."""
    seen: dict[bytes, int] = {}
    return np.array(
        [seen.setdefault(hashlib.sha1(np.ascontiguousarray(video[i]).tobytes()).digest(), len(seen)) for i in indices],
        dtype=np.int64,
    )


def nonfinite(embeddings: torch.Tensor) -> int:
    """How many embeddings (rows) hold a NaN or inf."""
    return int((~torch.isfinite(embeddings)).any(dim=1).sum()) if embeddings.numel() else 0


def retrieval_metrics(similarity: torch.Tensor, prefix: str, same=None) -> dict[str, float]:
    r = ranks(similarity, same).float()
    out = {f"{prefix}/R@{k}": float((r <= k).float().mean()) for k in KS}
    out[f"{prefix}/mean_rank"] = float(r.mean())
    out[f"{prefix}/median_rank"] = float(r.median())
    return out


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """The model in eval mode (no dropout) for the block, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def embed_split(model, loader: DataLoader, device: torch.device, with_index: bool = False):
    """(eeg, video, groups) embeddings of every batch, in loader order; plus the pairs' indices in
    the data when `with_index` (None when batches do not carry them)."""
    eeg, video, groups, index = [], [], [], []
    for batch in loader:
        e, v, g = model.embed_batch(batch, device)
        eeg.append(e.float())
        video.append(v.float())
        groups.append(g)
        if with_index and isinstance(batch, dict) and "index" in batch:
            index.append(torch.as_tensor(batch["index"]).cpu())
    out = torch.cat(eeg), torch.cat(video), torch.cat(groups)
    if with_index:
        return (*out, torch.cat(index).numpy() if len(index) == len(eeg) else None)
    return out


def loader_same_video(loader, index: np.ndarray | None) -> np.ndarray | None:
    """Same-video labels (`same_video_labels`) of the pairs `index` of a loader over peftzoo_data's
    PairTorchDataset (or of IndexBatches, when features are cached), hashed once per dataset; None
    when the data are not at hand."""
    dataset = getattr(loader, "dataset", loader)
    video = getattr(getattr(dataset, "data", None), "video", None)
    if index is None or video is None or not hasattr(dataset, "indices"):
        return None
    labels = getattr(dataset, "_same_video", None)
    if labels is None:
        labels = dict(zip(np.asarray(dataset.indices).tolist(), same_video_labels(video, dataset.indices).tolist()))
        dataset._same_video = labels
    try:
        return np.array([labels[int(i)] for i in index], dtype=np.int64)
    except KeyError:  # batches from outside the dataset's own indices
        return None


@torch.no_grad()
def evaluate(model, loader: DataLoader, device: torch.device, prefix: str = "val") -> dict[str, float]:
    """Loss over the whole split as one batch (independent of batch size) and retrieval metrics.

    Pairs with identical videos are not counted against each other (as `split_report`), so the
    validation metrics of training and of `python -m recipes.evaluate` agree."""
    with eval_mode(model):
        eeg, video, groups, index = embed_split(model, loader, device, with_index=True)
        similarity = eeg @ video.t()
        metrics = {f"{prefix}/loss": float(model.loss(eeg, video, groups))}
    same = loader_same_video(loader, index)
    metrics.update(retrieval_metrics(similarity, f"{prefix}/eeg_to_video", same))
    metrics.update(retrieval_metrics(similarity.t(), f"{prefix}/video_to_eeg", same))
    metrics[f"{prefix}/n"] = int(len(eeg))
    metrics[f"{prefix}/chance_R@1"] = 1.0 / max(len(eeg) if same is None else len(np.unique(same)), 1)
    metrics[f"{prefix}/nonfinite"] = nonfinite(eeg) + nonfinite(video)
    if metrics[f"{prefix}/nonfinite"]:
        logger.warning(
            "%s: %d embeddings hold NaN or inf; their pairs rank last", prefix, metrics[f"{prefix}/nonfinite"]
        )
    return metrics
