"""Retrieval evaluation over a whole split, in both directions (as open_clip's get_clip_metrics), and
`python -m recipes.evaluate RUN [--split test] [--checkpoint best|last] [--data-path DIR]`.

Ranks are 1-based and pessimistic on ties (a pair ranks behind every candidate scoring at least as
high), so collapsed embeddings score rank N, never a perfect R@1. A pair whose similarity to its
partner is not finite (a NaN or inf embedding: a diverged model) ranks last, and the number of
non-finite embeddings is reported (`<split>/nonfinite`), so a diverged model cannot score a hit.

The command reports the metrics with 95% bootstrap intervals that resample groups (recordings,
subjects or blocks: pairs of one group are not independent), R@1 per group, and draws the
similarity matrix and the rank histogram beside the JSON (recipes/eval_figure.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

KS = (1, 5, 10)
DIRECTIONS = ("eeg_to_video", "video_to_eeg")

logger = logging.getLogger(__name__)


def ranks(similarity: torch.Tensor) -> torch.Tensor:
    """1-based rank of the true partner (the diagonal) in each row, ties counted against it.

    A row whose diagonal is NaN or inf ranks last (N); a NaN candidate never outranks the partner
    (NaN compares false), an inf one always does.
    """
    diag = torch.diagonal(similarity)[:, None]
    counted = (similarity >= diag).sum(dim=1)
    return torch.where(torch.isfinite(diag[:, 0]), counted, torch.full_like(counted, similarity.shape[1]))


def nonfinite(embeddings: torch.Tensor) -> int:
    """How many embeddings (rows) hold a NaN or inf."""
    return int((~torch.isfinite(embeddings)).any(dim=1).sum()) if embeddings.numel() else 0


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
def embed_split(model, loader: DataLoader, device: torch.device):
    eeg, video, groups = [], [], []
    for batch in loader:
        e, v, g = model.embed_batch(batch, device)
        eeg.append(e.float())
        video.append(v.float())
        groups.append(g)
    return torch.cat(eeg), torch.cat(video), torch.cat(groups)


@torch.no_grad()
def evaluate(model, loader: DataLoader, device: torch.device, prefix: str = "val") -> dict[str, float]:
    """Loss over the whole split as one batch (independent of batch size) and retrieval metrics."""
    with eval_mode(model):
        eeg, video, groups = embed_split(model, loader, device)
        similarity = eeg @ video.t()
        metrics = {f"{prefix}/loss": float(model.loss(eeg, video, groups))}
    metrics.update(retrieval_metrics(similarity, f"{prefix}/eeg_to_video"))
    metrics.update(retrieval_metrics(similarity.t(), f"{prefix}/video_to_eeg"))
    metrics[f"{prefix}/n"] = int(len(eeg))
    metrics[f"{prefix}/chance_R@1"] = 1.0 / max(len(eeg), 1)
    metrics[f"{prefix}/nonfinite"] = nonfinite(eeg) + nonfinite(video)
    if metrics[f"{prefix}/nonfinite"]:
        logger.warning("%s: %d embeddings hold NaN or inf; their pairs rank last", prefix, metrics[f"{prefix}/nonfinite"])
    return metrics


def per_pair_values(similarity: torch.Tensor) -> dict[str, np.ndarray]:
    """Metric name (without the split prefix) -> its value for each pair: hits at each k and the rank."""
    out: dict[str, np.ndarray] = {}
    for direction, sim in zip(DIRECTIONS, (similarity, similarity.t())):
        r = ranks(sim).cpu().numpy().astype(np.float64)
        for k in KS:
            out[f"{direction}/R@{k}"] = (r <= k).astype(np.float64)
        out[f"{direction}/mean_rank"] = r
    return out


def bootstrap_ci(values: dict[str, np.ndarray], groups: np.ndarray, resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals of per-pair means, resampling whole groups with replacement.

    Pairs of one group (a recording) are not independent, so a pair bootstrap would give intervals
    that are too narrow; resampling groups (a cluster bootstrap) keeps their dependence. Vectorized:
    each resample is a vector of group counts, and a metric is sum(counts * group sums) /
    sum(counts * group sizes). Fewer than 2 groups give no interval (None).
    """
    names = list(values)
    uniq, inverse = np.unique(np.asarray(groups), return_inverse=True)
    g = len(uniq)
    if g < 2:
        return {name: None for name in names}
    sums = np.zeros((g, len(names)))
    for j, name in enumerate(names):
        sums[:, j] = np.bincount(inverse, weights=values[name], minlength=g)
    sizes = np.bincount(inverse, minlength=g).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, g, size=(resamples, g))
    counts = np.bincount((draws + g * np.arange(resamples)[:, None]).ravel(), minlength=resamples * g).reshape(resamples, g)
    stats = (counts @ sums) / (counts @ sizes)[:, None]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail], axis=0)
    return {name: [float(low[j]), float(high[j])] for j, name in enumerate(names)}


