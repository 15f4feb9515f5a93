"""Events to windows: `count` windows per event, each checked against the recording and BAD spans.

Sample positions are rounded from seconds on the target grid (200 Hz), so a pulse at onset + 0.5 s
lands at sample 100 of its window. Windows that cannot be cut are returned as drops with a reason,
never silently lost.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from peftzoo_data.ingest.spec import WindowSpec


@dataclasses.dataclass
class Window:
    event: int
    """Index of the event in the recording's event list."""
    repeat: int
    """Which of the event's `count` windows."""
    stim: str
    onset: float
    """The event's onset, seconds from the first sample."""
    start: float
    """Window start, seconds from the first sample (onset + offset + repeat x stride)."""
    sample: int
    """First sample of the window at the target rate."""


def plan(
    onsets: np.ndarray,
    stims: list[str],
    spec: WindowSpec,
    sfreq: float,
    n_times: int,
    bad: list[tuple[float, float, str]],
) -> tuple[list[Window], list[dict]]:
    """(windows to cut, drops as {event, stim, onset, start, reason})."""
    length = int(round(spec.seconds * sfreq))
    kept, drops = [], []
    for e, (onset, stim) in enumerate(zip(onsets, stims)):
        for r in range(spec.count):
            start = float(onset) + spec.offset + r * spec.step
            sample = int(round(start * sfreq))
            row = {"event": e, "stim": stim, "onset": round(float(onset), 6), "start": round(start, 6)}
            if sample < 0 or sample + length > n_times:
                drops.append(
                    {
                        **row,
                        "reason": (
                            f"outside the recording ({start:.3f}-{start + spec.seconds:.3f} s; "
                            f"it lasts {n_times / sfreq:.3f} s)"
                        ),
                    }
                )
                continue
            stop = start + spec.seconds
            hit = next((d for (a, b, d) in bad if a < stop and b > start or (b == a and start <= a < stop)), None)
            if hit is not None:
                drops.append({**row, "reason": f"overlaps annotation {hit!r}"})
                continue
            kept.append(Window(e, r, stim, float(onset), start, sample))
    return kept, drops


def cut(data: np.ndarray, windows: list[Window], length: int) -> np.ndarray:
    """(W, C, length) float32 slices of (C, T) `data`."""
    out = np.empty((len(windows), data.shape[0], length), dtype=np.float32)
    for i, w in enumerate(windows):
        out[i] = data[:, w.sample : w.sample + length]
    return out
