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


def draw(similarity: torch.Tensor, path: Path, title: str = "") -> None:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # the object API: no global pyplot state, no display

    sim = similarity.float().cpu()
    n = sim.shape[0]
    shown = torch.linspace(0, n - 1, min(n, MAX_SHOWN)).round().long().unique()
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax_sim, ax_e2v, ax_v2e = fig.subplots(1, 3)
    image = ax_sim.imshow(sim[shown][:, shown].numpy(), cmap="viridis", interpolation="nearest")
    ax_sim.set_title("similarity" + (f" ({len(shown)} of {n} pairs)" if len(shown) < n else ""))
    ax_sim.set_xlabel("video")
    ax_sim.set_ylabel("EEG")
    fig.colorbar(image, ax=ax_sim, shrink=0.8)
    for ax, direction, matrix in ((ax_e2v, DIRECTIONS[0], sim), (ax_v2e, DIRECTIONS[1], sim.t())):
        r = ranks(matrix).numpy()
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
