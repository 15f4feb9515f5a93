"""Checks on embeddings: nonnegative_embeddings and embedding_collapse (facts 4 and 10 of
docs/reference/doctor-codes.md).

They take (N, d) L2-normalized embeddings of one side, so they serve both the doctor (a sample of
the validation split embedded by the rebuilt model) and the live checks (the embeddings evaluation
computed anyway).

- nonnegative: fewer than 1% of the nonzero coordinates negative. A healthy head output is centred, about half
  its coordinates negative; after a final ReLU none are (fact 10), after a final GELU only tiny ones.
- collapse: mean off-diagonal cosine above 0.98 (fact 4 says 0.95, the issue 0.9), or an effective
  rank below 2 (fact 4). Reported with lightly's std_of_l2_normalized times sqrt(d) (healthy ~1,
  collapsed 0; fact 4).
  Neither statistic depends on the dimension: for unit vectors the mean off-diagonal cosine is
  about |mean z|^2, and where the variance is spread over the coordinates the spread is about
  sqrt(1 - |mean z|^2), whatever d is (the sqrt(d) factor is lightly's 1/sqrt(d) healthy level). So
  one threshold serves every embed_dim, as measured at two sizes by
  `python benchmarks/embedding_spread.py` (validation embeddings; spread / mean cosine):

      run                                    d    eeg            video
      head_only_tiny, trained                128  0.974 / 0.010  0.957 / 0.026
      head_only_tiny, heads untrained        128  0.450 / 0.782  0.438 / 0.790
      head_only_tiny, constant video         128  0.059 / 0.996  0.000 / 1.000
      head_only_tiny, train.lr 0.3           128  0.167 / 0.962  0.190 / 0.954
      head_only_labram_swin, trained         256  0.958 / 0.035  0.921 / 0.086
      head_only_labram_swin, heads untrained 256  0.287 / 0.914  0.417 / 0.802
      head_only_labram_swin, constant video  256  0.032 / 0.999  0.000 / 1.000
      head_only_labram_swin, train.lr 0.3    256  0.005 / 1.000  0.320 / 0.887

  (head_only_labram_swin: LaBraM-Base and Video Swin-T at random init, features of 200 and 768
  dims, on synthetic data.) Trained heads score >= 0.92 / <= 0.09 at both sizes. Heads at their
  initialization on real-size random encoders reach a mean cosine of 0.914 while the run is still
  learning, so the issue's 0.9 (and nearly fact 4's 0.95) would flag a model that has not started;
  every side that collapsed onto one point measured 0.996 or more, so 0.98 separates them with
  margin on both sides. The tiny run at lr 0.3 (0.95-0.96, spread 0.17-0.19, still 5x chance R@1)
  and the video side of the real-size one (0.887) are partial collapses that are not reported.
  The spread itself depends on d where the variation is
  axis-aligned: an output that varies in only k of d coordinates scores about sqrt(k/d), so a
  healthy 10-coordinate embedding would read as collapsed at d = 1024, and inputs split between two
  opposite vectors (collapse to 2 classes, EEG_Image_decode #25) score 1/sqrt(d), 0.18 at d = 32.
  So the spread is reported as evidence but decides nothing; the second criterion is fact 4's
  effective rank below 2 (exp of the entropy of the normalized singular values of the centred
  embeddings, Roy & Vetterli 2007; dimension-free: inputs spread along fewer than two directions),
  on at least 16 inputs (fewer cannot show more). Measured: healthy 26-38, a run at lr 0.3 4.2-6.4,
  a constant side 1.0. The effective rank alone misses a side that collapsed to one point (it is
  scale-free: the tiny residual wobble spreads over 36-46 directions above); the cosine catches those.
"""

from __future__ import annotations

import torch

from peftzoo_tools.doctor.findings import Finding, fmt

NEGATIVE_SHARE = 0.01
MEAN_COSINE, MIN_ERANK, ERANK_MIN_INPUTS = 0.98, 2.0, 16
_RELU_LIKE = (
    "ReLU",
    "ReLU6",
    "Softplus",
    "Sigmoid",
    "Softmax",
    "Hardsigmoid",
    "Threshold",
    "ELU",
    "CELU",
    "SELU",
    "GELU",
    "SiLU",
    "Mish",
)


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


def effective_rank(z: torch.Tensor) -> float:
    """exp(entropy of the normalized singular values) of the centred embeddings (Roy & Vetterli 2007)."""
    z = z.float()
    s = torch.linalg.svdvals(z - z.mean(dim=0))
    if not float(s.sum()) > 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def check_embeddings(side: str, z: torch.Tensor, head: torch.nn.Module | None = None, where: str = "") -> list[Finding]:
    if len(z) < 4:
        return []
    out = []
    z = z.float()
    # Among the coordinates that are not exactly 0: a sparse output (few active coordinates, the rest 0)
    # is not a ReLU's; after a ReLU the nonzero ones are all positive.
    negative = float((z < 0).sum()) / max(int((z != 0).sum()), 1)
    cos = z @ z.t()
    off = cos[~torch.eye(len(z), dtype=torch.bool)]
    if negative < NEGATIVE_SHARE:
        act = last_activation(head)
        cause = (
            f"the {side} head ends in {act}"
            if act
            else f"the {side} head's or encoder's output passes a non-negative map last"
        )
        out.append(
            Finding(
                "nonnegative_embeddings",
                "error",
                f"{fmt(100 * negative, 2)}% of the nonzero {side} embedding coordinates are negative{where} "
                "(healthy: about half); "
                f"the smallest of {len(off)} pairwise cosines is {fmt(float(off.min()))}: {cause}, "
                "so every cosine is >= 0 "
                "and the similarity range is squeezed",
                f"end the {side} head in a Linear (or LayerNorm) layer, as CLIP, LiT, ImageBind and NICE do: "
                f"{side}.head: linear, or {side}.head: {{name: mlp, hidden: [512]}} (its activations are inside only)",
                {f"{side}.head": "linear"},
            )
        )
    ratio, mean_cos = spread(z)
    erank = effective_rank(z) if len(z) >= ERANK_MIN_INPUTS else None
    if mean_cos > MEAN_COSINE or (erank is not None and erank < MIN_ERANK):
        rank = f", effective rank {fmt(erank)} (healthy: tens)" if erank is not None else ""
        out.append(
            Finding(
                "embedding_collapse",
                "error",
                f"{side} embeddings{where}: spread std_of_l2_normalized x sqrt(d) = {fmt(ratio)} "
                "(healthy ~1, collapsed 0) and "
                f"mean off-diagonal cosine {fmt(mean_cos)}{rank} over {len(z)} inputs: "
                "different inputs map to nearly one vector",
                f"check that the {side} input varies (constant or black frames, a flat-lined EEG channel set), "
                "then lower "
                "train.lr and the heads' weight decay; a collapsed side gives the other nothing to align to",
            )
        )
    return out
