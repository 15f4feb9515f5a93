"""The evaluation figure: the EEG x video similarity matrix and the rank histograms of both directions.

matplotlib is an optional extra (`pip install 'peftzoo[plots]'`); it is drawn with the Agg backend,
so no display is needed.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from peftzoo_engine.rundir import atomic_write
from peftzoo_model.metrics import DIRECTIONS, ranks
from registry.errors import UserError

MAX_SHOWN = 400
"""Pairs drawn in the similarity matrix at most (evenly spaced); the histograms use every pair."""


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError(
            "the evaluation figure needs matplotlib: pip install 'peftzoo[plots]' (or pip install matplotlib), "
            "or pass --no-plot"
        ) from None


MAX_TICKS = 40
"""Stimulus names written on the axes at most (evenly spaced beyond that)."""


def draw(similarity: torch.Tensor, path: Path, title: str = "", labels=None, names: list[str] | None = None) -> None:
    """The figure; with `labels` (each pair's gallery item) and `names` (each item's stimulus name) the
    matrix is EEG windows (grouped by the stimulus they show) x the gallery of distinct stimuli, both
    labelled by stimulus name, and the ranks do not count repeats of a stimulus against a pair."""
    require_matplotlib()
    import matplotlib
    import numpy as np

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # the object API: no global pyplot state, no display

    sim = similarity.float().cpu()
    n = sim.shape[0]
    fig = Figure(figsize=(13, 4.8), layout="constrained")
    ax_sim, ax_e2v, ax_v2e = fig.subplots(1, 3, width_ratios=[1.3, 1, 1])
    if labels is not None and names is not None:
        labels = np.asarray(labels)
        items = torch.as_tensor(labels)
        # each gallery item's column: the similarity to one of its pairs' videos (identical videos embed alike)
        first = [int(np.flatnonzero(labels == g)[0]) for g in range(len(names))]
        order = np.argsort(labels, kind="stable")
        shown = order[np.unique(np.linspace(0, n - 1, min(n, MAX_SHOWN)).round().astype(int))]
        image = ax_sim.imshow(sim[shown][:, first].numpy(), cmap="viridis", interpolation="nearest", aspect="auto")
        cols = np.unique(np.linspace(0, len(names) - 1, min(len(names), MAX_TICKS)).round().astype(int))
        ax_sim.set_xticks(cols, [names[c] for c in cols], rotation=90, fontsize="x-small")
        starts = [i for i in range(len(shown)) if i == 0 or labels[shown[i]] != labels[shown[i - 1]]]
        picked = np.unique(np.linspace(0, len(starts) - 1, min(len(starts), MAX_TICKS)).round().astype(int))
        starts = [starts[j] for j in picked]
        ax_sim.set_yticks(starts, [names[labels[shown[i]]] for i in starts], fontsize="x-small")
        of = f" ({len(shown)} of {n} windows)" if len(shown) < n else ""
        ax_sim.set_title(f"EEG windows x {len(names)} stimuli{of}")
        ax_sim.set_xlabel("stimulus (gallery)")
        ax_sim.set_ylabel("EEG window, by the stimulus it shows")
    else:
        items = None
        shown = torch.linspace(0, n - 1, min(n, MAX_SHOWN)).round().long().unique()
        image = ax_sim.imshow(sim[shown][:, shown].numpy(), cmap="viridis", interpolation="nearest")
        ax_sim.set_title("similarity" + (f" ({len(shown)} of {n} pairs)" if len(shown) < n else ""))
        ax_sim.set_xlabel("video")
        ax_sim.set_ylabel("EEG")
    fig.colorbar(image, ax=ax_sim, shrink=0.8)
    for ax, direction, matrix in ((ax_e2v, DIRECTIONS[0], sim), (ax_v2e, DIRECTIONS[1], sim.t())):
        r = ranks(matrix, items).numpy()
        ax.hist(r, bins=min(50, max(n, 1)), range=(0.5, n + 0.5), color="tab:blue")
        ax.axvline((n + 1) / 2, color="grey", linestyle="--", label="chance mean rank")
        ax.set_title(f"{direction.replace('_', ' ')}: rank of the partner")
        ax.set_xlabel("rank (1 = retrieved first)")
        ax.set_ylabel("pairs")
        ax.legend(loc="upper right", fontsize="small")
    if title:
        fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write(path, buffer.getvalue())
