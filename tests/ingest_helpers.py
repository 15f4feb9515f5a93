"""Files for the ingest tests: EEG written by MNE's exporters with planted signals, and videos
written with PyAV whose pixels encode the frame's index (so the chosen frame can be read back)."""

from __future__ import annotations

import datetime
import os
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

CHANNELS = ["Fp1", "Fz", "Cz", "Pz", "O1", "O2"]
LEVEL_STEP = 8  # gray level of frame i is LEVEL_STEP * i + 4 (so up to 31 frames per file)


def need(module: str):
    """Import a fixture package or skip with a reason (fail on CI, where `make test` installs it)."""
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{module} is missing on CI; `make test` installs peftzoo[test], which pulls in peftzoo[ingest]",
                pytrace=False,
            )
        pytest.skip(f"{module} is not installed (pip install 'peftzoo[ingest]')", allow_module_level=True)


def frame_index(frame: np.ndarray) -> int:
    """The index a test video's frame encodes."""
    return int(round((float(frame.mean()) - 4) / LEVEL_STEP))


def write_video(path: Path, pts_seconds: list[float], size: tuple[int, int] = (64, 48), codec: str = "libx264") -> Path:
    """A video whose i-th frame (presented at pts_seconds[i]) is flat gray LEVEL_STEP*i+4."""
    av = need("av")
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        if codec == "libx264":
            stream.options = {"bf": "0"}
        for i, t in enumerate(pts_seconds):
            img = np.full((height, width, 3), LEVEL_STEP * i + 4, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def cfr(n: int, fps: float, first: float = 0.0) -> list[float]:
    return [first + i / fps for i in range(n)]


def planted_raw(
    sfreq: float,
    seconds: float,
    events: list[tuple[float, str]],
    sine_uv: float = 20.0,
    sine_hz: float = 10.0,
    pulse_uv: float = 200.0,
    pulse_at: float = 0.5,
    names=CHANNELS,
    extra_types: dict[str, str] | None = None,
    trigger: dict[str, int] | None = None,
):
    """Raw with a sine on every EEG channel, except a pulse (one sample wide) at onset + pulse_at
    of each event on channel Cz, plus annotations for the events. Channel `extra_types` are added
    (e.g. {"EOG": "eog"}) carrying noise."""
    mne = need("mne")
    n = int(round(seconds * sfreq))
    t = np.arange(n) / sfreq
    data = np.tile(sine_uv * 1e-6 * np.sin(2 * np.pi * sine_hz * t), (len(names), 1))
    from encoders.channels import normalize

    cz = next((i for i, name in enumerate(names) if normalize(name) == "CZ"), None)
    if cz is not None:
        data[cz] = 0.0
        for onset, _ in events:
            data[cz, int(round((onset + pulse_at) * sfreq))] = pulse_uv * 1e-6
    types = ["eeg"] * len(names)
    extra_types = extra_types or {}
    if extra_types:
        rng = np.random.default_rng(0)
        data = np.vstack([data, rng.standard_normal((len(extra_types), n)) * 50e-6])
        types += list(extra_types.values())
    if trigger is not None:  # a stim channel with the event's code held for 10 ms at its onset
        stim = np.zeros(n)
        for onset, desc in events:
            a = int(round(onset * sfreq))
            stim[a : a + max(1, int(sfreq // 100))] = trigger[desc]
        data = np.vstack([data, stim])
        types.append("stim")
        extra_types = {**extra_types, "STI 014": "stim"}
    info = mne.create_info(list(names) + list(extra_types), sfreq, types)
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_meas_date(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    if events and trigger is None:
        raw.set_annotations(mne.Annotations([e[0] for e in events], [0.0] * len(events), [e[1] for e in events]))
    return raw


def distinct(raw, tag: str):
    """A copy of `raw` whose content differs from any other tag's by up to 1 uV on the first
    channel's last sample (outside every window the tests cut)."""
    raw = raw.copy()
    raw._data[0, -1] += (zlib.crc32(tag.encode()) % 1000 + 1) * 1e-9
    return raw


def export(raw, path: Path) -> Path:
    """Write with MNE: .fif via raw.save, .vhdr/.edf via mne.export (pybv / edfio)."""
    mne = need("mne")
    # Each file its own content: ingest refuses a copy of one recording under another name
    # (peftzoo_data/ingest/sources.py), and tests write one planted recording to several files.
    # A last-sample offset of up to 1 uV on the first channel, outside every window the tests cut.
    raw = distinct(raw, path.name)
    if path.suffix == ".fif":
        raw.save(path, overwrite=True, verbose="error")
    else:
        need("pybv" if path.suffix == ".vhdr" else "edfio")
        mne.export.export_raw(path, raw, overwrite=True, verbose="error")
    return path
