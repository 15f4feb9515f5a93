"""preview.png: a few windows as EEG traces with the window's edges and the frames chosen for it,
so that alignment can be checked by eye.

Every channel of the output is drawn (the ones eeg.channels chose, else all), on one shared
amplitude scale with a microvolt scale bar, so a channel that is flat, noisy or in the wrong unit
stands out against the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TRACE_INCHES = 0.18  # height per channel trace


def nice_microvolts(spread: float) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k uV) close to one trace spacing."""
    magnitude = 10 ** np.floor(np.log10(max(spread, 1e-3)))
    if spread < magnitude:
        return float(magnitude)
    return float(next(m * magnitude for m in (5, 2, 1) if m * magnitude <= spread))


def draw(previews: list[dict], channels: list[str], sfreq: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not previews:
        return
    n_frames = len(previews[0]["frames"])
    n_channels = len(channels)
    trace_height = max(2.4, TRACE_INCHES * n_channels)
    fig = plt.figure(figsize=(max(8, 1.3 * n_frames), (trace_height + 1.2) * len(previews)), dpi=80)
    grid = fig.add_gridspec(2 * len(previews), n_frames, height_ratios=[trace_height, 1.2] * len(previews))
    # One spacing for every window and channel: amplitudes compare across the whole figure.
    spread = max(max(float(np.percentile(np.abs(p["eeg"]), 99)) for p in previews) * 2.5, 1e-6)
    bar = nice_microvolts(spread)
    for row, p in enumerate(previews):
        ax = fig.add_subplot(grid[2 * row, :])
        eeg = p["eeg"]
        t = (p["first"] + np.arange(eeg.shape[1])) / sfreq
        for c in range(len(eeg)):
            ax.plot(t, eeg[c] - c * spread, lw=0.5, color="k")
        size = max(4, min(7, 300 // max(1, n_channels)))
        ax.set_yticks([-c * spread for c in range(len(eeg))], channels[:len(eeg)], fontsize=size)
        x0 = t[0] + 0.01 * (t[-1] - t[0])
        ax.plot([x0, x0], [spread * 0.5, spread * 0.5 + bar], color="tab:red", lw=2, clip_on=False)
        ax.text(x0, spread * 0.5 + bar / 2, f" {bar:g} µV", color="tab:red", fontsize=7, va="center")
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

