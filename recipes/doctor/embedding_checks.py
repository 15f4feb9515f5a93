"""Checks on embeddings: nonnegative_embeddings and embedding_collapse (facts 4 and 10).

They take (N, d) L2-normalized embeddings of one side, so they serve both the doctor (a sample of
the validation split embedded by the rebuilt model) and the live checks (the embeddings evaluation
computed anyway).

- nonnegative: fewer than 1% of coordinates negative. A healthy head output is centred, about half
  its coordinates negative; after a final ReLU none are (fact 10), after a final GELU only tiny ones.
- collapse: lightly's std_of_l2_normalized times sqrt(d) below 0.1, tenfold under healthy (~1;
  collapsed 0; fact 4), or mean off-diagonal cosine above 0.98 (fact 4 says 0.95, the issue 0.9; the
  tiny test encoders' frozen features share so large a mean that runs which retrieve well above
  chance reach 0.95, and every collapse we planted reached 0.99). An embedding that uses only
  k of d dimensions scores about sqrt(k/d) (0.5 for 8 of 32), and an untrained tiny encoder whose
  features share a large mean scores 0.2-0.3 while still retrieving, so 0.1 is the first value that
  only a collapse reaches. The issue's 0.9 for the cosine is
  reached by an untrained tiny encoder whose features share a large mean yet still retrieve (0.91,
  spread 0.29).
"""

from __future__ import annotations

import torch

from recipes.doctor.findings import Finding, fmt

NEGATIVE_SHARE = 0.01
SPREAD_RATIO, MEAN_COSINE = 0.1, 0.98
_RELU_LIKE = ("ReLU", "ReLU6", "Softplus", "Sigmoid", "Softmax", "Hardsigmoid", "Threshold", "ELU", "CELU", "SELU", "GELU", "SiLU", "Mish")


def last_activation(module: torch.nn.Module | None) -> str | None:
    """Class name of the module's last leaf if it is an activation (ReLU-like), else None."""
    if module is None:
        return None
    leaves = [m for m in module.modules() if not list(m.children())]
    leaves = [m for m in leaves if not isinstance(m, (torch.nn.Dropout, torch.nn.Identity))]
    if leaves and type(leaves[-1]).__name__ in _RELU_LIKE:
        return type(leaves[-1]).__name__
    return None


def spread(z: torch.Tensor) -> tuple[float, float]:
    """(std_of_l2_normalized * sqrt(d), mean off-diagonal cosine) of embeddings z (N, d)."""
    z = torch.nn.functional.normalize(z.float(), dim=1)
    n, d = z.shape
    std = float(z.std(dim=0).mean()) * d**0.5 if n > 1 else 0.0
    cos = z @ z.t()
    off = (cos.sum() - cos.diagonal().sum()) / max(n * (n - 1), 1)
    return std, float(off)


def check_embeddings(side: str, z: torch.Tensor, head: torch.nn.Module | None = None, where: str = "") -> list[Finding]:
    if len(z) < 4:
        return []
    out = []
    z = z.float()
    negative = float((z < 0).float().mean())
    cos = z @ z.t()
    off = cos[~torch.eye(len(z), dtype=torch.bool)]
    if negative < NEGATIVE_SHARE:
        act = last_activation(head)
        cause = f"the {side} head ends in {act}" if act else f"the {side} head's or encoder's output passes a non-negative map last"
        out.append(Finding(
            "nonnegative_embeddings", "error",
            f"{fmt(100 * negative, 2)}% of {side} embedding coordinates are negative{where} (healthy: about half); "
            f"the smallest of {len(off)} pairwise cosines is {fmt(float(off.min()))}: {cause}, so every cosine is >= 0 "
            "and the similarity range is squeezed",
            f"end the {side} head in a Linear (or LayerNorm) layer, as CLIP, LiT, ImageBind and NICE do: "
            f"{side}.head: linear, or {side}.head: {{name: mlp, hidden: [512]}} (its activations are inside only)",
        ))
    ratio, mean_cos = spread(z)
    if ratio < SPREAD_RATIO or mean_cos > MEAN_COSINE:
        out.append(Finding(
            "embedding_collapse", "error",
            f"{side} embeddings{where}: spread std_of_l2_normalized x sqrt(d) = {fmt(ratio)} (healthy ~1, collapsed 0) and "
            f"mean off-diagonal cosine {fmt(mean_cos)} over {len(z)} inputs: different inputs map to nearly one vector",
            f"check that the {side} input varies (constant or black frames, a flat-lined EEG channel set), then lower "
            "train.lr and the heads' weight decay; a collapsed side gives the other nothing to align to",
        ))
    return out
