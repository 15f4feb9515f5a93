"""Ingest, XDF (Lab Streaming Layer) through pyxdf: real XDF files written by tests/xdf_writer.py
with an EEG stream and a marker stream on offset clocks (and jittered EEG time stamps), a pulse
planted 0.5 s after each marker that must land on sample 100 of its 200 Hz window, channel names
and units from the stream description, and a frame-marker stream giving the frames truly shown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ingest_helpers import CHANNELS, cfr, frame_index, need, write_video
from xdf_writer import Stream, write

need("mne")
need("av")
need("pyxdf")

from peftzoo_data.ingest import IngestError, ingest  # noqa: E402

SFREQ = 500.0
SECONDS = 14.0
MARKERS = [(2.0, "movie/a"), (5.0, "movie/b"), (6.5, "pause"), (8.0, "movie/a")]
EEG_CLOCK, MARKER_CLOCK = 1000.0, -37.25  # each stream's clock minus the recorder's


def eeg_stream(unit: str = "microvolts", scale: float = 1.0, jitter_s: float = 0.0005) -> Stream:
    """20 uV of 10 Hz on every channel but Cz, which holds 200 uV one-sample pulses 0.5 s after each marker."""
    n = int(SECONDS * SFREQ)
    t = np.arange(n) / SFREQ
    values = np.tile(20 * np.sin(2 * np.pi * 10 * t), (len(CHANNELS), 1))
    cz = CHANNELS.index("Cz")
    values[cz] = 0
    for onset, _ in MARKERS:
        values[cz, int(round((onset + 0.5) * SFREQ))] = 200
    stamps = t + EEG_CLOCK + np.random.default_rng(0).normal(0, jitter_s, n)
    offsets = [(t0 + EEG_CLOCK, -EEG_CLOCK) for t0 in np.arange(0, SECONDS, 2.0)]
    return Stream(
        "BioSemi",
        "EEG",
        SFREQ,
        stamps,
        (values.T * scale).astype(np.float32),
        offsets,
        [(name, unit) for name in CHANNELS],
    )


def marker_stream(name: str = "PsychoPy", markers=MARKERS) -> Stream:
    stamps = np.array([t for t, _ in markers]) + MARKER_CLOCK
    offsets = [(t0 + MARKER_CLOCK, -MARKER_CLOCK) for t0 in np.arange(0, SECONDS, 2.0)]
    return Stream(name, "Markers", 0.0, stamps, [d for _, d in markers], offsets)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "stim").mkdir()
    (tmp_path / "rec").mkdir()
    for name in ("a", "b"):
        write_video(tmp_path / "stim" / f"{name}.mp4", cfr(30, 10))
    return tmp_path


def spec(**xdf) -> dict:
    return {
        "recordings": {"files": "rec/*.xdf"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 2},
        "video": {"clips": "stim/{stim}.mp4", "frames": 2, "short_side": 16},
        "split": {"val": 0.0},
        "preview": 0,
        "eeg": {"xdf": xdf},
    }


def read(root: Path, out: str = "out"):
    meta = json.loads((root / out / "meta.json").read_text())
    report = json.loads((root / out / "ingest_report.json").read_text())["recordings"][0]
    return np.load(root / out / "eeg.npy"), meta, report


def test_offset_clocks_and_jitter_land_the_pulse_on_its_sample(root):
    write(root / "rec" / "sub01_block1.xdf", [eeg_stream(), marker_stream()])
    ingest(spec(markers="Markers"), root / "out", base=root, quiet=True)  # chosen by type
    eeg, meta, rec = read(root)
    assert meta["channels"] == ["FP1", "FZ", "CZ", "PZ", "O1", "O2"] and eeg.shape == (3, 6, 400)
    assert [p["stim"] for p in meta["pairs"]] == ["a", "b", "a"]
    assert [p["onset"] for p in meta["pairs"]] == pytest.approx([2.0, 5.0, 8.0], abs=1e-4)
    cz = meta["channels"].index("CZ")
    assert [int(np.argmax(w[cz])) for w in eeg] == [100, 100, 100]
    assert float(np.sqrt(2) * eeg[0, 0].std()) == pytest.approx(20.0, rel=0.03)
    assert rec["xdf"]["eeg_stream"] == "BioSemi" and rec["xdf"]["marker_stream"] == "PsychoPy"
    assert rec["xdf"]["synchronize_clocks"] is True and rec["xdf"]["dejitter_timestamps"] is True
    assert rec["xdf"]["effective_srate"] == pytest.approx(SFREQ, rel=1e-5) and rec["xdf"]["units"] == ["µV"]
    assert rec["preprocessing"]["units"]["header"] == ["µV"]


def test_without_clock_synchronization_the_markers_miss_the_recording(root):
    write(root / "rec" / "s.xdf", [eeg_stream(), marker_stream()])
    with pytest.raises(
        IngestError,
        match=r"all 4 markers of stream 'PsychoPy' lie outside the EEG stream .*"
        r"keep eeg.xdf.synchronize_clocks: true \(it is False\)",
    ):
        ingest(spec(synchronize_clocks=False), root / "out", base=root, quiet=True)


def test_streams_by_name_units_from_the_description_and_located_errors(root):
    write(
        root / "rec" / "s.xdf",
        [eeg_stream(unit="millivolts", scale=1e-3), marker_stream("Stim"), marker_stream("Other")],
    )
    ingest(spec(stream="BioSemi", markers="Stim"), root / "out", base=root, quiet=True)
    eeg, meta, rec = read(root)
    assert float(np.sqrt(2) * eeg[0, 0].std()) == pytest.approx(20.0, rel=0.03) and rec["xdf"]["units"] == ["mV"]
    with pytest.raises(IngestError, match=r"2 streams have the type 'Markers' \('Stim'.*set eeg.xdf.markers"):
        ingest(spec(markers="Markers"), root / "out2", base=root, quiet=True)
    with pytest.raises(IngestError, match=r"no stream named or typed 'EMG' for the EEG .*'BioSemi' \(type 'EEG'\)"):
        ingest(spec(stream="EMG", markers="Stim"), root / "out2", base=root, quiet=True)


def test_frame_markers_give_the_frames_truly_displayed(root):
    """Clip a (10 fps) stalls on frame 4 for 0.2 s at each showing: at clip times 0.5 and 1.5 s
    the screen showed frames 4 and 13, not the file's 5 and 15."""
    frames = []
    for onset, desc in MARKERS:
        if desc.startswith("movie/"):
            frames += [(onset + 0.1 * k + (0.2 if k >= 5 else 0.0), str(k)) for k in range(20)]
    stamps = np.array([t for t, _ in frames]) + MARKER_CLOCK
    offsets = [(t0 + MARKER_CLOCK, -MARKER_CLOCK) for t0 in np.arange(0, SECONDS, 2.0)]
    write(
        root / "rec" / "s.xdf",
        [eeg_stream(), marker_stream(), Stream("Frames", "VideoFrames", 0.0, stamps, [v for _, v in frames], offsets)],
    )
    ingest(spec(), root / "nominal", base=root, quiet=True)
    ingest(spec(frames="VideoFrames"), root / "out", base=root, quiet=True)
    for out, expected in (("nominal", [5, 15]), ("out", [4, 13])):
        video = np.load(root / out / "video.npy")
        assert [[frame_index(f) for f in pair] for pair in video] == [expected] * 3
    _, meta, rec = read(root)
    assert rec["xdf"]["frame_stream"] == "Frames" and rec["xdf"]["clips_displayed"] == 3
    assert meta["pairs"][0]["video_times"] == pytest.approx([0.4, 1.3], abs=1e-3)
