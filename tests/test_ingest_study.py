"""Ingest as real studies need: recording sets with their own event sources (annotations here, a
stim channel there), the stimulus map (a mapping, a template, a glob that must match one file), a
missing clip named, `--merge` of ingested folders, the trigger error and the upscale warning (the
preview of every channel with a microvolt scale bar: tests/test_ingest_preview.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import run_python
from ingest_helpers import cfr, distinct, export, need, planted_raw, write_video

mne = need("mne")
need("av")
need("pybv")

from peftzoo_data.ingest import IngestError, ingest  # noqa: E402

EVENTS = [(1.0, "movie/clip09"), (4.0, "movie/clip10"), (7.0, "movie/clip09")]
CODES = {"movie/clip09": 9, "movie/clip10": 10}


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """Subject 01 in BrainVision (annotations), subject 02 in FIF with a stim channel (no annotations),
    clips clip09.mp4, clip10.mp4 and a decoy clip09_vfr.mp4 that a careless glob would also match."""
    (tmp_path / "bv").mkdir()
    (tmp_path / "fif").mkdir()
    (tmp_path / "stimuli").mkdir()
    export(distinct(planted_raw(200.0, 10.0, EVENTS), "01"), tmp_path / "bv" / "sub-01_run-1.vhdr")
    export(planted_raw(200.0, 10.0, EVENTS, trigger=CODES), tmp_path / "fif" / "sub-02_run-1_raw.fif")
    write_video(tmp_path / "stimuli" / "clip09.mp4", cfr(25, 10))
    write_video(tmp_path / "stimuli" / "clip10.mp4", cfr(25, 10))
    write_video(tmp_path / "stimuli" / "clip09_vfr.mp4", cfr(5, 10))  # too short: would drop windows if chosen
    return tmp_path


def two_sets(**sections) -> dict:
    spec = {
        "recordings": [
            {"files": "bv/*.vhdr", "entities": r"sub-(?P<subject>\d+)"},
            {
                "files": "fif/*.fif",
                "entities": r"sub-(?P<subject>\d+)",
                "events": {"source": "trigger", "codes": {9: "clip09", 10: "clip10"}},
            },
        ],
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 2},
        "video": {"clips": "stimuli/{stim}.*", "frames": 2, "short_side": 16},
        "split": {"by": "subject", "val": ["02"]},
        "preview": 0,
    }
    return {**spec, **sections}


def test_recording_sets_each_with_its_own_event_source(study):
    report = ingest(two_sets(), study / "out", base=study, quiet=True)
    meta = json.loads((study / "out" / "meta.json").read_text())
    got = [(p["subject"], p["stim"], p["onset"], Path(p["video"]).name) for p in meta["pairs"]]
    shown = [("clip09", 1.0, "clip09.mp4"), ("clip10", 4.0, "clip10.mp4"), ("clip09", 7.0, "clip09.mp4")]
    assert got == [("01", *x) for x in shown] + [("02", *x) for x in shown]
    assert report["split_sizes"] == {"train": 3, "val": 3, "test": 0}
    eeg = np.load(study / "out" / "eeg.npy")
    cz = meta["channels"].index("CZ")
    assert [int(np.argmax(pair[cz])) for pair in eeg] == [100] * 6  # the pulse at onset + 0.5 s, from either source


def test_a_stimulus_map_as_a_mapping(study):
    clips = {"clip09": "stimuli/clip09.mp4", "clip10": "stimuli/clip10.mp4"}
    ingest(two_sets(video={"clips": clips, "frames": 2, "short_side": 16}), study / "out", base=study, quiet=True)
    meta = json.loads((study / "out" / "meta.json").read_text())
    assert {Path(p["video"]).name for p in meta["pairs"]} == {"clip09.mp4", "clip10.mp4"}
    with pytest.raises(
        IngestError,
        match=r"video.clips: the stimulus map has no entry for event id 'clip10' \(it has "
        r"\['clip09'\]\)",
    ):
        ingest(two_sets(video={"clips": {"clip09": "stimuli/clip09.mp4"}}), study / "out2", base=study, quiet=True)


def test_a_glob_must_match_exactly_one_clip(study):
    with pytest.raises(IngestError) as err:
        ingest(
            two_sets(video={"clips": "stimuli/{stim}*", "frames": 2, "short_side": 16}),
            study / "out",
            base=study,
            quiet=True,
        )
    assert "for stimulus 'clip09'" in str(err.value)
    assert "matches 2 files (['clip09.mp4', 'clip09_vfr.mp4'])" in str(err.value)
    assert not (study / "out").exists()


def test_a_missing_clip_stops_the_ingest_with_its_name(study):
    (study / "stimuli" / "clip10.mp4").unlink()
    with pytest.raises(IngestError) as err:
        ingest(
            two_sets(video={"clips": "stimuli/{stim}.mp4", "frames": 2, "short_side": 16}),
            study / "out",
            base=study,
            quiet=True,
        )
    assert "the clip of stimulus 'clip10'" in str(err.value) and "stimuli/clip10.mp4', does not exist" in str(err.value)
    assert "dropped" not in str(err.value) and not (study / "out").exists()
    assert not (study / ".out.ingest-parts").exists()  # nothing was finished: no parts folder is left


def test_a_csv_stimulus_path_may_not_climb_out_of_the_stimuli_folder(study):
    (study / "secret").mkdir()
    write_video(study / "secret" / "x.mp4", cfr(25, 10))
    (study / "bv" / "sub-01_run-1_events.csv").write_text("onset,stim_file\n1.0,clip09\n4.0,../secret/x\n")
    spec = two_sets(
        recordings={"files": "bv/*.vhdr"},
        events={"source": "csv", "file": "{dir}/{stem}_events.csv"},
        split={"val": 0.0},
        video={"clips": "stimuli/{stim}.mp4", "frames": 2, "short_side": 16},
    )
    with pytest.raises(IngestError, match=r"stimulus id '\.\./secret/x' leads to .* outside .*stimuli"):
        ingest(spec, study / "out", base=study, quiet=True)


def test_trigger_error_names_trigger_like_channels_never_an_eeg_channel(study, tmp_path):
    (tmp_path / "edf").mkdir()
    export(planted_raw(200.0, 10.0, EVENTS), tmp_path / "edf" / "s.edf")  # annotations, no trigger channel
    spec = two_sets(
        recordings={"files": str(tmp_path / "edf" / "*.edf")}, events={"source": "trigger"}, split={"val": 0.0}
    )
    with pytest.raises(IngestError) as err:
        ingest(spec, tmp_path / "out", base=study, quiet=True)
    text = str(err.value)
    assert "no channel of this file looks like a trigger channel" in text and "events.source: annotations" in text
    assert not any(name in text for name in ("'Fp1'", "'Fz'", "'Cz'"))
    wrong = two_sets(
        recordings={"files": "fif/*.fif"},
        split={"val": 0.0},
        events={"source": "trigger", "stim_channel": "TRIG", "codes": {9: "clip09", 10: "clip10"}},
    )
    with pytest.raises(
        IngestError,
        match=r"events.stim_channel 'TRIG' is not a channel of this file; set "
        r"events.stim_channel to the one holding the codes: \['STI 014'\]",
    ):
        ingest(wrong, tmp_path / "out", base=study, quiet=True)


def test_upscaled_video_is_warned(study, caplog):
    with caplog.at_level(logging.WARNING, logger="peftzoo_data.ingest"):
        ingest(
            two_sets(video={"clips": "stimuli/{stim}.mp4", "frames": 2, "short_side": 96}),
            study / "out",
            base=study,
            quiet=True,
        )
    assert "clip09.mp4 is 64x48; video.short_side/video.size upscale it to 128x96" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="peftzoo_data.ingest"):
        ingest(two_sets(), study / "out2", base=study, quiet=True)
    assert "upscale" not in caplog.text


def ingest_to(study: Path, name: str, files: str, **sections) -> Path:
    spec = two_sets(recordings={"files": files, "entities": r"sub-(?P<subject>\d+)"}, split={"val": 0.0}, **sections)
    ingest(spec, study / name, base=study, quiet=True)
    return study / name


def test_merge_joins_folders_whose_channels_and_rates_agree(study):
    a = ingest_to(study, "a", "bv/*.vhdr")
    (study / "fif2").mkdir()
    export(distinct(planted_raw(200.0, 10.0, EVENTS), "02"), study / "fif2" / "sub-02_run-1_raw.fif")
    b = ingest_to(study, "b", "fif2/*.fif")
    result = run_python("-m", "recipes.ingest", "--merge", str(a), str(b), "--out", str(study / "c"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"data: {study / 'c'}"
    meta = json.loads((study / "c" / "meta.json").read_text())
    eeg = np.load(study / "c" / "eeg.npy")
    assert eeg.shape[0] == 6 and [p["subject"] for p in meta["pairs"]] == ["01"] * 3 + ["02"] * 3
    np.testing.assert_array_equal(eeg[:3], np.load(a / "eeg.npy"))
    np.testing.assert_array_equal(eeg[3:], np.load(b / "eeg.npy"))
    np.testing.assert_array_equal(np.load(study / "c" / "video.npy")[3:], np.load(b / "video.npy"))
    assert len(np.load(study / "c" / "split.npy")) == 6
    # another rate: refused with the difference, nothing written
    other = ingest_to(study, "d", "fif2/*.fif", eeg={"sfreq": 100.0, "h_freq": 40.0})
    result = run_python("-m", "recipes.ingest", "--merge", str(a), str(other), "--out", str(study / "e"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "sfreq differs: 200.0 in" in result.stderr and not (study / "e").exists()
    few = ingest_to(study, "f", "fif2/*.fif", eeg={"channels": ["Fz", "Cz", "Pz"]})
    result = run_python("-m", "recipes.ingest", "--merge", str(a), str(few), "--out", str(study / "g"))
    assert result.returncode == 2 and "different EEG channels (only in one: ['FP1', 'O1', 'O2'])" in result.stderr
    result = run_python("-m", "recipes.ingest", "--merge", str(a), str(a / "nothing"), "--out", str(study / "g"))
    assert result.returncode == 2 and "is not an ingest output (meta.json is missing)" in result.stderr
