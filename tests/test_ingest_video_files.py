"""Ingest, video files beyond H.264 mp4: other codecs and containers, odd and portrait sizes, a
rotated phone-style file, variable frame rate in Matroska, and files that cannot be used (cut
short, audio only) which stop the ingest with one message and write nothing."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from ingest_helpers import LEVEL_STEP, cfr, export, frame_index, need, planted_raw

av = need("av")
need("mne")

from peftzoo_data.ingest import IngestError, ingest  # noqa: E402
from peftzoo_data.ingest import video as video_io  # noqa: E402


def write(
    path: Path,
    pts: list[float],
    size=(64, 48),
    codec="libx264",
    pix_fmt="yuv420p",
    tick=Fraction(1, 1000),
    audio_only: bool = False,
) -> Path:
    """Frame i is gray LEVEL_STEP*i+4 with a white top band and a black left half (so orientation
    can be read back), presented at pts[i] in units of `tick`."""
    width, height = size
    with av.open(str(path), "w") as container:
        if audio_only:
            stream = container.add_stream("aac", rate=48000)
            for k in range(20):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 48000, k * 1024
                for packet in stream.encode(frame):
                    container.mux(packet)
        else:
            stream = container.add_stream(
                codec, rate=round(1 / tick) if tick.numerator == 1 and tick.denominator < 100 else 25
            )
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            stream.time_base = stream.codec_context.time_base = tick
            for i, t in enumerate(pts):
                img = np.full((height, width, 3), LEVEL_STEP * i + 4, dtype=np.uint8)
                img[: height // 4, width // 2 :] = 255
                img[:, : width // 4] = 0
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts, frame.time_base = int(round(t / tick)), tick
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def index(frame: np.ndarray) -> int:
    """The frame's index from its gray middle (away from the band and the black strip)."""
    h, w = frame.shape[:2]
    return frame_index(frame[h // 2 :, w // 2 :])


def expected(pts, times) -> list[int]:
    return [max(0, int(np.searchsorted(np.asarray(pts), t, side="right")) - 1) for t in times]


TIMES = np.array([0.05, 0.5, 1.03, 1.99, 2.9])


@pytest.mark.parametrize(
    "name,codec,pix_fmt,tick",
    [
        ("clip.avi", "mpeg4", "yuv420p", Fraction(1, 10)),
        ("clip.webm", "libvpx-vp9", "yuv420p", Fraction(1, 1000)),
        ("clip.mkv", "mjpeg", "yuvj420p", Fraction(1, 1000)),
    ],
)
def test_other_codecs_and_containers(tmp_path, name, codec, pix_fmt, tick):
    pts = cfr(30, 10)
    path = write(tmp_path / name, pts, codec=codec, pix_fmt=pix_fmt, tick=tick)
    info = video_io.probe(path)
    assert info.frames == 30 and info.end == pytest.approx(3.0, abs=0.01)
    frames, shown, _ = video_io.frames_at(path, TIMES, 16)
    assert [index(f) for f in frames] == expected(pts, TIMES) and frames.shape == (5, 16, 22, 3)


def test_variable_frame_rate_in_matroska(tmp_path):
    pts = [0, 0.02, 0.1, 0.5, 0.52, 1.0, 1.9, 2.0, 2.95, 3.0]
    path = write(tmp_path / "vfr.mkv", pts, codec="mjpeg", pix_fmt="yuvj420p")
    frames, shown, _ = video_io.frames_at(path, TIMES, 16)
    assert [index(f) for f in frames] == expected(pts, TIMES) == [1, 3, 5, 6, 7]
    assert shown.tolist() == [0.02, 0.5, 1.0, 1.9, 2.0]


@pytest.mark.parametrize("size,out", [((321, 179), (16, 28)), ((48, 64), (22, 16))])
def test_odd_and_portrait_sizes_keep_their_aspect(tmp_path, size, out):
    path = write(tmp_path / "odd.mkv", cfr(10, 10), size=size, codec="mjpeg", pix_fmt="yuvj420p")
    frames, _, _ = video_io.frames_at(path, np.array([0.45]), 16)
    assert frames.shape == (1, *out, 3) and index(frames[0]) == 4
    assert frames[0, : out[0] // 8, -2:].min() > 200 and frames[0, :, 0].max() < 40  # band top right, strip left


def rotate_mp4(path: Path) -> None:
    """Write a 90-degree-clockwise display matrix into the mp4's track header (tkhd), as a phone
    held upright stores its landscape-coded frames."""
    data = bytearray(path.read_bytes())
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    at = data.find(identity, data.find(b"tkhd"))
    assert at > 0
    data[at : at + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))


def test_rotated_video_is_turned_upright(tmp_path):
    path = write(tmp_path / "phone.mp4", cfr(10, 10))  # coded 64x48 landscape
    rotate_mp4(path)
    frames, _, _ = video_io.frames_at(path, np.array([0.45]), 16)
    upright = frames[0]
    assert upright.shape == (22, 16, 3)  # shown 48x64 portrait, short side 16
    # turned clockwise: the black left strip is now at the top, the top band on the right
    assert upright[0].max() < 40 and upright[-6:, -2:].min() > 200 and upright[-4:, :2].max() < 200
    assert frame_index(upright[8:16, 2:12]) == 4


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    (tmp_path / "rec").mkdir()
    (tmp_path / "stim").mkdir()
    export(planted_raw(250.0, 11.0, [(2.0, "movie/a"), (5.0, "movie/b")]), tmp_path / "rec" / "s01_raw.fif")
    return tmp_path


SPEC = {
    "recordings": {"files": "rec/*.fif"},
    "events": {"match": r"movie/(?P<stim>\w+)"},
    "window": {"seconds": 2},
    "video": {"clips": "stim/{stim}.mkv", "frames": 2, "short_side": 16},
    "split": {"val": 0.0},
    "preview": 0,
}


def test_a_truncated_video_stops_the_ingest_with_one_message(recording):
    for name in "ab":
        write(recording / "stim" / f"{name}.mkv", cfr(30, 10), codec="mjpeg", pix_fmt="yuvj420p")
    whole = (recording / "stim" / "b.mkv").read_bytes()
    (recording / "stim" / "b.mkv").write_bytes(whole[: int(len(whole) * 0.6)])  # a copy cut short
    with pytest.raises(IngestError) as err:
        ingest(SPEC, recording / "out", base=recording, quiet=True)
    message = str(err.value)
    assert "b.mkv: the header declares 2.940 s but the data stop at" in message and "truncated" in message
    assert "Traceback" not in message and not (recording / "out").exists()


def test_an_audio_only_file_is_named(recording):
    write(recording / "stim" / "a.mkv", [], audio_only=True)
    write(recording / "stim" / "b.mkv", cfr(30, 10), codec="mjpeg", pix_fmt="yuvj420p")
    with pytest.raises(IngestError, match=r"a.mkv: has no video stream \(it holds audio\)"):
        ingest(SPEC, recording / "out", base=recording, quiet=True)
    assert not (recording / "out").exists()


def test_a_damaged_video_stops_the_ingest_with_one_message(recording):
    for name in "ab":
        write(recording / "stim" / f"{name}.mkv", cfr(30, 10), codec="mjpeg", pix_fmt="yuvj420p")
    data = bytearray((recording / "stim" / "b.mkv").read_bytes())
    middle = len(data) // 3
    data[middle : middle + 3000] = bytes((x * 7 + 13) % 256 for x in data[middle : middle + 3000])  # scrambled bytes
    (recording / "stim" / "b.mkv").write_bytes(bytes(data))
    with pytest.raises(IngestError, match=r"b.mkv: (reading the video|decoding) failed .*damaged") as err:
        ingest(SPEC, recording / "out", base=recording, quiet=True)
    assert "Traceback" not in str(err.value) and not (recording / "out").exists()
