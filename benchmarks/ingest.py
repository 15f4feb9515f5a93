"""Ingest throughput: hours of EEG per minute and video frames decoded per second.

    python benchmarks/ingest.py [--quick] [--workdir DIR]

Generates files of realistic size first (not timed): a FIF recording of 64 EEG channels at 1000 Hz
for 30 minutes with an event every 10 s, and a 10-minute 24-fps 1280x720 H.264 movie (--quick:
5 minutes of EEG, 1 minute of video). Then times, in this process:
- EEG: read + pick + band-pass 0.1-75 Hz + notch 50 Hz + resample to 200 Hz + microvolts
  (peftzoo_data.ingest.eeg), as hours of recording per minute of wall time;
- video: one pass of peftzoo_data.ingest.video.frames_at over the whole movie, 8 frames per 2-s window
  at short side 128, as frames decoded per second (every frame of the file is decoded);
- end to end: `peftzoo_data.ingest.ingest` of the recording with the movie (movie mode), pairs per second.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_eeg(path: Path, minutes: float, channels: int = 64, sfreq: float = 1000.0) -> None:
    import mne

    from peftzoo_data.seed_dv import CHANNELS

    n = int(minutes * 60 * sfreq)
    names = (
        CHANNELS[:channels]
        if channels <= len(CHANNELS)
        else CHANNELS + [f"EXG{i}" for i in range(channels - len(CHANNELS))]
    )
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((channels, n), dtype=np.float32) * 20e-6).astype(np.float64)
    types = ["eeg"] * min(channels, len(CHANNELS)) + ["misc"] * max(0, channels - len(CHANNELS))
    raw = mne.io.RawArray(data, mne.create_info(names, sfreq, types), verbose="error")
    raw.set_meas_date(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    onsets = np.arange(5.0, minutes * 60 - 5, 10.0)
    raw.set_annotations(mne.Annotations(onsets, [0.0] * len(onsets), ["movie/clip"] * len(onsets)))
    raw.save(path, overwrite=True, verbose="error")


def make_video(path: Path, minutes: float, fps: int = 24, size: tuple[int, int] = (1280, 720)) -> int:
    import av

    frames = int(minutes * 60 * fps)
    base = np.random.default_rng(0).integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    base = np.kron(base, np.ones((8, 8, 1), np.uint8))  # blocky texture: realistic bitrate, fast to encode
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for i in range(frames):
            img = np.roll(base, i * 4, axis=1)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 min of EEG and 1 min of video")
    parser.add_argument("--workdir", help="where the generated files go (default: a temporary folder)")
    args = parser.parse_args()
    eeg_min, video_min = (5.0, 1.0) if args.quick else (30.0, 10.0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        eeg_path, movie = work / "rec_raw.fif", work / "rec_raw.mp4"
        t = time.perf_counter()
        make_eeg(eeg_path, eeg_min)
        n_frames = make_video(movie, video_min)
        print(
            f"generated {eeg_min:g} min of 64-ch 1000 Hz EEG and {n_frames} frames of 720p video "
            f"in {time.perf_counter() - t:.0f} s"
        )

        from peftzoo_data.ingest import eeg as eeg_io
        from peftzoo_data.ingest import ingest
        from peftzoo_data.ingest import video as video_io
        from peftzoo_data.ingest.spec import EEGSpec

        spec = EEGSpec()
        t = time.perf_counter()
        raw = eeg_io.read_raw(eeg_path)
        chans = eeg_io.choose_channels(raw, spec, "bench")
        raw, _, _ = eeg_io.preprocess(raw, chans, spec, "bench")
        data = eeg_io.microvolts(raw)
        eeg_s = time.perf_counter() - t
        hours_per_min = (eeg_min / 60) / (eeg_s / 60)

        times = np.concatenate([video_io.frame_times(s, 2.0, 8) for s in np.arange(0, video_min * 60 - 2, 2.0)])
        t = time.perf_counter()
        frames, _, _ = video_io.frames_at(movie, times, 128)
        video_s = time.perf_counter() - t

        t = time.perf_counter()
        report = ingest(
            {
                "recordings": {"files": str(eeg_path)},
                "events": {"match": "movie/(?P<stim>.+)"},
                "window": {"seconds": 2},
                "video": {"movie": str(movie), "frames": 8, "short_side": 128},
                "split": {"val": 0.0},
                "preview": 2,
            },
            work / "out",
            quiet=True,
        )
        e2e_s = time.perf_counter() - t
        result = {
            "eeg": {
                "minutes": eeg_min,
                "channels": 64,
                "sfreq": 1000,
                "seconds": round(eeg_s, 2),
                "hours_per_minute": round(hours_per_min, 2),
                "shape_out": list(data.shape),
            },
            "video": {
                "frames_decoded": n_frames,
                "seconds": round(video_s, 2),
                "frames_per_s": round(n_frames / video_s, 1),
                "windows": len(times) // 8,
                "out_shape": list(frames.shape),
            },
            "end_to_end": {
                "pairs": report["pairs"],
                "seconds": round(e2e_s, 2),
                "pairs_per_s": round(report["pairs"] / e2e_s, 2),
                "dropped": sum(r["windows_dropped_count"] for r in report["recordings"]),
            },
        }
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
