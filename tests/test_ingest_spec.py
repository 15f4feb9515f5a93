"""Ingest spec and command line: located errors, JSON Schema, exit 2 without a traceback, reruns that
reuse finished recordings, atomic output, groups and splits that never cut a group, BIDS input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_python
from ingest_helpers import cfr, distinct, export, need, planted_raw, write_video

need("mne")
need("av")

from peftzoo_data.ingest import (  # noqa: E402
    IngestError,
    ingest,
    pipeline,  # noqa: E402
)
from peftzoo_data.ingest import spec as ingest_spec  # noqa: E402

EVENTS = [(1.0, "movie/a"), (4.0, "movie/b"), (7.0, "movie/a")]


def base_spec(**sections) -> dict:
    out = {
        "recordings": {"files": "rec/*.fif", "entities": r"sub-(?P<subject>\d+)_run-(?P<block>\d+)"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 1},
        "video": {"clips": "stim/{stim}.mp4", "frames": 2, "short_side": 16},
        "preview": 0,
    }
    out.update(sections)
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """3 subjects x 2 runs, 3 events each, 200 Hz (no resampling: fast)."""
    root = tmp_path_factory.mktemp("study")
    (root / "rec").mkdir()
    (root / "stim").mkdir()
    for s in (1, 2, 3):
        for r in (1, 2):
            export(planted_raw(200.0, 9.0, EVENTS), root / "rec" / f"sub-0{s}_run-{r}_raw.fif")
    for name in ("a", "b"):
        write_video(root / "stim" / f"{name}.mp4", cfr(20, 10))
    return root


def test_spec_errors_are_located_and_list_allowed_keys():
    with pytest.raises(IngestError) as err:
        ingest_spec.validate(
            {
                "recordings": {"files": "x/*.edf"},
                "video": {"clips": "v/{stim}.mp4", "frame": 4},
                "window": {"seconds": 2.5},
                "eeg": {"h_freq": 150},
            }
        )
    text = str(err.value)
    assert "video.frame: unknown key; did you mean 'frames'? (allowed: clips, movie, sync" in text
    assert "window: seconds 2.5 is not a whole number; LaBraM reads 1-s patches" in text
    assert "eeg: h_freq 150.0 Hz is not below the Nyquist frequency of the target rate" in text
    with pytest.raises(IngestError, match="exceeds the encoder's limit of 16"):
        ingest_spec.validate(base_spec(window={"seconds": 20}))
    with pytest.raises(IngestError, match=r"events.match: .* is not a valid regular expression"):
        ingest_spec.validate(base_spec(events={"match": "movie/(?P<stim"}))
    with pytest.raises(IngestError, match="split by subject needs subject ids"):
        ingest_spec.validate(base_spec(recordings={"files": "a"}, split={"by": "subject", "val": ["1"]}))


def test_cli_schema_and_user_errors_exit_2(tmp_path, study, capsys):
    from peftzoo_data.ingest.cli import main

    assert main(["--schema"]) == 0
    assert "recordings" in json.loads(capsys.readouterr().out)["properties"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**base_spec(), "recordings": {"files": str(study / "rec" / "nothing*.fif")}}))
    result = run_python("-m", "recipes.ingest", str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: recordings.files: ") and "matches no file" in result.stderr
    assert not (tmp_path / "out").exists()
    unquoted = tmp_path / "unquoted.yaml"
    unquoted.write_text("recordings: {files: rec/*.fif}\nvideo: {clips: stim/{stim}.mp4}\n")
    assert main([str(unquoted), "--out", str(tmp_path / "out")]) == 2
    assert "quote templates holding {...}" in capsys.readouterr().err and not (tmp_path / "out").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "thesis.tex").write_text("precious")
    good = tmp_path / "good.yaml"
    good.write_text(
        yaml.safe_dump(
            {
                **base_spec(),
                "recordings": {"files": str(study / "rec" / "*.fif")},
                "video": {"clips": str(study / "stim" / "{stim}.mp4"), "frames": 2, "short_side": 16},
            }
        )
    )
    assert main([str(good), "--out", str(taken), "--quiet"]) == 2
    assert "exists and is not an ingest output" in capsys.readouterr().err
    assert (taken / "thesis.tex").read_text() == "precious"
    assert main([str(good), "--out", str(tmp_path / "fine"), "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"data: {tmp_path / 'fine'}"


def test_rerun_reuses_finished_recordings_and_redoes_changed_ones(tmp_path, study, monkeypatch):
    out = tmp_path / "out"
    first = ingest(base_spec(), out, base=study, quiet=True)
    assert first["pairs"] == 18 and not any(r["reused"] for r in first["recordings"])
    eeg_before = np.load(out / "eeg.npy")
    calls = []
    real = pipeline.ingest_recording
    monkeypatch.setattr(pipeline, "ingest_recording", lambda rec, *a, **k: calls.append(rec.name) or real(rec, *a, **k))
    again = ingest(base_spec(), out, base=study, quiet=True)
    assert calls == [] and all(r["reused"] for r in again["recordings"])
    np.testing.assert_array_equal(np.load(out / "eeg.npy"), eeg_before)
    # another window length changes every recording's key: all are redone
    ingest(base_spec(window={"seconds": 2}), out, base=study, quiet=True)
    assert len(calls) == 6 and np.load(out / "eeg.npy").shape[-1] == 400
    assert not list(out.parent.glob(".out.*"))  # no temp or parts folder left behind


def test_an_interrupted_run_leaves_out_untouched_and_keeps_finished_parts(tmp_path, study, monkeypatch):
    out = tmp_path / "out"
    ingest(base_spec(), out, base=study, quiet=True)
    before = (out / "ingest_report.json").read_text()
    real = pipeline.ingest_recording
    done = []

    def crash_on_fourth(rec, *a, **k):
        if len(done) == 3:
            raise KeyboardInterrupt
        done.append(rec.name)
        return real(rec, *a, **k)

    monkeypatch.setattr(pipeline, "ingest_recording", crash_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        ingest(base_spec(window={"seconds": 2}), out, base=study, quiet=True)
    assert (out / "ingest_report.json").read_text() == before  # the old output is intact
    monkeypatch.setattr(pipeline, "ingest_recording", lambda rec, *a, **k: done.append(rec.name) or real(rec, *a, **k))
    report = ingest(base_spec(window={"seconds": 2}), out, base=study, quiet=True)
    assert [r["reused"] for r in report["recordings"]] == [True] * 3 + [False] * 3 and len(done) == 6


@pytest.mark.parametrize(
    "split,groups,expect",
    [
        ({"by": "subject", "val": ["02"], "test": ["03"]}, {"by": "recording"}, {"train": 6, "val": 6, "test": 6}),
        ({"by": "block", "fold": 1}, {"by": "recording"}, {"train": 9, "val": 0, "test": 9}),  # 2 blocks: no val
        ({"by": "fraction", "val": 0.34, "test": 0.0}, {"by": "subject"}, {"train": 12, "val": 6, "test": 0}),
    ],
)
def test_groups_and_splits_never_cut_a_group(tmp_path, study, split, groups, expect):
    report = ingest(base_spec(split=split, groups=groups), tmp_path / "out", base=study, quiet=True)
    labels = np.load(tmp_path / "out" / "split.npy")
    group = np.load(tmp_path / "out" / "groups.npy")
    assert report["split_sizes"] == expect
    for g in np.unique(group):
        assert len(set(labels[group == g])) == 1
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    if split["by"] == "subject":
        assert {p["subject"] for p, s in zip(meta["pairs"], labels) if s == "test"} == {"03"}
    if split["by"] == "block":  # leave-one-block-out: block 2 is test (with 3+ blocks the one before is val)
        assert {p["block"] for p, s in zip(meta["pairs"], labels) if s == "test"} == {"2"}


def test_a_split_that_would_cut_a_group_is_refused(tmp_path, study):
    with pytest.raises(IngestError, match="split by block cuts a group"):
        ingest(
            base_spec(split={"by": "block", "fold": 0}, groups={"by": "subject"}),
            tmp_path / "out",
            base=study,
            quiet=True,
        )


def test_bids_dataset_with_events_tsv(tmp_path):
    mne_bids = need("mne_bids")
    need("pybv")
    raw = planted_raw(500.0, 9.0, EVENTS)
    root = tmp_path / "bids"
    for run in ("1", "2"):
        path = mne_bids.BIDSPath(subject="01", session="a", task="movie", run=run, datatype="eeg", root=root)
        mne_bids.write_raw_bids(
            distinct(raw, run), path, format="BrainVision", allow_preload=True, overwrite=True, verbose="error"
        )
        events = path.copy().update(suffix="events", extension=".tsv").fpath
        events.write_text(
            "onset\tduration\ttrial_type\tstim_file\n1.0\t0\tmovie\tstimuli/a.mp4\n4.0\t0\tmovie\tstimuli/b.mp4\n"
            "7.0\t0\tfixation\tn/a\n"
        )
    (root / "stimuli").mkdir()
    for name in ("a", "b"):
        write_video(root / "stimuli" / f"{name}.mp4", cfr(20, 10))
    report = ingest(
        {
            "recordings": {"bids": {"root": "bids", "task": "movie"}},
            "events": {"source": "bids", "match": r"stimuli/(?P<stim>\w+)\.mp4"},
            "window": {"seconds": 1},
            "video": {"clips": "bids/stimuli/{stim}.mp4", "frames": 2, "short_side": 16},
            "split": {"by": "block", "fold": 0},
            "preview": 0,
        },
        tmp_path / "out",
        base=tmp_path,
        quiet=True,
    )
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert [(p["subject"], p["session"], p["block"], p["stim"]) for p in meta["pairs"]] == [
        ("01", "a", "1", "a"),
        ("01", "a", "1", "b"),
        ("01", "a", "2", "a"),
        ("01", "a", "2", "b"),
    ]
    assert report["split_sizes"] == {"train": 2, "val": 0, "test": 2}
    eeg = np.load(tmp_path / "out" / "eeg.npy")
    assert [int(np.argmax(p[meta["channels"].index("CZ")])) for p in eeg] == [100] * 4


def test_recordings_with_different_channels_name_the_common_ones(tmp_path, study):
    (tmp_path / "rec").mkdir()
    export(planted_raw(200.0, 9.0, EVENTS), tmp_path / "rec" / "sub-01_run-1_raw.fif")
    export(planted_raw(200.0, 9.0, EVENTS, names=["Cz", "Fz", "Oz"]), tmp_path / "rec" / "sub-02_run-1_raw.fif")
    spec = base_spec(video={"clips": str(study / "stim" / "{stim}.mp4"), "frames": 2, "short_side": 16})
    with pytest.raises(
        IngestError, match=r"different EEG channels .* set eeg.channels to the ones all share: \['CZ', 'FZ'\]"
    ):
        ingest(spec, tmp_path / "out", base=tmp_path, quiet=True)
    report = ingest({**spec, "eeg": {"channels": ["Cz", "Fz"]}}, tmp_path / "out", base=tmp_path, quiet=True)
    assert report["pairs"] == 6 and json.loads((tmp_path / "out" / "meta.json").read_text())["channels"] == ["CZ", "FZ"]
