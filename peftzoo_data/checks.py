"""Checks of a data set's EEG before training: non-finite pairs and the amplitude unit, once, up front.

A NaN in pair 51,234 would otherwise surface when that pair is first loaded, possibly hours in and
inside a loader worker; EEG in volts or millivolts (or all zeros) would train without a word and
retrieve at chance. `check_eeg` reads the (memory-mapped) array in chunks of about 64 MiB, so a
data set larger than memory is scanned at disk speed, and:

- names the pairs whose EEG holds NaN, inf or values beyond 1 V (no scalp EEG reaches that): an
  error, or with `data.drop_nonfinite: true` those pairs are left out with a warning;
- estimates the amplitude from the median absolute value of up to 256 windows spread over the data
  (robust to artifacts): values that cannot be microvolts are refused, implausible ones warned
  about, each naming the factor to apply.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import numpy as np

from peftzoo_data.base import DataError, PairedData, RowSubset
from peftzoo_data.units import IMPOSSIBLE_UV, TYPICAL_UV, judge_amplitude  # noqa: F401  (their home; kept importable here)

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 2**20
MAX_ABS_UV = 1e6
"""1 V: beyond any scalp EEG, and where float32 attention starts to overflow."""
SAMPLE_WINDOWS = 256


def _shown(indices: np.ndarray, limit: int = 10) -> str:
    head = ", ".join(str(int(i)) for i in indices[:limit])
    return head + (f", ... ({len(indices)} in all)" if len(indices) > limit else "")


def bad_pairs(eeg) -> np.ndarray:
    """Indices of pairs whose EEG holds NaN, inf or |x| > 1 V, read in chunks."""
    n = len(eeg)
    per_pair = max(1, int(np.prod(eeg.shape[1:])) * np.dtype(eeg.dtype).itemsize)
    step = max(1, CHUNK_BYTES // per_pair)
    bad = []
    for start in range(0, n, step):
        block = np.asarray(eeg[start : start + step])
        with np.errstate(invalid="ignore"):
            ok = (np.abs(block) <= MAX_ABS_UV).reshape(len(block), -1).all(axis=1)  # False for NaN and inf too
        bad.extend(start + np.flatnonzero(~ok))
    return np.asarray(bad, dtype=np.int64)


def amplitude_uv(eeg, keep: np.ndarray) -> tuple[float, float]:
    """(median |x|, max |x|) over up to SAMPLE_WINDOWS windows spread evenly over the pairs `keep`."""
    chosen = keep[np.linspace(0, len(keep) - 1, min(SAMPLE_WINDOWS, len(keep))).astype(np.int64)]
    sample = np.abs(np.stack([np.asarray(eeg[int(i)], dtype=np.float64) for i in np.unique(chosen)]))
    return float(np.median(sample)), float(sample.max())


def check_amplitude(eeg, keep: np.ndarray, where: str) -> None:
    """Refuse EEG that cannot be in microvolts, warn on implausible amplitudes; each names the factor."""
    median, peak = amplitude_uv(eeg, keep)
    if peak == 0:
        raise DataError(
            f"{where}: the EEG is all zeros (in {min(SAMPLE_WINDOWS, len(keep))} windows sampled over the data); "
            f"check the export, training on it would retrieve at chance"
        )
    if median == 0:
        logger.warning("%s: the median absolute EEG value is 0 (mostly flat channels?); check the data", where)
        return
    verdict, text = judge_amplitude(median)
    if verdict == "error":
        raise DataError(f"{where}: {text} before saving (eeg.npy must be float32 microvolts)")
    if verdict == "warning":
        logger.warning("%s: %s", where, text)


def check_eeg(data: PairedData, drop_nonfinite: bool = False, where: str = "data") -> PairedData:
    """`data` after the up-front EEG checks; with `drop_nonfinite`, without its non-finite pairs."""
    bad = bad_pairs(data.eeg)
    if len(bad) == len(data):
        raise DataError(
            f"{where}: the EEG of every pair ({len(data)}) holds NaN, inf or values beyond 1 V, which cannot be "
            f"microvolts; check the export and the unit (eeg.npy must be float32 microvolts)"
        )
    if len(bad) and not drop_nonfinite:
        raise DataError(
            f"{where}: the EEG of {len(bad)} of {len(data)} pairs holds NaN, inf or values beyond 1 V (pairs "
            f"{_shown(bad)}); "
            f"clean or remove them, or set data.drop_nonfinite: true to leave them out"
        )
    keep = np.setdiff1d(np.arange(len(data)), bad)
    check_amplitude(data.eeg, keep, where)
    if not len(bad):
        return data
    logger.warning(
        "%s: left out %d of %d pairs whose EEG holds NaN, inf or values beyond 1 V (pairs %s)",
        where,
        len(bad),
        len(data),
        _shown(bad),
    )
    return drop_pairs(data, keep)


def drop_pairs(data: PairedData, keep: np.ndarray) -> PairedData:
    """`data` restricted to the pairs `keep` (sorted indices): arrays stay on disk, splits are renumbered."""
    splits = {name: np.searchsorted(keep, idx[np.isin(idx, keep)]) for name, idx in data.splits.items()}
    fingerprint = None
    if data.fingerprint is not None:
        fingerprint = hashlib.sha256(
            f"{data.fingerprint}:keep:{hashlib.sha256(keep.tobytes()).hexdigest()}".encode()
        ).hexdigest()
    return dataclasses.replace(
        data,
        eeg=RowSubset(data.eeg, keep),
        video=RowSubset(data.video, keep),
        groups=np.asarray(data.groups)[keep],
        stimulus=None if getattr(data, "stimulus", None) is None else np.asarray(data.stimulus)[keep],
        splits={k: v.astype(np.int64) for k, v in splits.items()},
        fingerprint=fingerprint,
    )
