"""preview.png: a few windows as EEG traces with the window's edges and the frames chosen for it,
so that alignment can be checked by eye."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_TRACES = 8


def draw(previews: list[dict], channels: list[str], sfreq: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not previews:
        return
    n_frames = len(previews[0]["frames"])
    fig = plt.figure(figsize=(max(8, 1.3 * n_frames), 3.6 * len(previews)), dpi=80)
    grid = fig.add_gridspec(2 * len(previews), n_frames, height_ratios=[3, 1] * len(previews))
    for row, p in enumerate(previews):
        ax = fig.add_subplot(grid[2 * row, :])
        eeg = p["eeg"][:MAX_TRACES]
        t = (p["first"] + np.arange(eeg.shape[1])) / sfreq
        spread = max(float(np.percentile(np.abs(eeg), 99)) * 2.5, 1e-6)
        for c in range(len(eeg)):
            ax.plot(t, eeg[c] - c * spread, lw=0.6, color="k")
        ax.set_yticks([-c * spread for c in range(len(eeg))], channels[:len(eeg)], fontsize=7)
        a, b = (np.asarray(p["window"]) / sfreq)
        ax.axvspan(a, b, color="tab:blue", alpha=0.08)
        ax.axvline(a, color="tab:blue", lw=1.2)
        ax.axvline(b, color="tab:blue", lw=1.2)
        video_start = p["times"][0] - (b - a) / (2 * len(p["times"]))  # times are centres of equal parts
        for ft in p["times"]:
            ax.axvline(a + (ft - video_start), color="tab:orange", lw=0.6, ls=":")
        pair = p["pair"]
        ax.set_title(f"{pair['recording']}  stim {pair['stim']}  window {a:.2f}-{b:.2f} s (blue; orange: frame times)", fontsize=8)
        ax.set_xlabel("seconds from the first sample", fontsize=7)
        for f in range(n_frames):
            axf = fig.add_subplot(grid[2 * row + 1, f])
            axf.imshow(p["frames"][f])
            axf.set_axis_off()
            axf.set_title(f"{pair['frame_pts'][f]:.2f} s", fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

