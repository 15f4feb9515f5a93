"""PNG plots of runs and sweeps (matplotlib, Agg backend: no display needed; extra `plots`).

Every function returns the PNG's bytes, or None when the run logged nothing to draw (the page then
leaves the plot out rather than show an empty frame).
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from typing import Any

from peftzoo_tools.compare.runs import Run, Sweep
from recipes.errors import RecipeError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise RecipeError("--html needs matplotlib for its plots: pip install 'peftzoo[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _series(lines: list[dict[str, Any]], kind: str, key: str, x: str) -> tuple[list, list]:
    points = [
        (line[x], line[key]) for line in lines if line.get("type") == kind and isinstance(line.get(key), (int, float))
    ]
    return [p[0] for p in points], [p[1] for p in points]


def recall(run: Run) -> bytes | None:
    """Validation R@1 in both directions per epoch, with chance."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3))
    drawn = False
    for key, label in (("val/eeg_to_video/R@1", "EEG→video"), ("val/video_to_eeg/R@1", "video→EEG")):
        xs, ys = _series(run.lines, "eval", key, "epoch")
        if xs:
            ax.plot(xs, ys, marker="o", ms=3, label=label)
            drawn = True
    xs, ys = _series(run.lines, "eval", "val/chance_R@1", "epoch")
    if xs:
        ax.plot(xs, ys, ls="--", color="gray", label="chance")
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="epoch", ylabel="R@1", title="validation R@1")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def losses(run: Run) -> bytes | None:
    """Training loss (mean of the logged steps of each epoch) and validation loss per epoch."""
    per_epoch: dict[int, list[float]] = defaultdict(list)
    for line in run.lines:
        if line.get("type") == "train" and isinstance(line.get("train/loss"), (int, float)):
            per_epoch[line["epoch"]].append(line["train/loss"])
    val_x, val_y = _series(run.lines, "eval", "val/loss", "epoch")
    if not per_epoch and not val_x:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3))
    if per_epoch:
        epochs = sorted(per_epoch)
        ax.plot(
            epochs,
            [sum(per_epoch[e]) / len(per_epoch[e]) for e in epochs],
            marker="o",
            ms=3,
            label="train (mean of logged steps)",
        )
    if val_x:
        ax.plot(val_x, val_y, marker="o", ms=3, label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title="losses")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def per_step(run: Run, key: str, title: str) -> bytes | None:
    xs, ys = _series(run.lines, "train", key, "step")
    if not xs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3))
    ax.plot(xs, ys)
    ax.set(xlabel="step", ylabel=key, title=title)
    ax.grid(alpha=0.3)
    return _png(fig)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def against_value(sweep: Sweep, key: str, metric: str) -> bytes | None:
    """The selection metric (best over epochs) of every completed trial against one swept key, with the
    mean per value (over seeds and the other keys)."""
    points = []
    for trial in sweep.data.get("trials", []):
        value = (trial.get("best_metrics") or {}).get(metric)
        if trial.get("status") == "completed" and key in trial.get("overrides", {}) and _number(value):
            points.append((trial["overrides"][key], value))
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3))
    numeric = all(_number(v) for v, _ in points)
    if numeric:
        xs = [v for v, _ in points]
    else:  # categorical values (names, lists): one position each, in first-seen order
        labels = list(dict.fromkeys(str(v) for v, _ in points))
        xs = [labels.index(str(v)) for v, _ in points]
        ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    ys = [y for _, y in points]
    ax.scatter(xs, ys, alpha=0.6, label="trials")
    means: dict[Any, list[float]] = defaultdict(list)
    for x, y in zip(xs, ys):
        means[x].append(y)
    order = sorted(means)
    ax.plot(order, [sum(means[x]) / len(means[x]) for x in order], color="C1", marker="s", label="mean")
    if numeric and min(xs) > 0 and max(xs) / min(xs) >= 10:
        ax.set_xscale("log")
    ax.set(xlabel=key, ylabel=f"best {metric}", title=f"{metric} against {key}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def curves(sweep: Sweep, metric: str) -> bytes | None:
    """The metric per epoch of every trial of a sweep, overlaid."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    drawn = 0
    axes = (sweep.data.get("space") or {}).get("axes") or {}
    varying = {k for k, v in axes.items() if not isinstance(v, list) or len(v) > 1}
    for run in sweep.runs:
        xs, ys = _series(run.lines, "eval", metric, "epoch")
        if xs:
            label = ", ".join(f"{k}={v}" for k, v in run.swept.items() if k in varying)
            ax.plot(xs, ys, marker="o", ms=2, label=label[:60])
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} of every trial")
    if drawn <= 16:  # beside the axes, so it hides no curve
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    return _png(fig)
