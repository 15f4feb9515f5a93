"""peftzoo_data/ingest/dsp.py does MNE's FIR filtering and scipy's polyphase decimation with numpy
alone (so that ingest does not import scipy.signal): its taps and outputs must equal theirs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ingest_helpers import need

mne = need("mne")
signal = pytest.importorskip("scipy.signal")

from peftzoo_data.ingest import dsp  # noqa: E402


@pytest.mark.parametrize(
    "sfreq, l_freq, h_freq",
    [(200, 0.1, 75), (200, 1, 40), (250, 0.5, None), (200, None, 70), (512, 0.1, 75), (200, 0.1, 99), (1000, 2, 30)],
)
def test_bandpass_taps_equal_mne(sfreq, l_freq, h_freq):
    theirs = mne.filter.create_filter(None, sfreq, l_freq, h_freq, verbose="error")
    ours = dsp.bandpass_taps(sfreq, l_freq, h_freq)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sfreq, freqs", [(200, [50.0]), (250, [50.0, 100.0]), (200, [60.0]), (1000, [50, 100, 150])])
def test_notch_equals_mne(sfreq, freqs):
    x = np.random.default_rng(0).standard_normal((3, 9000)) * 10 + 4
    theirs = mne.filter.notch_filter(x, sfreq, freqs, verbose="error")
    ours = dsp.zero_phase_filter(x, [dsp.notch_taps(sfreq, freqs)])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)


@pytest.mark.parametrize("n", [120_000, 3000, 700])
def test_bandpass_then_notch_equals_mne_in_sequence(n):
    """One merged convolution equals MNE's two passes, edges included; on a signal shorter than the
    band-pass (700 samples < 6601 taps) the edge padding differs slightly (measured 1.6e-5 RMS)."""
    x = np.random.default_rng(1).standard_normal((4, n)) * 10 + np.linspace(0, 50, n)
    theirs = mne.filter.notch_filter(
        mne.filter.filter_data(x, 200.0, 0.1, 75.0, verbose="error"), 200.0, [50.0], verbose="error"
    )
    ours = dsp.zero_phase_filter(x, [dsp.bandpass_taps(200.0, 0.1, 75.0), dsp.notch_taps(200.0, [50.0])])
    tolerance = 1e-10 if n > 6601 else 1e-4
    assert np.sqrt(np.mean((ours - theirs) ** 2)) < tolerance * np.sqrt(np.mean(theirs**2))


@pytest.mark.parametrize(
    "n, up, down",
    [
        (10_000, 1, 5),
        (10_001, 1, 5),
        (997, 1, 2),
        (5003, 1, 4),
        (12_345, 1, 8),
        (30_000, 1, 5),
        (10_000, 4, 5),
        (10_001, 2, 5),
        (3001, 3, 7),
        (2000, 2, 1),
        (25_013, 25, 64),
    ],
)
def test_resample_equals_resample_poly(n, up, down):
    """1000, 500 and 250 Hz to 200 Hz, and other ratios (512 Hz: 25/64), edges and block edges included."""
    x = np.random.default_rng(2).standard_normal((11, n)) + 5
    theirs = signal.resample_poly(x, up, down, axis=1, padtype="reflect")
    ours = dsp.resample(x, up, down, step=97)  # small blocks: block edges inside the signal
    read = dsp.resample(lambda a, b: x[:, a:b], up, down, n)  # block by block from a reader
    assert ours.shape == theirs.shape == read.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(read, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("offset_v", "rms_uv", "max_uv"), [(0.03, 0.005, 0.03), (0.25, 0.05, 0.3)])
def test_float32_resampling_and_filtering_match_float64_beside_a_large_electrode_offset(offset_v, rms_uv, max_uv):
    """The streamed ingest path works in float32: beside a DC offset of 30 mV (typical of DC-coupled amplifiers)
    or 250 mV (a bad electrode), 10 uV of EEG comes out within a few thousandths, or hundredths, of a microvolt
    RMS of the float64 result (a little more at the edges), far below the 1% the output is held to against MNE."""
    rng = np.random.default_rng(0)
    x = offset_v + 10e-6 * rng.standard_normal((4, 120_000))  # 2 minutes at 1000 Hz, in volts
    taps = [dsp.bandpass_taps(200.0, 0.1, 75.0), dsp.notch_taps(200.0, [50.0])]
    results = {}
    for dtype in (np.float64, np.float32):
        y = dsp.resample(x.astype(dtype), 1, 5)
        assert y.dtype == dtype
        results[dtype] = dsp.zero_phase_filter(y, taps, out=y).astype(np.float64)
    difference = (results[np.float32] - results[np.float64]) * 1e6  # microvolts
    assert np.sqrt(np.mean(difference**2)) < rms_uv and np.abs(difference).max() < max_uv
    assert np.sqrt(np.mean(results[np.float64] ** 2)) * 1e6 > 3  # the EEG is there: 10 uV of white noise, band-passed


def test_ingest_imports_neither_torch_nor_scipy_signal_nor_matplotlib():
    code = (
        "import sys, peftzoo_data.ingest.cli, peftzoo_data.ingest.pipeline, peftzoo_data.ingest.dsp, "
        "peftzoo_data.ingest.preview, peftzoo_data.splits;"
        "print(sorted(m for m in ('torch', 'scipy.signal', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


EVENTS = [(2.0, "movie/a"), (5.0, "movie/b"), (8.0, "movie/a"), (11.0, "movie/b")]


def _ingest(root, out: str, reference: str | None) -> tuple[np.ndarray, dict, dict]:
    import json

    from peftzoo_data.ingest import ingest

    spec = {
        "recordings": {"files": "rec/*"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 2},
        "video": {"clips": "stim/{stim}.mp4", "frames": 2, "short_side": 16},
        "split": {"val": 0.0},
        "preview": 1,
        "eeg": {"reference": reference},
    }
    ingest(spec, root / out, base=root, quiet=True)
    report = json.loads((root / out / "ingest_report.json").read_text())["recordings"][0]
    return np.load(root / out / "eeg.npy"), json.loads((root / out / "meta.json").read_text()), report


@pytest.mark.parametrize("reference, sfreq", [(None, 1000.0), ("average", 1000.0), (None, 500.0), ("average", 250.0)])
def test_reading_block_by_block_equals_loading_the_whole_file(tmp_path, monkeypatch, reference, sfreq):
    """A FIF at 1000, 500 or 250 Hz is read block by block and downsampled as it is read (eeg.streamable); with a
    NaN hole inside the third window (dropped as BAD_nonfinite) and either reference, its pairs,
    drops and EEG equal those of the path that loads the whole file first."""
    need("av")
    from ingest_helpers import cfr, export, planted_raw, write_video

    from peftzoo_data.ingest import eeg as eeg_io

    (tmp_path / "stim").mkdir()
    (tmp_path / "rec").mkdir()
    for name in ("a", "b"):
        write_video(tmp_path / "stim" / f"{name}.mp4", cfr(30, 10))
    raw = planted_raw(sfreq, 14.0, EVENTS)
    raw._data[1, int(8.5 * sfreq) : int(8.7 * sfreq)] = np.nan
    export(raw, tmp_path / "rec" / "s01_raw.fif")
    streamed, meta, report = _ingest(tmp_path, "streamed", reference)
    assert "dsp.py" in report["preprocessing"]["resample"]["method"]  # the block-by-block path ran
    monkeypatch.setattr(eeg_io, "streamable", lambda *args: False)
    loaded, meta_loaded, report_loaded = _ingest(tmp_path, "loaded", reference)
    assert report_loaded["preprocessing"].get("nonfinite_samples_zeroed") == int(0.2 * sfreq)
    assert [p["onset"] for p in meta["pairs"]] == [p["onset"] for p in meta_loaded["pairs"]] == [2.0, 5.0, 11.0]
    assert [d["reason"] for d in report["windows_dropped"]] == [d["reason"] for d in report_loaded["windows_dropped"]]
    assert "BAD_nonfinite" in report["windows_dropped"][0]["reason"]
    assert report["preprocessing"]["nonfinite_samples_zeroed"] == int(0.2 * sfreq)
    assert np.isfinite(streamed).all() and streamed.shape == loaded.shape
    np.testing.assert_allclose(streamed, loaded, rtol=0, atol=1e-4 * np.abs(loaded).max())
    assert (tmp_path / "streamed" / "preview.png").stat().st_size > 1000
