"""Retrieval evaluation over a whole split, in both directions (as open_clip's get_clip_metrics).

Ranks are 1-based and pessimistic on ties (a pair ranks behind every candidate scoring at least as
high), so collapsed embeddings score rank N, never a perfect R@1.
"""

from __future__ import annotations

import contextlib

import torch
from torch.utils.data import DataLoader

from recipes.model import DualEncoderCLIP

KS = (1, 5, 10)


def ranks(similarity: torch.Tensor) -> torch.Tensor:
    """1-based rank of the true partner (the diagonal) in each row, ties counted against it."""
    diag = torch.diagonal(similarity)[:, None]
    return (similarity >= diag).sum(dim=1)


def retrieval_metrics(similarity: torch.Tensor, prefix: str) -> dict[str, float]:
    r = ranks(similarity).float()
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
def embed_split(model: DualEncoderCLIP, loader: DataLoader, device: torch.device):
    eeg, video, groups = [], [], []
    for batch in loader:
        e, v, g = model.embed_batch(batch, device)
        eeg.append(e.float())
        video.append(v.float())
        groups.append(g)
    return torch.cat(eeg), torch.cat(video), torch.cat(groups)


@torch.no_grad()
def evaluate(model: DualEncoderCLIP, loader: DataLoader, device: torch.device, prefix: str = "val") -> dict[str, float]:
    """Loss over the whole split as one batch (independent of batch size) and retrieval metrics."""
    with eval_mode(model):
        eeg, video, groups = embed_split(model, loader, device)
        similarity = eeg @ video.t()
        metrics = {f"{prefix}/loss": float(model.loss(eeg, video, groups))}
    metrics.update(retrieval_metrics(similarity, f"{prefix}/eeg_to_video"))
    metrics.update(retrieval_metrics(similarity.t(), f"{prefix}/video_to_eeg"))
    metrics[f"{prefix}/n"] = int(len(eeg))
    metrics[f"{prefix}/chance_R@1"] = 1.0 / max(len(eeg), 1)
    return metrics
