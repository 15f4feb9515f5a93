"""Ingest as strict as recipes: spec numbers, channel lists, event files, outputs, damaged parts,
duplicate recordings, windows that overlap across splits, truncated EEG files, a full disk. Each
case is one message naming the problem and the fix (an IngestError: exit 2, no traceback), and
nothing half-written is left behind."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run_python
from ingest_helpers import cfr, distinct, export, need, planted_raw, write_video

need("mne")
need("av")

from peftzoo_data.ingest import IngestError, ingest  # noqa: E402
from peftzoo_data.ingest import spec as ingest_spec  # noqa: E402

EVENTS = [(1.0, "movie/a"), (4.0, "movie/b"), (7.0, "movie/a")]


def spec(**sections) -> dict:
    out = {
        "recordings": {"files": "rec/*", "entities": r"sub-(?P<subject>\d+)"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 1},
        "video": {"clips": "stim/{stim}.mp4", "frames": 2, "short_side": 16},
        "split": {"val": 0.0},
        "preview": 0,
    }
    return {**out, **sections}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "rec").mkdir()
    (tmp_path / "stim").mkdir()
    for name in ("a", "b"):
        write_video(tmp_path / "stim" / f"{name}.mp4", cfr(20, 10))
    return tmp_path


def one(root: Path, name: str = "sub-01_raw.fif", raw=None) -> Path:
    return export(raw if raw is not None else planted_raw(200.0, 9.0, EVENTS), root / "rec" / name)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"window": {"seconds": float("nan")}}, "window.seconds: Input should be a finite number"),
        ({"window": {"seconds": 1, "offset": float("inf")}}, "window.offset: Input should be a finite number"),
        ({"window": {"seconds": 0}}, "window.seconds: Input should be greater than 0"),
        ({"window": {"seconds": -2}}, "window.seconds: Input should be greater than 0"),
        ({"window": {"seconds": True}}, "window.seconds: expected a number, got True"),
        ({"window": {"seconds": 1, "count": True}}, "window.count: expected a number, got True"),
        ({"eeg": {"sfreq": float("inf")}}, "eeg.sfreq: Input should be a finite number"),
        ({"eeg": {"sfreq": 0}}, "eeg.sfreq: Input should be greater than 0"),
        ({"eeg": {"notch": float("nan")}}, "eeg.notch.0: Input should be a finite number"),
        ({"eeg": {"notch": [-50]}}, "notch -50.0 Hz is not a line frequency"),
        ({"eeg": {"notch": [True]}}, "eeg.notch: expected a number, got [True]"),
        ({"eeg": {"channels": ["Fz", "Cz", "FZ"]}}, "channels lists ['FZ'] more than once; list each channel once"),
        (
            {"video": {"clips": "s/{stim}.mp4", "frames": 10**9}},
            "video.frames: Input should be less than or equal to 512",
        ),
        (
            {"video": {"clips": "s/{stim}.mp4", "short_side": 10**7}},
            "video.short_side: Input should be less than or equal",
        ),
        (
            {"video": {"clips": "s/{stim}.mp4", "short_side": 0}},
            "video.short_side: Input should be greater than or equal",
        ),
        ({"video": {"clips": "s/{stim}.mp4", "size": [0, 100]}}, "size [0, 100] must be [height, width], each from 8"),
        (
            {"video": {"clips": "s/{stim}.mp4", "sync_offset": float("nan")}},
            "video.sync_offset: Input should be a finite",
        ),
        ({"events": {"source": "trigger", "mask": 0}}, "mask 0 keeps no bit of the trigger value"),
    ],
)
def test_spec_numbers_follow_the_recipe_rules(section, message):
    with pytest.raises(IngestError) as err:
        ingest_spec.validate(spec(**section))
    assert message in str(err.value)


def test_a_huge_frame_count_is_refused_at_once_not_after_hours(root, tmp_path):
    one(root)
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps(spec(video={"clips": "stim/{stim}.mp4", "frames": 10**12})))
    started = time.monotonic()
    result = run_python("-m", "recipes.ingest", str(bad), "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2 and "video.frames" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60


def write_events(root: Path, text: str | bytes, name: str = "sub-01_raw_events.csv") -> None:
    path = root / "rec" / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


CSV = {"source": "csv", "file": "{dir}/{stem}_events.csv", "match": r"(?P<stim>\w+)"}


@pytest.mark.parametrize("onset", ["nan", "inf", "-inf"])
def test_csv_onsets_that_are_not_finite(root, onset):
    one(root)
    write_events(root, f"onset,stim_file\n1.0,a\n{onset},b\n")
    with pytest.raises(IngestError, match=rf"sub-01_raw_events.csv, line 3: onset '{onset}' is not a finite number"):
        ingest(spec(events=CSV, recordings={"files": "rec/*.fif"}), root / "out", base=root, quiet=True)


def test_a_latin1_csv_is_named_with_the_fix(root):
    one(root)
    write_events(root, "onset,stim_file,note\n1.0,a,caf\xe9\n".encode("latin-1"))
    with pytest.raises(IngestError, match=r"sub-01_raw_events.csv, line 2: not UTF-8 text .* save the file as UTF-8"):
        ingest(spec(events=CSV, recordings={"files": "rec/*.fif"}), root / "out", base=root, quiet=True)


def test_outputs_under_proc_or_below_a_file(root, tmp_path):
    one(root)
    with pytest.raises(IngestError, match=r"--out '/proc/peftzoo-out' is inside /proc, a kernel file system"):
        ingest(spec(), "/proc/peftzoo-out", base=root, quiet=True)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(IngestError, match=r"lies below '.*notes.txt', which is a file, not a folder"):
        ingest(spec(), tmp_path / "notes.txt" / "sub" / "out", base=root, quiet=True)
    assert (tmp_path / "notes.txt").read_text() == "x"


def test_a_damaged_part_is_recomputed(root, monkeypatch):
    from peftzoo_data.ingest import pipeline

    one(root)
    one(root, "sub-02_raw.fif", distinct(planted_raw(200.0, 9.0, EVENTS), "2"))
    real = pipeline.ingest_recording
    calls = []

    def second_fails(rec, *a, **k):
        calls.append(rec.name)
        if rec.name.startswith("rec/sub-02"):
            raise KeyboardInterrupt
        return real(rec, *a, **k)

    monkeypatch.setattr(pipeline, "ingest_recording", second_fails)
    with pytest.raises(KeyboardInterrupt):
        ingest(spec(), root / "out", base=root, quiet=True)
    (part,) = [p for p in (root / ".out.ingest-parts").iterdir()]
    with open(part / "eeg.npy", "r+b") as f:  # truncated: an interrupted copy, a full disk
        f.truncate(200)
    monkeypatch.setattr(pipeline, "ingest_recording", real)
    report = ingest(spec(), root / "out", base=root, quiet=True)
    assert report["pairs"] == 6 and [r["reused"] for r in report["recordings"]] == [False, False]


@pytest.mark.parametrize("damage", ["truncate_eeg", "cut_meta", "list_report"])
def test_a_damaged_previous_output_is_recomputed_on_rerun(root, damage, caplog):
    one(root)
    first = ingest(spec(), root / "out", base=root, quiet=True)
    eeg = np.load(root / "out" / "eeg.npy")
    if damage == "truncate_eeg":
        with open(root / "out" / "eeg.npy", "r+b") as f:
            f.truncate(300)
    elif damage == "cut_meta":
        text = (root / "out" / "meta.json").read_text()
        (root / "out" / "meta.json").write_text(text[: len(text) // 2])
    else:
        (root / "out" / "ingest_report.json").write_text("[1, 2]")
    report = ingest(spec(), root / "out", base=root, quiet=True)
    assert report["pairs"] == first["pairs"] and not report["recordings"][0]["reused"]
    np.testing.assert_array_equal(np.load(root / "out" / "eeg.npy"), eeg)
    assert "is damaged" in caplog.text


def test_a_recordings_cache_dir_that_is_a_file(root, reg, tmp_path):
    one(root)
    (tmp_path / "cache").write_text("not a folder")
    block = {**spec(), "base": str(root), "cache_dir": str(tmp_path / "cache" / "sub")}
    config = reg.get("datasets", "recordings").Config.model_validate(block)
    with pytest.raises(
        IngestError,
        match=r"data.cache_dir: '.*cache/sub' cannot be the ingest cache folder: "
        r"'.*cache' is a file",
    ):
        reg.get("datasets", "recordings").from_config(config, seed=0)


def test_a_recording_matched_twice_is_read_once(root, caplog):
    one(root)
    report = ingest(spec(recordings={"files": ["rec/*.fif", "rec/sub-01*"]}), root / "out", base=root, quiet=True)
    assert report["pairs"] == 3 and len(report["recordings"]) == 1
    assert "recording rec/sub-01_raw.fif was matched 1 more time(s)" in caplog.text


def test_a_symlink_loop_does_not_ingest_one_file_many_times(root):
    one(root)
    os.symlink(root / "rec", root / "rec" / "loop")
    report = ingest(spec(recordings={"files": "rec/**/*.fif"}), root / "out", base=root, quiet=True)
    assert report["pairs"] == 3 and [r["recording"] for r in report["recordings"]] == ["rec/sub-01_raw.fif"]


def test_a_copy_under_another_name_is_refused_unless_allowed(root):
    one(root)
    (root / "rec" / "sub-02_raw.fif").write_bytes((root / "rec" / "sub-01_raw.fif").read_bytes())
    with pytest.raises(
        IngestError,
        match=r"'rec/sub-02_raw.fif' holds the same data as 'rec/sub-01_raw.fif'"
        r".*duplicates: allow",
    ):
        ingest(spec(), root / "out", base=root, quiet=True)
    allowed = spec(recordings={"files": "rec/*", "entities": r"sub-(?P<subject>\d+)", "duplicates": "allow"})
    assert ingest(allowed, root / "out", base=root, quiet=True)["pairs"] == 6


def test_windows_that_overlap_across_splits_are_refused():
    from peftzoo_data.ingest.pipeline import _check_overlap_across_splits

    pairs = [
        {"recording": "r1", "start": 1.0},
        {"recording": "r1", "start": 1.5},
        {"recording": "r1", "start": 4.0},
        {"recording": "r2", "start": 1.5},
    ]
    _check_overlap_across_splits(pairs, np.array(["train", "train", "val", "val"]), 2.0)  # r1 1.0/1.5 same side
    with pytest.raises(
        IngestError,
        match=r"1 pair\(s\) of overlapping windows lie on two sides of the split, "
        r"e.g. r1 at 1.0 s \(train\) and 1.5 s \(val\)",
    ):
        _check_overlap_across_splits(pairs, np.array(["train", "val", "val", "train"]), 2.0)


def test_csv_windows_overlapping_across_a_stimulus_split_are_refused(root):
    one(root)
    write_events(root, "onset,stim_file\n1.0,a\n1.5,b\n4.0,a\n4.5,b\n")
    with pytest.raises(IngestError, match=r"pair\(s\) of overlapping windows lie on two sides of the split"):
        ingest(
            spec(events=CSV, recordings={"files": "rec/*.fif"}, groups={"by": "stimulus"}, split={"val": 0.5}),
            root / "out",
            base=root,
            quiet=True,
        )


def test_truncated_edf_stops_the_ingest_naming_the_file(root):
    path = one(root, "sub-01.edf")
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 600)
    with pytest.raises(IngestError, match=r"sub-01.edf: the header declares 9 data records .* the file is truncated"):
        ingest(spec(), root / "out", base=root, quiet=True)
    assert not (root / "out").exists() and not (root / ".out.ingest-parts").exists()


def test_truncated_brainvision_and_a_missing_eeg_file(root):
    need("pybv")
    path = one(root, "sub-01.vhdr")
    data = root / "rec" / "sub-01.eeg"
    with open(data, "r+b") as f:
        f.truncate(data.stat().st_size // 2 + 2)
    with pytest.raises(
        IngestError,
        match=r"sub-01.eeg: holds .* samples of 6 channels; the header sub-01.vhdr "
        r"needs .* truncated",
    ):
        ingest(spec(), root / "out", base=root, quiet=True)
    with open(data, "r+b") as f:  # cut at a whole sample: the marker past the end tells
        f.truncate(6 * 4 * 500)
    with pytest.raises(IngestError, match=r"sub-01.eeg: holds 500 samples but sub-01.vmrk has a marker at sample 1401"):
        ingest(spec(), root / "out", base=root, quiet=True)
    data.unlink()
    with pytest.raises(
        IngestError,
        match=r"sub-01.vhdr: its data file 'sub-01.eeg' \(DataFile= in the header\) "
        r"is missing",
    ):
        ingest(spec(recordings={"files": "rec/*.vhdr"}), root / "out", base=root, quiet=True)
    assert path.is_file()


def test_one_group_split_advice_never_suggests_the_grouping_it_has(root):
    one(root)
    with pytest.raises(IngestError) as err:
        ingest(spec(groups={"by": "recording"}, split={"val": 0.2}), root / "out", base=root, quiet=True)
    text = str(err.value)
    assert "need 2 groups, but groups.by: recording gives 1" in text
    assert "groups.by: stimulus" in text and "group by groups.by: recording" not in text


def test_a_full_disk_gives_one_message_and_no_partial_file(root, monkeypatch):
    one(root)
    ingest(spec(), root / "out", base=root, quiet=True)
    before = np.load(root / "out" / "eeg.npy")
    one(root, "sub-02_raw.fif", distinct(planted_raw(200.0, 9.0, EVENTS), "2"))
    real = np.lib.format.open_memmap

    def full(path, *a, **k):
        if k.get("mode") == "w+":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(np.lib.format, "open_memmap", full)
    result_error = None
    try:
        ingest(spec(), root / "out", base=root, quiet=True)
    except IngestError as exc:
        result_error = str(exc)
    assert result_error is not None and result_error.startswith("ingest stopped writing '")
    assert "no space left on the device" in result_error
    assert "kept in" in result_error  # the newly finished recording is kept for the rerun
    np.testing.assert_array_equal(np.load(root / "out" / "eeg.npy"), before)  # --out as it was
    assert not [p for p in root.iterdir() if p.name.startswith(".out.tmp-")]
