"""Retrieval evaluation over a whole split, in both directions (as open_clip's get_clip_metrics), and
`python -m recipes.evaluate RUN [--split test] [--checkpoint best|last] [--data-path DIR]`.

The metrics themselves (their names, ranks, recalls) are peftzoo_model/metrics.py's.

The command reports the metrics with 95% bootstrap intervals that resample the leakage unit (the
data's groups: recordings, subjects or blocks; pairs of one are not independent), R@1 per group, and
draws the similarity matrix and the rank histogram beside the JSON (peftzoo_tools/eval_figure.py).

It also ranks each EEG window against a gallery of distinct stimuli (by default the split's distinct
videos; `--gallery-by stimulus` takes the data's stimulus ids, each the mean of its videos' embeddings),
named by the data's stimulus names (meta.json "stimuli"): top-k stimuli with scores per window, R@k per
stimulus and per leakage unit, and a permutation test of R@1 against chance (the windows' true stimuli
shuffled among them: the p-value of doing as well by luck).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from peftzoo_engine.rundir import atomic_write
from peftzoo_model.metrics import (  # noqa: F401 (their home; imported from here by older code)
    DIRECTIONS,
    KS,
    embed_split,
    eval_mode,
    evaluate,
    loader_same_video,
    nonfinite,
    ranks,
    retrieval_metrics,
    same_video_labels,
)
from peftzoo_tools.embed import embed_pairs, resolve_data, split_indices
from peftzoo_tools.eval_figure import draw, require_matplotlib
from peftzoo_trained.cli_args import add_model_arguments, load_model, parse_model_arguments
from registry.errors import UserError
from registry.pipes import quiet_on_broken_pipe

logger = logging.getLogger(__name__)


def per_pair_values(similarity: torch.Tensor, same=None) -> dict[str, np.ndarray]:
    """Metric name (without the split prefix) -> its value for each pair: hits at each k and the rank."""
    out: dict[str, np.ndarray] = {}
    for direction, sim in zip(DIRECTIONS, (similarity, similarity.t())):
        r = ranks(sim, same).cpu().numpy().astype(np.float64)
        for k in KS:
            out[f"{direction}/R@{k}"] = (r <= k).astype(np.float64)
        out[f"{direction}/mean_rank"] = r
    return out


def group_draws(groups: np.ndarray, resamples: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """(group index of each pair, (resamples, G) times each group is drawn), or None below 2 groups.

    One seeded draw of whole groups with replacement, shared by every metric of a report, so the
    intervals of the means and of the median come from the same resamples."""
    uniq, inverse = np.unique(np.asarray(groups), return_inverse=True)
    g = len(uniq)
    if g < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, g, size=(resamples, g))
    counts = np.bincount((draws + g * np.arange(resamples)[:, None]).ravel(), minlength=resamples * g).reshape(
        resamples, g
    )
    return inverse, counts


def bootstrap_ci(
    values: dict[str, np.ndarray], groups: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals of per-pair means, resampling whole groups with replacement.

    Pairs of one group (a recording) are not independent, so a pair bootstrap would give intervals
    that are too narrow; resampling groups (a cluster bootstrap) keeps their dependence. Vectorized:
    each resample is a vector of group counts, and a metric is sum(counts * group sums) /
    sum(counts * group sizes). Fewer than 2 groups give no interval (None).
    """
    names = list(values)
    drawn = group_draws(groups, resamples, seed)
    if drawn is None:
        return {name: None for name in names}
    inverse, counts = drawn
    g = counts.shape[1]
    sums = np.zeros((g, len(names)))
    for j, name in enumerate(names):
        sums[:, j] = np.bincount(inverse, weights=values[name], minlength=g)
    sizes = np.bincount(inverse, minlength=g).astype(np.float64)
    stats = (counts @ sums) / (counts @ sizes)[:, None]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail], axis=0)
    return {name: [float(low[j]), float(high[j])] for j, name in enumerate(names)}


