"""Ingest resamples before filtering (peftzoo_data/ingest/eeg.py): its windows must equal those of
MNE's filter-first order (band-pass, notch, then polyphase resampling, as LaBraM's preprocessing
and a plain MNE script do) within 1% RMS in 0.5-70 Hz, with every pulse on the same sample, on
files in real formats with planted signals (sines across the band, 50 Hz line noise, broadband
noise, one-sample pulses). Also: recordings processed by several workers give the same output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ingest_helpers import cfr, export, need, planted_raw, write_video

mne = need("mne")
need("av")

from peftzoo_data.ingest import ingest  # noqa: E402

EVENTS = [(12.0, "movie/a"), (25.0, "movie/b"), (38.0, "movie/a"), (51.0, "movie/b")]
SECONDS = 66.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "stim").mkdir()
    (tmp_path / "rec").mkdir()
    for name in ("a", "b"):
        write_video(tmp_path / "stim" / f"{name}.mp4", cfr(30, 10))
    return tmp_path


def spec() -> dict:
    return {
        "recordings": {"files": "rec/*"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 2},
        "video": {"clips": "stim/{stim}.mp4", "frames": 2, "short_side": 16},
        "split": {"val": 0.0},
        "preview": 0,
    }


def rich_raw(sfreq: float):
    """planted_raw's pulses on Cz and sines elsewhere, plus sines at 1.5, 7, 23, 41 and 68 Hz, 50 Hz
    line noise, energy above the new Nyquist (130 and 180 Hz, where the rate allows) and white noise."""
    raw = planted_raw(sfreq, SECONDS, EVENTS)
    t = raw.times
    rng = np.random.default_rng(1)
    extra = sum(
        a * np.sin(2 * np.pi * f * t + p)
        for f, a, p in [(1.5, 15, 0.1), (7, 10, 1.0), (23, 6, 2.0), (41, 4, 0.5), (68, 3, 1.3)]
    )
    extra = extra + 30 * np.sin(2 * np.pi * 50 * t)
    extra = extra + sum(20 * np.sin(2 * np.pi * f * t) for f in (130.0, 180.0) if f < sfreq / 2)
    cz = raw.ch_names.index("Cz")
    for i in range(len(raw.ch_names)):
        if i != cz:
            raw._data[i] += (extra + 5 * rng.standard_normal(len(t))) * 1e-6
    return raw


def filter_first(path: Path) -> tuple[np.ndarray, list[str]]:
    """MNE's order on the same file: read, pick EEG, band-pass 0.1-75, notch 50, polyphase resample."""
    raw = mne.io.read_raw(path, preload=True, verbose="error").pick("eeg")
    raw.filter(0.1, 75.0, verbose="error")
    raw.notch_filter([50.0], verbose="error")
    raw.resample(200.0, method="polyphase", verbose="error")
    return raw.get_data(units="uV"), raw.ch_names


def band(x: np.ndarray) -> np.ndarray:
    """0.5-70 Hz of 200 Hz windows (an FFT mask), the band the comparison is made in."""
    spectrum = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / 200)
    spectrum[..., (freqs < 0.5) | (freqs > 70)] = 0
    return np.fft.irfft(spectrum, n=x.shape[-1], axis=-1)


@pytest.mark.parametrize(
    "name, sfreq", [("s01_raw.fif", 1000.0), ("s01.edf", 512.0), ("s01.vhdr", 1000.0), ("s01_raw.fif", 250.0)]
)
def test_resample_first_equals_filter_first_in_the_pass_band(root, name, sfreq):
    path = export(rich_raw(sfreq), root / "rec" / name)
    ingest(spec(), root / "out", base=root, quiet=True)
    eeg = np.load(root / "out" / "eeg.npy")
    meta = json.loads((root / "out" / "meta.json").read_text())
    assert meta["preprocessing"]["order"] == ("resample, then filter" if sfreq > 200 else "filter, then resample")
    reference, names = filter_first(path)
    assert [n.upper().replace("EEG ", "") for n in names] == meta["channels"]
    starts = [int(round(p["start"] * 200)) for p in meta["pairs"]]
    expected = np.stack([reference[:, s : s + 400] for s in starts])
    ours, theirs = band(eeg.astype(np.float64)), band(expected)
    cz = meta["channels"].index("CZ")
    others = [i for i in range(len(names)) if i != cz]
    for rows in (others, [cz]):
        error = np.sqrt(np.mean((ours[:, rows] - theirs[:, rows]) ** 2)) / np.sqrt(np.mean(theirs[:, rows] ** 2))
        assert error < 0.01, f"{name} at {sfreq} Hz: {error:.4%} RMS apart in 0.5-70 Hz"
    assert [int(np.argmax(w[cz])) for w in eeg] == [int(np.argmax(w[cz])) for w in expected] == [100] * len(EVENTS)


def test_workers_give_the_same_output_as_one(root):
    for i in range(3):
        export(rich_raw(500.0), root / "rec" / f"s{i:02d}_raw.fif")
    one = ingest(spec(), root / "one", base=root, quiet=True, workers=1)
    two = ingest(spec(), root / "two", base=root, quiet=True, workers=2)
    assert [r["recording"] for r in one["recordings"]] == [r["recording"] for r in two["recordings"]]
    assert np.array_equal(np.load(root / "one" / "eeg.npy"), np.load(root / "two" / "eeg.npy"))
    meta_one, meta_two = (json.loads((root / d / "meta.json").read_text()) for d in ("one", "two"))
    assert meta_one["pairs"] == meta_two["pairs"]
