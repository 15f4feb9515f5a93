"""Ingest, points found on real files: a TUH `EEG EKG1-REF` channel is dropped as ECG; listing
eeg.channels ignores unrelated channels without a 10-20 name; at an odd rate (600.615 Hz) the
output grid is exactly 200 Hz (an exact rational resampling ratio), so a window starts within half
a 200-Hz sample (2.5 ms) of its event, for annotation and trigger events alike, with no drift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ingest_helpers import cfr, export, need, planted_raw, write_video

need("mne")
need("av")

from peftzoo_data.ingest import IngestError, ingest  # noqa: E402
from peftzoo_data.ingest.eeg import resample_ratio  # noqa: E402

EVENTS = [(2.0, "movie/a"), (5.0, "movie/b"), (8.0, "movie/a")]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "stim").mkdir()
    (tmp_path / "rec").mkdir()
    for name in ("a", "b"):
        write_video(tmp_path / "stim" / f"{name}.mp4", cfr(30, 10))
    return tmp_path


def spec(**sections) -> dict:
    out = {
        "recordings": {"files": "rec/*"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 2},
        "video": {"clips": "stim/{stim}.mp4", "frames": 2, "short_side": 16},
        "split": {"val": 0.0},
        "preview": 0,
    }
    return {**out, **sections}


def report_of(root: Path, out: str = "out") -> dict:
    return json.loads((root / out / "ingest_report.json").read_text())["recordings"][0]


def test_tuh_ekg_channel_is_dropped_as_ecg(root):
    names = ["EEG FP1-REF", "EEG FZ-REF", "EEG CZ-REF", "EEG PZ-REF", "EEG O1-REF", "EEG O2-REF", "EEG EKG1-REF"]
    export(planted_raw(250.0, 11.0, EVENTS, names=names), root / "rec" / "s01.edf")
    ingest(spec(), root / "out", base=root, quiet=True)
    assert report_of(root)["channels_dropped"] == {"EEG EKG1-REF": "ECG channel (by its name)"}


def test_eeg_channels_ignores_unrelated_unnamed_channels(root):
    names = ["Fp1", "Fz", "Cz", "Pz", "O1", "O2", "sine 8 Hz", "Photic"]
    export(planted_raw(250.0, 11.0, EVENTS, names=names), root / "rec" / "s01_raw.fif")
    with pytest.raises(IngestError, match=r"channels \['sine 8 Hz', 'Photic'\] have no 10-20/10-10 name"):
        ingest(spec(), root / "out", base=root, quiet=True)
    ingest(spec(eeg={"channels": ["Cz", "Fz"]}), root / "out", base=root, quiet=True)
    rec = report_of(root)
    assert json.loads((root / "out" / "meta.json").read_text())["channels"] == ["CZ", "FZ"]
    assert rec["channels_dropped"]["sine 8 Hz"] == rec["channels_dropped"]["Photic"] == "not in eeg.channels"


def test_exact_ratio_at_an_odd_rate():
    assert resample_ratio(600.615, 200.0) == (40000, 120123)
    assert resample_ratio(1000.0, 200.0) == (1, 5) and resample_ratio(256.0, 200.0) == (25, 32)


@pytest.mark.parametrize("source", ["annotations", "trigger"])
def test_windows_at_600_615_hz_start_within_half_a_sample(root, source):
    sfreq = 600.615
    events = [(2.0 + 0.7731 * i, "movie/a") for i in range(14)]  # onsets at arbitrary sub-sample times
    trigger = {"movie/a": 3} if source == "trigger" else None
    raw = planted_raw(sfreq, 16.0, events, trigger=trigger)
    export(raw, root / "rec" / "s01_raw.fif")
    extra = {"events": {"source": "trigger", "codes": {3: "a"}}} if trigger else {}
    ingest(spec(window={"seconds": 1}, **extra), root / "out", base=root, quiet=True)
    eeg = np.load(root / "out" / "eeg.npy")
    meta = json.loads((root / "out" / "meta.json").read_text())
    assert meta["preprocessing"]["resample"]["grid_error_ppm"] < 0.01  # FIF keeps the rate as float32: 600.61499...
    # an annotation is a time; a trigger is the file's sample nearest it
    true_onsets = [round(t * sfreq) / sfreq if trigger else t for t, _ in events]
    errors = [abs(round(p["start"] * 200) / 200 - t) for p, t in zip(meta["pairs"], true_onsets)]
    assert len(errors) == len(events) and max(errors) <= 0.0025 + 1e-9, max(errors)
    cz = meta["channels"].index("CZ")
    for pair, t, window in zip(meta["pairs"], true_onsets, eeg):  # the pulse 0.5 s later: same bound, no drift
        pulse = round((t + 0.5) * sfreq) / sfreq  # planted on the file's sample nearest onset + 0.5 s
        assert abs(int(np.argmax(window[cz])) / 200 - (pulse - round(pair["start"] * 200) / 200)) <= 0.0025 + 1 / sfreq
