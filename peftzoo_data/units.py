"""Is an EEG amplitude microvolts? One verdict for training (peftzoo_data/checks.py) and ingest
(peftzoo_data/ingest/eeg.py), in a module that imports neither torch nor the data sets."""

from __future__ import annotations

import numpy as np

TYPICAL_UV = (0.5, 500.0)
"""Median absolute value of scalp EEG in microvolts lies well inside this band (typically 5 to 50)."""
IMPOSSIBLE_UV = (1e-3, 1e5)
"""Below or above this, the values cannot be microvolts: refused."""


def _unit_advice(median: float) -> str:
    """The unit a median absolute value suggests, as a power of 1000 away from the typical ~20 microvolts."""
    exponent = int(round(np.log10(20.0 / median) / 3) * 3)
    names = {
        6: "volts: multiply by 1e6",
        3: "millivolts: multiply by 1e3",
        -3: "nanovolts: multiply by 1e-3",
        -6: "picovolts: multiply by 1e-6",
    }
    return names.get(
        exponent,
        f"another unit: scale by 1e{exponent} to reach microvolts" if exponent else "microvolts: check the export",
    )


def judge_amplitude(median: float) -> tuple[str | None, str]:
    """(None | "warning" | "error", text) for a median |EEG| in what should be microvolts: the
    verdict training (check_amplitude) and ingest (peftzoo_data/ingest/eeg.py) both give."""
    stated = f"median |EEG| is {median:.3g} (microvolts expected, typically 5 to 50)"
    if not IMPOSSIBLE_UV[0] <= median <= IMPOSSIBLE_UV[1]:
        return "error", f"{stated}, which cannot be microvolts; if the data are in {_unit_advice(median)}"
    if not TYPICAL_UV[0] <= median <= TYPICAL_UV[1]:
        return "warning", f"{stated}, implausible for scalp EEG; if the data are in {_unit_advice(median)}"
    return None, stated
