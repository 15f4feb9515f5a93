"""Ingest, EEG formats and conventions beyond the first tests: EEGLAB .set, a BioSemi-style BDF
Status channel, EDF+ annotations at odd times, BrainVision in mV/nV/V, FIF bad channels and
projectors, channel names in other conventions, rates that do not divide 200 Hz."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ingest_helpers import CHANNELS, cfr, export, need, planted_raw, write_video

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


def read(root: Path, out: str = "out"):
    meta = json.loads((root / out / "meta.json").read_text())
    return (
        np.load(root / out / "eeg.npy"),
        meta,
        json.loads((root / out / "ingest_report.json").read_text())["recordings"][0],
    )


def pulse_positions(eeg: np.ndarray, meta: dict) -> list[int]:
    cz = meta["channels"].index("CZ")
    return [int(np.argmax(pair[cz])) for pair in eeg]


def sine_amplitude(x: np.ndarray) -> float:
    return float(np.sqrt(2) * x.std())


def test_eeglab_set(root):
    """EEGLAB .set (written by MNE's exporter through eeglabio), read by mne.io.read_raw."""
    need("eeglabio")
    mne.export.export_raw(
        root / "rec" / "s01.set", planted_raw(250.0, 11.0, EVENTS), fmt="eeglab", overwrite=True, verbose="error"
    )
    ingest(spec(), root / "out", base=root, quiet=True)
    eeg, meta, rec = read(root)
    assert meta["channels"] == ["FP1", "FZ", "CZ", "PZ", "O1", "O2"] and eeg.shape == (3, 6, 400)
    assert [p["stim"] for p in meta["pairs"]] == ["a", "b", "a"] and pulse_positions(eeg, meta) == [100, 100, 100]
    assert sine_amplitude(eeg[0, 0]) == pytest.approx(20.0, rel=0.03)


def write_biosemi_bdf(path: Path, sfreq: int, seconds: int, events: list[tuple[float, int]]) -> None:
    """A BDF as BioSemi writes it: EEG in uV and a `Status` channel whose 24-bit value holds the
    trigger code in its 16 low bits and system flags above (bit 20: CMS in range, always on here;
    bit 16: new epoch, toggled half-way), so the raw Status value is never the code itself."""
    pyedflib = need("pyedflib")
    raw = planted_raw(float(sfreq), float(seconds), [(t, "x") for t, _ in events])
    data = [row * 1e6 for row in raw.get_data()]
    status = np.full(sfreq * seconds, 1 << 20, dtype=np.int64)
    status[status.size // 2 :] += 1 << 16
    for onset, code in events:
        a = int(round(onset * sfreq))
        status[a : a + sfreq // 100] += code
    headers = [
        pyedflib.highlevel.make_signal_header(name, "uV", sfreq, -400, 400, -8388608, 8388607) for name in raw.ch_names
    ]
    headers.append(
        pyedflib.highlevel.make_signal_header("Status", "Boolean", sfreq, -8388608, 8388607, -8388608, 8388607)
    )
    with pyedflib.EdfWriter(str(path), len(headers), file_type=pyedflib.FILETYPE_BDFPLUS) as writer:
        writer.setSignalHeaders(headers)
        writer.writeSamples(data + [status.astype(np.float64)])


def test_bdf_status_channel_codes_in_the_low_16_bits(root):
    write_biosemi_bdf(root / "rec" / "s01.bdf", 512, 11, [(2.0, 3), (5.0, 5), (8.0, 3)])
    events = {"source": "trigger", "codes": {3: "a", 5: "b"}}
    ingest(spec(events=events), root / "out", base=root, quiet=True)
    eeg, meta, rec = read(root)
    assert [p["stim"] for p in meta["pairs"]] == ["a", "b", "a"] and [p["onset"] for p in meta["pairs"]] == [
        2.0,
        5.0,
        8.0,
    ]
    assert pulse_positions(eeg, meta) == [100, 100, 100]  # 512 Hz -> 200 Hz, events resampled with the data
    assert rec["channels_dropped"] == {"Status": "channel type stim"}
    # Unmasked, the third event reads 65539 (MNE keeps 17 bits of a BDF stim channel; bit 16 is set)
    ingest(spec(events={**events, "mask": None}), root / "out2", base=root, quiet=True)
    assert [p["stim"] for p in read(root, "out2")[1]["pairs"]] == ["a", "b"]


def test_trigger_channel_typed_eeg_is_not_an_eeg_channel(root):
    """A trigger channel that the format typed EEG (here a FIF stim channel retyped) is dropped by
    the name given in events.stim_channel instead of stopping on 'no 10-20 name'."""
    raw = planted_raw(500.0, 11.0, EVENTS, trigger={"movie/a": 3, "movie/b": 5})
    raw.set_channel_types({"STI 014": "eeg"}, on_unit_change="ignore", verbose="error")
    export(raw, root / "rec" / "s01_raw.fif")
    ingest(
        spec(events={"source": "trigger", "codes": {3: "a", 5: "b"}, "stim_channel": "STI 014"}),
        root / "out",
        base=root,
        quiet=True,
    )
    eeg, meta, rec = read(root)
    assert rec["channels_dropped"] == {"STI 014": "trigger channel (events.stim_channel)"}
    assert [p["stim"] for p in meta["pairs"]] == ["a", "b", "a"] and pulse_positions(eeg, meta) == [100, 100, 100]


def test_edf_annotations_at_odd_times(root):
    """Onsets that fall between samples of 256 Hz and of 200 Hz, one that is not a whole number of
    microseconds, and one past the end: windows start at round(onset x 200), the pulse planted at
    the file's sample nearest onset + 0.5 s lands within one sample of where that sample's time
    falls, and the late event is a reported drop."""
    events = [(2.0137, "movie/a"), (5.3333333, "movie/b"), (8.0001, "movie/a"), (10.5, "movie/b")]
    raw = planted_raw(256.0, 11.0, events[:3])
    raw.set_annotations(mne.Annotations([e[0] for e in events], [0.0] * 4, [e[1] for e in events]))
    export(raw, root / "rec" / "s01.edf")
    ingest(spec(), root / "out", base=root, quiet=True)
    eeg, meta, rec = read(root)
    onsets = [p["onset"] for p in meta["pairs"]]
    assert onsets == pytest.approx([e[0] for e in events[:3]], abs=0.5 / 256)  # EDF+ keeps microseconds
    for pair, position in zip(meta["pairs"], pulse_positions(eeg, meta)):
        pulse_time = round((pair["onset"] + 0.5) * 256) / 256
        assert abs(position - (pulse_time * 200 - round(pair["onset"] * 200))) <= 1.0
    assert rec["windows_made"] == 3 and "outside the recording" in rec["windows_dropped"][0]["reason"]


@pytest.mark.parametrize("unit", ["mV", "nV", "V"])
def test_brainvision_in_other_units(root, unit):
    """pybv writes the file in mV, nV or V (MNE scales back to volts on reading): 20 uV stays 20 uV."""
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
        unit=unit,
        fmt="binary_float32",
        overwrite=True,
    )
    with open(root / "rec" / "s01.vhdr") as f:
        assert f"{unit}" in f.read().split("[Channel Infos]")[1]
    ingest(spec(), root / "out", base=root, quiet=True)
    eeg, meta, rec = read(root)
    assert sine_amplitude(eeg[0, 0]) == pytest.approx(20.0, rel=0.03) and pulse_positions(eeg, meta) == [100, 100, 100]
    assert rec["amplitude_uv"] == pytest.approx(20 / np.sqrt(2), rel=0.05)


def test_fif_bad_channels_and_projectors(root):
    """T7 is marked bad and carries 2 mV of noise; the file holds an average-reference projector
    that was added but not applied. Default: the projector is applied (the good channels then sum
    to zero) and T7 is interpolated; `drop`, `keep` and `projectors: ignore` do what they say."""
    names = ["Fp1", "Fz", "Cz", "Pz", "O1", "O2", "T7"]
    raw = planted_raw(250.0, 11.0, EVENTS, names=names)
    raw._data[6] = np.random.default_rng(0).standard_normal(raw.n_times) * 2e-3
    raw.info["bads"] = ["T7"]
    raw.set_eeg_reference("average", projection=True, verbose="error")
    export(raw, root / "rec" / "s01_raw.fif")

    ingest(spec(), root / "out", base=root, quiet=True)
    eeg, meta, rec = read(root)
    assert meta["channels"] == ["FP1", "FZ", "CZ", "PZ", "O1", "O2", "T7"]
    assert rec["preprocessing"]["bad_channels"] == {"names": ["T7"], "action": "interpolate"}
    assert rec["preprocessing"]["projectors"]["action"] == "apply"
    assert np.abs(eeg[:, :6].sum(axis=1)).max() < 0.5  # average reference over the good channels
    assert eeg[:, 6].std() < 50  # interpolated from its neighbours, not 2000 uV of noise

    ingest(spec(eeg={"bads": "drop"}), root / "out_drop", base=root, quiet=True)
    eeg, meta, rec = read(root, "out_drop")
    assert meta["channels"] == ["FP1", "FZ", "CZ", "PZ", "O1", "O2"]
    assert rec["channels_dropped"] == {"T7": "marked bad in the file (eeg.bads: drop)"}
    with pytest.raises(IngestError, match=r"asks for \['T7'\], which the file marks bad.*eeg.bads: interpolate"):
        ingest(spec(eeg={"bads": "drop", "channels": ["Cz", "T7"]}), root / "out_x", base=root, quiet=True)

    ingest(spec(eeg={"bads": "keep", "projectors": "ignore"}), root / "out_keep", base=root, quiet=True)
    eeg, meta, rec = read(root, "out_keep")
    assert eeg[:, 6].std() > 500  # the recorded noise, band-passed
    assert sine_amplitude(eeg[0, 0]) == pytest.approx(20.0, rel=0.03)  # not re-referenced


@pytest.mark.parametrize(
    "names",
    [
        ["EEG FP1-LE", "EEG FZ-LE", "EEG CZ-LE", "EEG PZ-LE", "EEG O1-LE", "EEG O2-LE"],
        ["FP1", "FZ", "CZ", "PZ", "O1", "O2"],
        ["eeg fp1-ref", "Fz", "CZ", "Pz", "O1", "o2"],
    ],
)
def test_channel_names_in_other_conventions(root, names):
    export(planted_raw(250.0, 11.0, EVENTS, names=names), root / "rec" / "s01_raw.fif")
    ingest(spec(), root / "out", base=root, quiet=True)
    eeg, meta, _ = read(root)
    assert meta["channels"] == ["FP1", "FZ", "CZ", "PZ", "O1", "O2"] and pulse_positions(eeg, meta) == [100, 100, 100]


@pytest.mark.parametrize("sfreq", [1024.0, 250.3])
def test_rates_that_do_not_divide_200(root, sfreq):
    """The pulse sits at the file's sample nearest onset + 0.5 s, which at these rates is not a
    200 Hz sample: it lands within one sample of that time, with no drift over the recording."""
    export(planted_raw(sfreq, 11.0, EVENTS), root / "rec" / "s01_raw.fif")
    ingest(spec(), root / "out", base=root, quiet=True)
    eeg, meta, rec = read(root)
    assert rec["preprocessing"]["file_sfreq"] == pytest.approx(sfreq) and eeg.shape == (3, 6, 400)
    for pair, position in zip(meta["pairs"], pulse_positions(eeg, meta)):
        pulse_time = round((pair["onset"] + 0.5) * sfreq) / sfreq
        assert abs(position - (pulse_time * 200 - round(pair["onset"] * 200))) <= 0.75
    assert sine_amplitude(eeg[0, 0]) == pytest.approx(20.0, rel=0.03)


def test_a_recording_shorter_than_a_window_is_reported_beside_good_ones(root):
    export(planted_raw(250.0, 11.0, EVENTS), root / "rec" / "s01_raw.fif")
    short = planted_raw(250.0, 0.5, [])
    short.set_annotations(mne.Annotations([0.1], [0.0], ["movie/a"]))
    export(short, root / "rec" / "s02_raw.fif")
    report = ingest(spec(), root / "out", base=root, quiet=True)
    by_name = {r["recording"]: r for r in report["recordings"]}
    assert report["pairs"] == 3 and by_name["rec/s02_raw.fif"]["pairs"] == 0
    assert (
        "outside the recording (0.100-2.100 s; it lasts 0.500 s)"
        in by_name["rec/s02_raw.fif"]["windows_dropped"][0]["reason"]
    )


def test_nan_gaps_drop_their_windows_and_flat_channels_are_reported(root):
    """A float file with a hole (NaN for 0.2 s inside the second window) and a flat channel: the
    filters run on the pieces around the hole (MNE's skip_by_annotation), the hole's window is a
    reported drop, the others come out finite and intact, and the flat channel is named."""
    raw = planted_raw(250.0, 11.0, EVENTS)
    raw._data[1, int(5.5 * 250) : int(5.7 * 250)] = np.nan
    raw._data[4] = 0.0  # O1 disconnected
    export(raw, root / "rec" / "s01_raw.fif")
    ingest(spec(), root / "out", base=root, quiet=True)
    eeg, meta, rec = read(root)
    assert [p["onset"] for p in meta["pairs"]] == [2.0, 8.0] and np.isfinite(eeg).all()
    assert rec["windows_dropped"][0]["onset"] == 5.0 and "BAD_nonfinite" in rec["windows_dropped"][0]["reason"]
    assert sine_amplitude(eeg[1, 1]) == pytest.approx(20.0, rel=0.03) and pulse_positions(eeg, meta) == [100, 100]
    assert rec["flat_channels"] == ["O1"] and rec["preprocessing"]["nonfinite_samples_zeroed"] > 0


def test_recordings_with_the_same_channels_in_another_order(root):
    """A second cap's files list the same sites in another order: rows are put in the first
    recording's order (O2, planted at 40 uV, stays O2), also when a rerun ingests the first again
    and reuses the reordered one from the previous output, whose rows are already reordered."""

    def recording(names, sfreq, o2_uv=40.0):
        raw = planted_raw(sfreq, 11.0, EVENTS, names=names)
        t = np.arange(raw.n_times) / sfreq
        raw._data[names.index("O2")] = o2_uv * 1e-6 * np.sin(2 * np.pi * 10 * t)
        return raw

    export(recording(CHANNELS, 250.0), root / "rec" / "s01_raw.fif")
    export(recording(["O2", "Cz", "Fp1", "Pz", "Fz", "O1"], 500.0), root / "rec" / "s02_raw.fif")
    for rerun in (False, True):
        if rerun:  # s01 changes: it is ingested again, s02 comes from the previous output
            export(recording(CHANNELS, 250.0, o2_uv=30.0), root / "rec" / "s01_raw.fif")
        report = ingest(spec(), root / "out", base=root, quiet=True)
        eeg, meta, _ = read(root)
        assert meta["channels"] == ["FP1", "FZ", "CZ", "PZ", "O1", "O2"] and pulse_positions(eeg, meta) == [100] * 6
        o2 = [round(sine_amplitude(pair[5])) for pair in eeg]
        assert o2 == ([30] * 3 if rerun else [40] * 3) + [40] * 3
        assert [round(sine_amplitude(pair[0])) for pair in eeg] == [20] * 6
    assert [r["reused"] for r in report["recordings"]] == [False, True]
    export(planted_raw(250.0, 11.0, EVENTS, names=["Fp1", "Fz", "Cz", "Pz", "O1", "T7"]), root / "rec" / "s03_raw.fif")
    with pytest.raises(IngestError, match=r"\['O2', 'T7'\] are not in both\); set eeg.channels to the ones all share"):
        ingest(spec(), root / "out", base=root, quiet=True)
