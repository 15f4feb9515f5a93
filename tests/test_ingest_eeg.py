"""Ingest, EEG side: files written by MNE's exporters with planted signals, and the pyedflib wheel's
own files. Units (20 uV at 10 Hz stays 20 uV at 10 Hz), resampling from common rates, alignment
(a pulse at onset + 0.5 s lands at sample 100 of its 200 Hz window), names, channel picking, drops."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from ingest_helpers import cfr, export, need, planted_raw, write_video

need("mne")
need("av")

from peftzoo_data.ingest import IngestError, ingest  # noqa: E402

EVENTS = [(2.0, "movie/a"), (5.0, "movie/b"), (8.0, "movie/a")]


@pytest.fixture
def stimuli(tmp_path: Path) -> Path:
    (tmp_path / "stim").mkdir()
    for name in ("a", "b"):
        write_video(tmp_path / "stim" / f"{name}.mp4", cfr(30, 10))
    return tmp_path


def spec(**changes) -> dict:
    out = {
        "recordings": {"files": "rec/*"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 2},
        "video": {"clips": "stim/{stim}.mp4", "frames": 2, "short_side": 16},
        "split": {"val": 0.0},
        "preview": 0,
    }
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if field:
            out.setdefault(section, {})[field] = value
        else:
            out[section] = value
    return out


def run(root: Path, recording, name: str, **changes):
    (root / "rec").mkdir(exist_ok=True)
    export(recording, root / "rec" / name)
    report = ingest(spec(**changes), root / "out", base=root, quiet=True)
    eeg = np.load(root / "out" / "eeg.npy")
    meta = json.loads((root / "out" / "meta.json").read_text())
    return eeg, meta, report


def amplitude_and_frequency(x: np.ndarray, sfreq: float) -> tuple[float, float]:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / sfreq)
    return float(np.sqrt(2) * x.std()), float(freqs[spectrum.argmax()])


@pytest.mark.parametrize("sfreq", [250.0, 256.0, 500.0, 1000.0])
def test_fif_units_resampling_and_alignment(stimuli, sfreq):
    eeg, meta, report = run(stimuli, planted_raw(sfreq, 11.0, EVENTS), "rec_raw.fif")
    assert meta["sfreq"] == 200.0 and eeg.shape == (3, 6, 400) and eeg.dtype == np.float32
    assert meta["preprocessing"]["file_sfreq"] == sfreq
    assert report["recordings"][0]["amplitude_uv"] == pytest.approx(20 / np.sqrt(2), rel=0.05)  # the sine channels' std
    fp1 = meta["channels"].index("FP1")
    for pair in eeg:
        amp, freq = amplitude_and_frequency(pair[fp1], 200.0)
        assert amp == pytest.approx(20.0, rel=0.03) and freq == pytest.approx(10.0, abs=0.5)
    cz = meta["channels"].index("CZ")
    assert [int(np.argmax(pair[cz])) for pair in eeg] == [100, 100, 100]
    assert [p["stim"] for p in meta["pairs"]] == ["a", "b", "a"]
    assert [p["onset"] for p in meta["pairs"]] == [2.0, 5.0, 8.0]


def test_brainvision_export_and_type_less_channels(stimuli):
    """BrainVision keeps no channel types: an EOG channel reads back as EEG and is dropped by name."""
    raw = planted_raw(500.0, 11.0, EVENTS, extra_types={"VEOG": "eog"})
    eeg, meta, report = run(stimuli, raw, "rec.vhdr")
    assert meta["channels"] == ["FP1", "FZ", "CZ", "PZ", "O1", "O2"]
    assert report["recordings"][0]["channels_dropped"] == {"VEOG": "in eeg.exclude"}
    # markers read back as "Comment/movie/a": matched by a search, not a prefix
    assert [p["stim"] for p in meta["pairs"]] == ["a", "b", "a"]
    assert [int(np.argmax(p[2])) for p in eeg] == [100, 100, 100]


def test_edf_style_names_and_non_eeg_types(stimuli):
    names = ["EEG Fp1-REF", "EEG Fz-REF", "EEG Cz-REF", "EEG Pz-REF", "EEG O1-REF", "EEG O2-REF"]
    raw = planted_raw(256.0, 11.0, EVENTS, names=names, extra_types={"ECG": "ecg"})
    eeg, meta, report = run(stimuli, raw, "rec.edf")
    assert meta["channels"] == ["FP1", "FZ", "CZ", "PZ", "O1", "O2"]
    assert "ECG" in report["recordings"][0]["channels_dropped"]
    cz = meta["channels"].index("CZ")
    # EDF+ keeps onsets to the microsecond and 16-bit samples: the pulse still lands on sample 100
    assert [int(np.argmax(p[cz])) for p in eeg] == [100, 100, 100]
    amp, freq = amplitude_and_frequency(eeg[0, 0], 200.0)
    assert amp == pytest.approx(20.0, rel=0.03) and freq == pytest.approx(10.0, abs=0.5)


def test_trigger_channel_events_resampled_with_the_data(stimuli):
    raw = planted_raw(1000.0, 11.0, EVENTS, trigger={"movie/a": 3, "movie/b": 5})
    eeg, meta, report = run(stimuli, raw, "rec_raw.fif", events={"source": "trigger", "codes": {3: "a", 5: "b"}})
    assert [p["stim"] for p in meta["pairs"]] == ["a", "b", "a"]
    assert [p["onset"] for p in meta["pairs"]] == [2.0, 5.0, 8.0]
    assert [int(np.argmax(p[meta["channels"].index("CZ")])) for p in eeg] == [100, 100, 100]
    with pytest.raises(
        IngestError, match=r"no trigger event with a code in events.codes \[7\] \(codes found: \['3', '5'\]\)"
    ):
        ingest(spec(events={"source": "trigger", "codes": {7: "q"}}), stimuli / "out2", base=stimuli, quiet=True)


def test_csv_events_offset_stride_count(stimuli):
    (stimuli / "rec").mkdir()
    (stimuli / "rec" / "rec_raw_events.csv").write_text("onset,stim_file\n2.0,a\n5.0,b\n8.0,\n")
    eeg, meta, report = run(
        stimuli,
        planted_raw(500.0, 11.0, EVENTS),
        "rec_raw.fif",
        **{
            "events": {"source": "csv", "file": "{dir}/{stem}_events.csv"},
            "window.seconds": 1,
            "window.offset": 0.25,
            "window.count": 2,
            "window.stride": 0.5,
            "recordings.files": "rec/*.fif",
        },
    )
    assert [(p["stim"], p["start"]) for p in meta["pairs"]] == [("a", 2.25), ("a", 2.75), ("b", 5.25), ("b", 5.75)]
    # the pulse at onset + 0.5 s: sample 50 of a window starting at +0.25 s, absent from the one at +0.75 s
    assert int(np.argmax(eeg[0, 2])) == 50 and eeg[1, 2].max() < 0.2 * eeg[0, 2].max()


def test_bad_annotations_and_short_recording_are_reported_drops(stimuli):
    raw = planted_raw(250.0, 11.0, EVENTS + [(10.0, "movie/b")])
    import mne

    raw.set_annotations(
        raw.annotations + mne.Annotations([5.5], [0.2], ["BAD_blink"], orig_time=raw.annotations.orig_time)
    )
    eeg, meta, report = run(stimuli, raw, "rec_raw.fif")
    rec = report["recordings"][0]
    assert rec["events_found"] == 4 and rec["windows_made"] == 2 and len(eeg) == 2
    reasons = sorted(d["reason"] for d in rec["windows_dropped"])
    assert "BAD_blink" in reasons[1] or "BAD_blink" in reasons[0]
    assert any("outside the recording" in r for r in reasons)


def test_average_reference_and_channel_list(stimuli):
    eeg, meta, _ = run(
        stimuli,
        planted_raw(200.0, 11.0, EVENTS),
        "rec_raw.fif",
        eeg={"channels": ["Cz", "Fz", "Pz"], "reference": "average"},
    )
    assert meta["channels"] == ["CZ", "FZ", "PZ"]
    assert np.abs(eeg.mean(axis=1)).max() < 1e-3  # average reference: channels sum to zero


def test_pyedflib_wheel_files(tmp_path):
    """Files nobody here wrote: pyedflib's test_generator.edf (200 Hz, generator channels named
    'sine 8 Hz' ...), mapped to 10-20 names, events from its own annotations."""
    pyedflib = need("pyedflib")
    source = Path(os.path.dirname(pyedflib.__file__)) / "tests" / "data" / "test_generator.edf"
    if not source.is_file():
        pytest.skip(f"{source} is not in this pyedflib wheel")
    write_video(tmp_path / "starts.mp4", cfr(30, 10))
    report = ingest(
        {
            "recordings": {"files": str(source)},
            "events": {"match": r"Recording (?P<stim>starts)"},
            "eeg": {"rename": {"sine 8 Hz": "O1", "sine 15 Hz": "O2"}, "unknown_channels": "drop", "notch": []},
            "window": {"seconds": 2, "offset": 1},
            "video": {"clips": str(tmp_path / "{stim}.mp4"), "frames": 2, "short_side": 16},
            "split": {"val": 0.0},
            "preview": 1,
        },
        tmp_path / "out",
        quiet=True,
    )
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    eeg = np.load(tmp_path / "out" / "eeg.npy")
    assert meta["channels"] == ["O1", "O2"] and eeg.shape == (1, 2, 400)
    assert report["recordings"][0]["channels_dropped"]["squarewave"] == "no 10-20 name"
    assert amplitude_and_frequency(eeg[0, 0], 200.0)[1] == pytest.approx(8.0, abs=0.5)
    assert amplitude_and_frequency(eeg[0, 1], 200.0)[1] == pytest.approx(15.0, abs=0.5)
    assert (tmp_path / "out" / "preview.png").stat().st_size > 1000


def test_bad_eeg_inputs_have_located_messages(stimuli, tmp_path):
    (stimuli / "rec").mkdir()
    (stimuli / "rec" / "broken.edf").write_bytes(b"0       not an edf file at all")
    with pytest.raises(IngestError, match=r"broken.edf: could not be read as an EEG recording"):
        ingest(spec(), stimuli / "out", base=stimuli, quiet=True)
    assert not (stimuli / "out").exists()
    (stimuli / "rec" / "broken.edf").unlink()

    export(planted_raw(128.0, 11.0, EVENTS), stimuli / "rec" / "low_raw.fif")
    with pytest.raises(IngestError, match=r"sampled at 128 Hz, too low for the low-pass eeg.h_freq 75 Hz"):
        ingest(spec(), stimuli / "out", base=stimuli, quiet=True)
    (stimuli / "rec" / "low_raw.fif").unlink()

    export(planted_raw(250.0, 11.0, EVENTS, names=["Fp1", "Cz", "Foo"]), stimuli / "rec" / "odd_raw.fif")
    with pytest.raises(IngestError, match=r"channels \['Foo'\] have no 10-20/10-10 name.*eeg.rename"):
        ingest(spec(), stimuli / "out", base=stimuli, quiet=True)
    with pytest.raises(
        IngestError, match=r"no event matches events.match 'nothing(.|\n)*seen instead: \['movie/a', 'movie/b'\]"
    ):
        ingest(
            spec(**{"events.match": "nothing", "eeg.unknown_channels": "drop"}),
            stimuli / "out",
            base=stimuli,
            quiet=True,
        )
    (stimuli / "rec" / "odd_raw.fif").unlink()

    export(planted_raw(250.0, 1.5, [(0.2, "movie/a")]), stimuli / "rec" / "short_raw.fif")
    with pytest.raises(IngestError, match=r"no window could be made(.|\n)*outside the recording"):
        ingest(spec(), stimuli / "out", base=stimuli, quiet=True)
    assert not (stimuli / "out").exists()