def split_report(eeg: torch.Tensor, video: torch.Tensor, groups: np.ndarray, split: str, resamples: int = 1000,
                 seed: int = 0) -> dict:
    """Every metric of a split, prefixed `<split>/`, with per-group R@1 and 95% group-bootstrap intervals."""
    eeg, video = eeg.float().cpu(), video.float().cpu()
    similarity = eeg @ video.t()
    report: dict = {}
    for direction, sim in zip(DIRECTIONS, (similarity, similarity.t())):
        report.update(retrieval_metrics(sim, f"{split}/{direction}"))
    n = int(len(eeg))
    report[f"{split}/n"] = n
    report[f"{split}/chance_R@1"] = 1.0 / max(n, 1)
    report[f"{split}/nonfinite"] = nonfinite(eeg) + nonfinite(video)
    values = per_pair_values(similarity)
    groups = np.asarray(groups)
    hits = values["eeg_to_video/R@1"]
    report[f"{split}/per_group"] = {str(g): float(hits[groups == g].mean()) for g in np.unique(groups)}
    intervals = bootstrap_ci(values, groups, resamples, seed)
    report[f"{split}/ci95"] = {f"{split}/{name}": ci for name, ci in intervals.items()}
    report[f"{split}/bootstrap"] = {"resamples": resamples, "seed": seed, "unit": "group", "groups": int(len(np.unique(groups)))}
    return report


def main(argv: list[str] | None = None) -> int:
    from recipes.embed import embed_pairs, resolve_data, split_indices
    from recipes.rundir import atomic_write
    from recipes.trained_cli import add_model_arguments, load_model, parse_model_arguments
    from registry.errors import UserError

    parser = argparse.ArgumentParser(prog="python -m recipes.evaluate", description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--split", default="test", help="train, val, test, or all (default: test)")
    parser.add_argument("--data-path", type=Path, metavar="DIR", help="evaluate on another arrays directory (same channels)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    args = parse_model_arguments(parser, argv)
    try:
        if args.batch_size < 1 or args.resamples < 1:
            raise UserError("--batch-size and --resamples must be at least 1")
        if not args.no_plot:
            from recipes.eval_figure import require_matplotlib

            require_matplotlib()
        trained = load_model(args)
        data, where = resolve_data(trained, args.data_path)
        indices = split_indices(data, args.split, where)
        if args.data_path is None and args.split in ("train", "val"):
            logger.warning("the %s split took part in training or model selection; report the test split", args.split)
        eeg, video = embed_pairs(trained, data, indices, args.batch_size)
        report = split_report(eeg, video, data.groups[indices], args.split, args.resamples, args.seed)
        with torch.no_grad():
            report[f"{args.split}/loss"] = float(trained.model.loss(eeg, video, torch.as_tensor(data.groups[indices]).to(eeg.device)))
        report[f"{args.split}/weights"] = trained.weights
        report[f"{args.split}/data"] = where
        out = args.run / "eval" / f"{args.split}.json"
        atomic_write(out, json.dumps(report, indent=2) + "\n")
        if not args.no_plot:
            from recipes.eval_figure import draw

            draw(eeg @ video.t(), out.with_suffix(".png"), title=f"{trained.name}: {args.split} ({trained.weights} weights)")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ci = report[f"{args.split}/ci95"]
    for direction in DIRECTIONS:
        for metric in [f"R@{k}" for k in KS] + ["mean_rank"]:
            key = f"{args.split}/{direction}/{metric}"
            interval = f"  95% CI [{ci[key][0]:.4f}, {ci[key][1]:.4f}]" if ci.get(key) else ""
            print(f"{key} = {report[key]:.4f}{interval}")
    print(f"{args.split}/chance_R@1 = {report[f'{args.split}/chance_R@1']:.4f}  n = {report[f'{args.split}/n']}"
          f"  weights: {trained.weights}  nonfinite embeddings: {report[f'{args.split}/nonfinite']}")
    print(f"eval: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
