"""Ingest, units: a file whose header states the wrong unit is refused (or warned about) with the
measured median, the likely unit and the key that fixes it, and reads right with eeg.unit or
eeg.scale; the choice is recorded in ingest_report.json and meta.json."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from ingest_helpers import cfr, need, planted_raw, write_video

mne = need("mne")
need("av")

from peftzoo_data.ingest import IngestError, ingest  # noqa: E402

EVENTS = [(2.0, "movie/a"), (5.0, "movie/b"), (8.0, "movie/a")]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "stim").mkdir()
    (tmp_path / "rec").mkdir()
    for name in ("a", "b"):
        write_video(tmp_path / "stim" / f"{name}.mp4", cfr(30, 10))
    return tmp_path


def spec(**eeg) -> dict:
    return {
        "recordings": {"files": "rec/*"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 2},
        "video": {"clips": "stim/{stim}.mp4", "frames": 2, "short_side": 16},
        "split": {"val": 0.0},
        "preview": 0,
        "eeg": eeg,
    }


def read(root: Path, out: str = "out"):
    meta = json.loads((root / out / "meta.json").read_text())
    report = json.loads((root / out / "ingest_report.json").read_text())["recordings"][0]
    return np.load(root / out / "eeg.npy"), meta, report


def sine_amplitude(x: np.ndarray) -> float:
    return float(np.sqrt(2) * x.std())


def write_edf_holding_microvolts_as_volts(path: Path) -> None:
    """An EDF whose physical dimension says V while its numbers are microvolts (the header's
    physical range is +-400 "V"): MNE reads every value 10^6 times too large."""
    pyedflib = need("pyedflib")
    raw = planted_raw(250.0, 11.0, EVENTS)
    headers = [pyedflib.highlevel.make_signal_header(name, "V", 250, -400, 400) for name in raw.ch_names]
    with pyedflib.EdfWriter(str(path), len(headers), file_type=pyedflib.FILETYPE_EDFPLUS) as writer:
        writer.setSignalHeaders(headers)
        writer.writeSamples([row * 1e6 for row in raw.get_data()])  # microvolt numbers
        for onset, desc in EVENTS:
            writer.writeAnnotation(onset, -1, desc)


def test_edf_that_says_volts_but_holds_microvolts_is_refused_then_read_with_eeg_unit(root, capsys):
    write_edf_holding_microvolts_as_volts(root / "rec" / "s01.edf")
    assert mne.io.read_raw_edf(root / "rec" / "s01.edf", verbose="error")._orig_units["Fz"] == "V"
    with pytest.raises(IngestError) as caught:
        ingest(spec(), root / "out", base=root, quiet=True)
    message = str(caught.value)
    median = float(message.split("median |EEG| is ")[1].split(" ")[0])
    assert 5e6 < median < 5e7  # the 20 uV sine's median |x| (~12.7 uV) times 10^6
    assert "cannot be microvolts" in message and "eeg.unit: µV" in message and "eeg.scale: 1e-06" in message
    assert "header states V" in message
    assert not (root / "out").exists()

    ingest(spec(unit="µV"), root / "out", base=root, quiet=True)
    eeg, meta, rec = read(root)
    assert sine_amplitude(eeg[0, 0]) == pytest.approx(20.0, rel=0.03)
    assert [int(np.argmax(p[meta["channels"].index("CZ")])) for p in eeg] == [100, 100, 100]
    assert rec["preprocessing"]["units"]["unit"] == "µV" and rec["preprocessing"]["units"]["header"] == ["V"]
    assert rec["preprocessing"]["units"]["factor_to_uv"] == [1.0] and rec["warnings"] == []
    assert meta["spec"]["eeg"]["unit"] == "µV" and meta["preprocessing"]["units"]["unit"] == "µV"

    ingest(spec(scale=1e-6), root / "out_scale", base=root, quiet=True)
    eeg_scaled, _, rec = read(root, "out_scale")
    assert np.allclose(eeg_scaled, eeg, atol=1e-3) and rec["preprocessing"]["units"]["scale"] == 1e-6


@pytest.mark.parametrize(
    "header, volts_per_unit, verdict",
    [
        ("V", 1.0, "error"),  # microvolt numbers under a V header: read 10^6 too large
        ("mV", 1e-3, "warning"),  # under mV: 10^3 too large, implausible but possible
        ("nV", 1e-9, "warning"),  # under nV: 10^3 too small
    ],
)
def test_brainvision_whose_header_unit_is_wrong(root, header, volts_per_unit, verdict, caplog):
    """pybv writes volts / (volts per header unit): data passed as microvolts x volts_per_unit
    put microvolt numbers in the file under the wrong header. Refused or warned (in the report and
    on the log), then right with eeg.unit: µV."""
    pybv = need("pybv")
    raw = planted_raw(500.0, 11.0, EVENTS)
    markers = [{"onset": int(round(t * 500)), "duration": 1, "description": d, "type": "Comment"} for t, d in EVENTS]
    pybv.write_brainvision(
        data=raw.get_data() * 1e6 * volts_per_unit,
        sfreq=500.0,
        ch_names=raw.ch_names,
        fname_base="s01",
        folder_out=str(root / "rec"),
        events=markers,
        unit=header,
        fmt="binary_float32",
        overwrite=True,
    )
    if verdict == "error":
        with pytest.raises(
            IngestError, match=r"cannot be microvolts.*eeg\.unit: µV .*header states V.*or eeg\.scale: 1e-06"
        ):
            ingest(spec(), root / "out", base=root, quiet=True)
    else:
        with caplog.at_level(logging.WARNING, logger="peftzoo_data.ingest"):
            ingest(spec(), root / "out", base=root, quiet=True)
        _, _, rec = read(root)
        assert len(rec["warnings"]) == 1 and "implausible for scalp EEG" in rec["warnings"][0]
        assert (
            f"eeg.unit: µV (the unit the file's numbers are really in; its header states {header})"
            in rec["warnings"][0]
        )
        assert rec["warnings"][0] in caplog.text
    ingest(spec(unit="µV"), root / "out_fixed", base=root, quiet=True)
    eeg, meta, rec = read(root, "out_fixed")
    assert sine_amplitude(eeg[0, 0]) == pytest.approx(20.0, rel=0.03) and rec["warnings"] == []
    assert rec["preprocessing"]["units"]["header"] == [header]


def test_a_right_header_needs_no_key_and_a_spec_unit_must_be_known(root):
    pybv = need("pybv")
    raw = planted_raw(500.0, 11.0, EVENTS)
    markers = [{"onset": int(round(t * 500)), "duration": 1, "description": d, "type": "Comment"} for t, d in EVENTS]
    pybv.write_brainvision(
        data=raw.get_data(),
        sfreq=500.0,
        ch_names=raw.ch_names,
        fname_base="s01",
        folder_out=str(root / "rec"),
        events=markers,
        unit="nV",
        fmt="binary_float32",
        overwrite=True,
    )
    ingest(spec(), root / "out", base=root, quiet=True)
    eeg, _, rec = read(root)
    assert sine_amplitude(eeg[0, 0]) == pytest.approx(20.0, rel=0.03) and rec["warnings"] == []
    assert rec["preprocessing"]["units"] == {"reader": "RawBrainVision", "header": ["nV"], "factor_to_uv": [1e6]}
    with pytest.raises(IngestError, match=r"eeg\.unit: Input should be 'V', 'mV', 'µV'"):
        ingest(spec(unit="kV"), root / "out2", base=root, quiet=True)
    with pytest.raises(IngestError, match=r"eeg\.scale: Input should be greater than 0"):
        ingest(spec(scale=0), root / "out2", base=root, quiet=True)