def bootstrap_median_ci(
    ranks_: np.ndarray, groups: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95, chunk: int = 100
) -> list[float] | None:
    """Percentile interval of the median rank over the same group resamples as `bootstrap_ci`.

    A median is not a ratio of sums, so each resample's median is read from its rank histogram:
    the (groups x distinct ranks) counts weighted by how often each group was drawn, then the lower
    median (torch.median's convention, as the reported value) is the first rank whose cumulative
    count reaches half. Resamples are taken `chunk` at a time to bound memory on large splits.
    """
    drawn = group_draws(groups, resamples, seed)
    if drawn is None:
        return None
    inverse, counts = drawn
    values, rank_index = np.unique(np.asarray(ranks_, dtype=np.float64), return_inverse=True)
    hist = np.zeros((counts.shape[1], len(values)))
    np.add.at(hist, (inverse, rank_index), 1.0)
    medians = np.empty(len(counts))
    for a in range(0, len(counts), chunk):
        cum = np.cumsum(counts[a : a + chunk] @ hist, axis=1)
        half = (cum[:, -1] + 1) // 2  # lower median: the ceil(n / 2)-th smallest rank
        medians[a : a + chunk] = values[(cum < half[:, None]).sum(axis=1)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return [float(low), float(high)]


def split_report(
    eeg: torch.Tensor,
    video: torch.Tensor,
    groups: np.ndarray,
    split: str,
    resamples: int = 1000,
    seed: int = 0,
    same: np.ndarray | None = None,
) -> dict:
    """Every metric of a split, prefixed `<split>/`, with per-group R@1 and 95% group-bootstrap intervals.

    `same` labels pairs with identical videos (`same_video_labels`): they are not counted against
    each other's rank, and chance is one over the number of distinct videos."""
    eeg, video = eeg.float().cpu(), video.float().cpu()
    similarity = eeg @ video.t()
    report: dict = {}
    for direction, sim in zip(DIRECTIONS, (similarity, similarity.t())):
        report.update(retrieval_metrics(sim, f"{split}/{direction}", same))
    n = int(len(eeg))
    distinct = n if same is None else int(len(np.unique(same)))
    report[f"{split}/n"] = n
    report[f"{split}/distinct_videos"] = distinct
    report[f"{split}/chance_R@1"] = 1.0 / max(distinct, 1)
    report[f"{split}/nonfinite"] = nonfinite(eeg) + nonfinite(video)
    values = per_pair_values(similarity, same)
    groups = np.asarray(groups)
    hits = values["eeg_to_video/R@1"]
    report[f"{split}/per_group"] = {str(g): float(hits[groups == g].mean()) for g in np.unique(groups)}
    intervals = bootstrap_ci(values, groups, resamples, seed)
    for direction in DIRECTIONS:  # the median from the same group resamples as the means
        intervals[f"{direction}/median_rank"] = bootstrap_median_ci(
            values[f"{direction}/mean_rank"], groups, resamples, seed
        )
    report[f"{split}/ci95"] = {f"{split}/{name}": ci for name, ci in intervals.items()}
    # the unit resampled is the leakage unit (the data's groups: recording, subject, session or block)
    report[f"{split}/bootstrap"] = {
        "resamples": resamples,
        "seed": seed,
        "unit": "group",
        "groups": int(len(np.unique(groups))),
    }
    return report


def gallery_labels(data, indices: np.ndarray, by: str = "video") -> np.ndarray:
    """(len(indices),) int64 in 0..V-1: the gallery item of each pair, in order of first appearance:
    its distinct video (byte-identical clips are one) or its stimulus id."""
    if by == "video":
        return same_video_labels(data.video, indices)
    _, first, inverse = np.unique(np.asarray(data.stimulus_ids)[indices], return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # relabel by first appearance, as same_video_labels does
    return order[inverse].astype(np.int64)


def gallery_names(data, indices: np.ndarray, labels: np.ndarray) -> list[str]:
    """A name per gallery item: the stimulus name of its first pair; items that would share a name (two
    videos of one stimulus id) get the first pair's index after it."""
    firsts = [int(indices[np.flatnonzero(labels == g)[0]]) for g in range(int(labels.max()) + 1)] if len(labels) else []
    names = [data.stimulus_name(data.stimulus_ids[i]) for i in firsts]
    counts = {n: names.count(n) for n in names}
    return [f"{n} (pair {i})" if counts[n] > 1 else n for n, i in zip(names, firsts)]


def gallery_ranks(scores: torch.Tensor) -> torch.Tensor:
    """(N, V) 1-based rank of every gallery item in each row, ties counted against it (as `ranks`);
    a NaN score ranks last."""
    scores = torch.nan_to_num(scores.float(), nan=float("-inf"))
    ordered = torch.sort(scores, dim=1).values
    return scores.shape[1] - torch.searchsorted(ordered, scores.contiguous(), right=False)


def permutation_test(
    rank_matrix: torch.Tensor, target: np.ndarray, k: int = 1, permutations: int = 1000, seed: int = 0, chunk: int = 100
) -> dict:
    """R@k of the windows' true gallery items against the same with the items shuffled among the windows.

    Under the null hypothesis (the model knows nothing of which stimulus a window shows) the true items
    are exchangeable, so the observed R@k is compared with R@k under random relabellings; the p-value is
    (1 + relabellings doing at least as well) / (1 + relabellings), never 0."""
    hits = (rank_matrix <= k).cpu().numpy()
    target = np.asarray(target)
    rows = np.arange(len(target))
    observed = float(hits[rows, target].mean()) if len(target) else 0.0
    rng = np.random.default_rng(seed)
    null = np.empty(permutations)
    for a in range(0, permutations, chunk):
        b = min(a + chunk, permutations)
        shuffled = np.stack([target[rng.permutation(len(target))] for _ in range(b - a)])
        null[a:b] = hits[rows[None, :], shuffled].mean(axis=1)
    return {
        "metric": f"eeg_to_stimulus/R@{k}",
        "observed": observed,
        "null_mean": float(null.mean()),
        "p_value": float((1 + (null >= observed).sum()) / (1 + permutations)),
        "permutations": permutations,
        "seed": seed,
    }


def _hits_by(rank_of_target: np.ndarray, keys: list[str]) -> dict[str, dict]:
    """key -> {"n", "R@1", "R@5", "R@10"} of the windows with that key, keys in first-seen order."""
    out: dict[str, dict] = {}
    keys_arr = np.asarray(keys, dtype=object)
    for key in dict.fromkeys(keys):
        r = rank_of_target[keys_arr == key]
        out[key] = {"n": int(len(r)), **{f"R@{k}": float((r <= k).mean()) for k in KS}}
    return out


def stimulus_report(
    eeg: torch.Tensor,
    video: torch.Tensor,
    labels: np.ndarray,
    names: list[str],
    unit_names: list[str],
    pairs: np.ndarray,
    split: str,
    k: int = 5,
    permutations: int = 1000,
    seed: int = 0,
) -> dict:
    """EEG windows ranked against the gallery of distinct stimuli (`labels`: each pair's item, `names`: each
    item's name): R@k, top-k per window with scores, R@k per stimulus and per leakage unit (`unit_names`:
    each pair's), and the permutation test of R@1. Keys under `<split>/`."""
    eeg, video = eeg.float().cpu(), video.float().cpu()
    n_items = len(names)
    labels_t = torch.as_tensor(labels)
    gallery = torch.zeros(n_items, video.shape[1]).index_add_(0, labels_t, video)
    gallery = torch.nn.functional.normalize(gallery, dim=1)
    scores = eeg @ gallery.t()
    rank_matrix = gallery_ranks(scores)
    rank_of_target = rank_matrix[torch.arange(len(labels)), labels_t].numpy()  # a NaN window ranks last
    report: dict = {f"{split}/eeg_to_stimulus/R@{k_}": float((rank_of_target <= k_).mean()) for k_ in KS}
    report[f"{split}/eeg_to_stimulus/mean_rank"] = float(rank_of_target.mean())
    report[f"{split}/gallery"] = {"items": n_items, "names": names}
    shown = min(k, n_items)
    top_scores, top_items = torch.topk(torch.nan_to_num(scores, nan=float("-inf")), shown, dim=1)
    report[f"{split}/top_k"] = [
        {
            "pair": int(p),
            "stimulus": names[int(t)],
            "unit": u,
            "rank": int(r),
            "top": [{"stimulus": names[int(j)], "score": float(v)} for j, v in zip(items, vals)],
        }
        for p, t, u, r, items, vals in zip(
            pairs, labels, unit_names, rank_of_target, top_items.tolist(), top_scores.tolist()
        )
    ]
    report[f"{split}/per_stimulus"] = _hits_by(rank_of_target, [names[int(t)] for t in labels])
    report[f"{split}/per_unit"] = _hits_by(rank_of_target, list(unit_names))
    report[f"{split}/permutation"] = permutation_test(rank_matrix, labels, 1, permutations, seed)
    report[f"{split}/permutation"]["chance"] = 1.0 / max(n_items, 1)
    return report


def _print_stimulus_report(report: dict, split: str, shown: int = 10) -> None:
    perm = report[f"{split}/permutation"]
    print(
        f"{split}: EEG windows against {report[f'{split}/gallery']['items']} distinct stimuli: "
        f"R@1 {perm['observed']:.4f}"
        f" (chance {perm['chance']:.4f}), permutation p = {perm['p_value']:.4g} ({perm['permutations']} relabellings)"
    )
    for title, key in (("stimulus", "per_stimulus"), ("unit", "per_unit")):
        rows = report[f"{split}/{key}"]
        width = max([len(title), *map(len, rows)])
        print(f"  {title:<{width}} {'n':>5} {'R@1':>6} {'R@5':>6} {'R@10':>6}")
        for name, row in rows.items():
            print(f"  {name:<{width}} {row['n']:>5} {row['R@1']:>6.3f} {row['R@5']:>6.3f} {row['R@10']:>6.3f}")
    top = report[f"{split}/top_k"]
    print(
        f"  top-{len(top[0]['top']) if top else 0} stimuli of the first {min(shown, len(top))} of {len(top)} windows "
        "(all in the JSON):"
    )
    for row in top[:shown]:
        hits = ", ".join(f"{t['stimulus']} {t['score']:.3f}" for t in row["top"])
        print(f"  pair {row['pair']} ({row['unit']}, shows {row['stimulus']}, rank {row['rank']}): {hits}")


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.evaluate", description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--split", default="test", help="train, val, test, or all (default: test)")
    parser.add_argument(
        "--data-path", type=Path, metavar="DIR", help="evaluate on another arrays directory (same channels)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument(
        "--gallery-by",
        choices=("video", "stimulus"),
        default="video",
        help="gallery items: the split's distinct videos (default) or its stimulus ids",
    )
    parser.add_argument("-k", type=int, default=5, help="stimuli listed per EEG window (default 5)")
    parser.add_argument("--permutations", type=int, default=1000, help="relabellings of the permutation test")
    args = parse_model_arguments(parser, argv)
    try:
        if args.batch_size < 1 or args.resamples < 1 or args.k < 1 or args.permutations < 1:
            raise UserError("--batch-size, --resamples, -k and --permutations must be at least 1")
        if not args.no_plot:
            require_matplotlib()
        trained = load_model(args)
        data, where = resolve_data(trained, args.data_path)
        indices = split_indices(data, args.split, where)
        if args.data_path is None and args.split in ("train", "val"):
            logger.warning("the %s split took part in training or model selection; report the test split", args.split)
        eeg, video = embed_pairs(trained, data, indices, args.batch_size)
        same = same_video_labels(data.video, indices)
        report = split_report(eeg, video, data.groups[indices], args.split, args.resamples, args.seed, same)
        labels = same if args.gallery_by == "video" else gallery_labels(data, indices, "stimulus")
        report.update(
            stimulus_report(
                eeg,
                video,
                labels,
                gallery_names(data, indices, labels),
                [data.group_name(g) for g in data.groups[indices]],
                indices,
                args.split,
                args.k,
                args.permutations,
                args.seed,
            )
        )
        report[f"{args.split}/gallery"]["by"] = args.gallery_by
        with torch.no_grad():
            stimulus = torch.as_tensor(np.asarray(data.stimulus_ids)[indices]).to(eeg.device)
            report[f"{args.split}/loss"] = float(trained.model.loss(eeg, video, stimulus))
        report[f"{args.split}/weights"] = trained.weights
        report[f"{args.split}/data"] = where
        out = args.run / "eval" / f"{args.split}.json"
        atomic_write(out, json.dumps(report, indent=2) + "\n")
        if not args.no_plot:
            draw(
                eeg @ video.t(),
                out.with_suffix(".png"),
                title=f"{trained.name}: {args.split} ({trained.weights} weights)",
                labels=labels,
                names=report[f"{args.split}/gallery"]["names"],
            )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ci = report[f"{args.split}/ci95"]
    for direction in DIRECTIONS:
        for metric in [f"R@{k}" for k in KS] + ["mean_rank", "median_rank"]:
            key = f"{args.split}/{direction}/{metric}"
            interval = f"  95% CI [{ci[key][0]:.4f}, {ci[key][1]:.4f}]" if ci.get(key) else ""
            print(f"{key} = {report[key]:.4f}{interval}")
    print(
        f"{args.split}/chance_R@1 = {report[f'{args.split}/chance_R@1']:.4f}  n = {report[f'{args.split}/n']}"
        f"  distinct videos: {report[f'{args.split}/distinct_videos']}"
        f"  weights: {trained.weights}  nonfinite embeddings: {report[f'{args.split}/nonfinite']}"
    )
    _print_stimulus_report(report, args.split)
    print(f"eval: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
