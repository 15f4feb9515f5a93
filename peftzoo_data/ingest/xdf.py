"""XDF recordings (Lab Streaming Layer) through pyxdf, the reference reader: an EEG stream and a
marker stream, each on its own clock, become one MNE Raw whose annotations are the markers.

pyxdf maps every stream onto the recorder's clock from the ClockOffset chunks (synchronize_clocks)
and replaces a regular stream's jittered time stamps by a linear fit (dejitter_timestamps); both
choices are eeg.xdf keys and recorded in the report. A marker's time is then placed on the EEG
stream's own sample axis by interpolating the EEG time stamps, so a marker stamped at the time of
EEG sample k lands on sample k whatever the stream's effective rate. Channel names and units come
from the stream's <desc><channels> (LSL's channel meta-data convention).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.spec import XdfStreams

# Unit strings seen in LSL channel descriptions, as MNE's names (volts per unit in eeg.UNIT_UV terms).
UNITS = {
    "microvolts": "µV",
    "microvolt": "µV",
    "µv": "µV",
    "μv": "µV",
    "uv": "µV",
    "millivolts": "mV",
    "millivolt": "mV",
    "mv": "mV",
    "volts": "V",
    "volt": "V",
    "v": "V",
    "nanovolts": "nV",
    "nanovolt": "nV",
    "nv": "nV",
}
VOLTS = {"V": 1.0, "mV": 1e-3, "µV": 1e-6, "nV": 1e-9}


@dataclasses.dataclass
class Loaded:
    raw: object
    """mne.io.RawArray in volts, markers as annotations (seconds from the first EEG sample)."""
    provenance: dict
    frames: list[tuple[np.ndarray, np.ndarray]]
    """Per displayed clip (a run of frame markers starting at index 0): (display times in seconds
    from the first EEG sample, frame indices); empty without a frame stream."""


def _text(info: dict, key: str) -> str:
    value = info.get(key) or [""]
    return str(value[0] or "")


def _describe(streams: list[dict]) -> str:
    return ", ".join(f"{_text(s['info'], 'name')!r} (type {_text(s['info'], 'type')!r})" for s in streams)


def _choose(streams: list[dict], wanted: str, what: str, key: str, where: str) -> dict:
    """The stream named `wanted`, else the one of that type; exactly one, or an IngestError."""
    for field in ("name", "type"):
        hits = [s for s in streams if _text(s["info"], field).lower() == wanted.lower()]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise IngestError(
                f"{where}: {len(hits)} streams have the {field} {wanted!r} ({_describe(hits)}); "
                f"set eeg.xdf.{key} to the name of the {what} stream"
            )
    raise IngestError(
        f"{where}: no stream named or typed {wanted!r} for the {what} (streams: {_describe(streams)}); "
        f"set eeg.xdf.{key} to one of their names"
    )


def _channels(stream: dict) -> tuple[list[str], list[str | None]]:
    info = stream["info"]
    count = int(_text(info, "channel_count") or 0)
    names, units = [f"Ch{i + 1}" for i in range(count)], [None] * count
    try:
        described = info["desc"][0]["channels"][0]["channel"]
    except (KeyError, IndexError, TypeError):
        described = []
    for i, channel in enumerate(described[:count]):
        label = _text(channel, "label") or _text(channel, "name")
        if label:
            names[i] = label
        unit = _text(channel, "unit")
        units[i] = UNITS.get(unit.strip().lower(), unit.strip()) if unit else None
    return names, units


def _positions(stamps: np.ndarray, eeg_stamps: np.ndarray, sfreq: float) -> np.ndarray:
    """Seconds from the first EEG sample of times on the common clock, through the EEG samples'
    own time stamps (linear between them, the nominal rate beyond the ends)."""
    index = np.interp(stamps, eeg_stamps, np.arange(len(eeg_stamps)), left=np.nan, right=np.nan)
    before, after = stamps < eeg_stamps[0], stamps > eeg_stamps[-1]
    index[before] = (stamps[before] - eeg_stamps[0]) * sfreq
    index[after] = len(eeg_stamps) - 1 + (stamps[after] - eeg_stamps[-1]) * sfreq
    return index / sfreq


def _frame_runs(stream: dict, eeg_stamps: np.ndarray, sfreq: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Frame markers split into clips: a new clip starts at index 0 or where the index goes down."""
    values = stream["time_series"]
    try:
        index = np.array([int(float(str(v[0]).split()[-1])) for v in values]) if len(values) else np.zeros(0, int)
    except ValueError:
        raise IngestError(
            f"frame stream {_text(stream['info'], 'name')!r}: its values must be frame numbers "
            f"(or end in one), e.g. '12' or 'frame 12'; got {values[0][0]!r}"
        ) from None
    times = _positions(np.asarray(stream["time_stamps"], float), eeg_stamps, sfreq)
    starts = [0] + [i for i in range(1, len(index)) if index[i] == 0 or index[i] < index[i - 1]]
    return [(times[a:b], index[a:b]) for a, b in zip(starts, starts[1:] + [len(index)])]


def read(path: Path, options: XdfStreams | None, where: str) -> Loaded:
    """The EEG stream as a Raw with the marker stream's strings as annotations."""
    try:
        import pyxdf
    except ImportError:
        raise IngestError(
            f"{where}: reading XDF needs pyxdf: pip install 'peftzoo[ingest]' (or pip install pyxdf)"
        ) from None
    import mne

    options = options or XdfStreams()
    try:
        streams, _ = pyxdf.load_xdf(
            str(path),
            synchronize_clocks=options.synchronize_clocks,
            dejitter_timestamps=options.dejitter_timestamps,
            verbose=False,
        )
    except Exception as exc:  # pyxdf raises plain Exceptions for damaged files
        raise IngestError(
            f"{where}: could not be read as XDF ({type(exc).__name__}: {exc}); check the file is complete"
        ) from None
    eeg = _choose(streams, options.stream, "EEG", "stream", where)
    sfreq = float(_text(eeg["info"], "nominal_srate") or 0)
    data = np.asarray(eeg["time_series"], dtype=np.float64)
    stamps = np.asarray(eeg["time_stamps"], dtype=np.float64)
    if sfreq <= 0 or data.ndim != 2 or len(stamps) < 2:
        raise IngestError(
            f"{where}: stream {_text(eeg['info'], 'name')!r} is not a regularly sampled numeric stream "
            f"(nominal rate {sfreq:g} Hz, {len(stamps)} samples); set eeg.xdf.stream to the EEG stream"
        )
    names, units = _channels(eeg)
    scale = np.array([VOLTS.get(u or "µV", 1.0) for u in units])  # LSL EEG streams are microvolts unless described
    info = mne.create_info(names, sfreq, "eeg")
    raw = mne.io.RawArray(data.T * scale[:, None], info, verbose="error")
    raw._orig_units = {n: (u or "µV") for n, u in zip(names, units)}
    effective = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    provenance = {
        "eeg_stream": _text(eeg["info"], "name"),
        "nominal_srate": sfreq,
        "effective_srate": round(effective, 6),
        "synchronize_clocks": options.synchronize_clocks,
        "dejitter_timestamps": options.dejitter_timestamps,
        "units": sorted({u or "µV (not described: assumed)" for u in units}),
        "reader": f"pyxdf {pyxdf.__version__}",
    }
    if options.markers is not None:
        markers = _choose(streams, options.markers, "markers", "markers", where)
        onsets = _positions(np.asarray(markers["time_stamps"], float), stamps, sfreq)
        descriptions = [str(v[0]) for v in markers["time_series"]]
        outside = (onsets < 0) | (onsets > len(stamps) / sfreq)
        if len(onsets) and outside.all():
            raise IngestError(
                f"{where}: all {len(onsets)} markers of stream {_text(markers['info'], 'name')!r} lie outside the EEG "
                f"stream (markers from {onsets.min():.3f} s to {onsets.max():.3f} s of a {len(stamps) / sfreq:.3f}-s "
                f"recording); "
                f"the streams' clocks disagree: keep eeg.xdf.synchronize_clocks: true (it is "
                f"{options.synchronize_clocks})"
            )
        raw.set_annotations(
            mne.Annotations(
                onsets[~outside],
                np.zeros(int((~outside).sum())),
                [d for d, out in zip(descriptions, outside) if not out],
            )
        )
        provenance["markers_outside_eeg"] = int(outside.sum())
        provenance["marker_stream"] = _text(markers["info"], "name")
        provenance["markers"] = len(onsets)
    frames = []
    if options.frames is not None:
        stream = _choose(streams, options.frames, "video frames", "frames", where)
        frames = _frame_runs(stream, stamps, sfreq)
        provenance["frame_stream"] = _text(stream["info"], "name")
        provenance["clips_displayed"] = len(frames)
    return Loaded(raw, provenance, frames)


def frame_pts(path: Path) -> np.ndarray:
    """Presentation times (seconds, sorted) of every frame of a video, from its packets (no decoding)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size)
        return np.asarray(pts, dtype=np.float64) * float(stream.time_base)


def displayed(
    times: np.ndarray, onset: float, runs: list[tuple[np.ndarray, np.ndarray]], pts: np.ndarray, where: str
) -> np.ndarray:
    """Clip times of the frames truly on screen at clip times `times` of the clip shown at `onset`
    (seconds from the first EEG sample): the frame the frame stream says was displayed last at
    that moment, at its presentation time in the file, so the decoder picks exactly that frame."""
    if not runs:
        return times
    run = min(runs, key=lambda r: abs(r[0][0] - onset))
    shown, index = run
    if abs(shown[0] - onset) > 1.0:
        raise IngestError(
            f"{where}: no run of frame markers starts within 1 s of the event at {onset:.3f} s "
            f"(nearest at {shown[0]:.3f} s); check eeg.xdf.frames"
        )
    at = np.searchsorted(shown, onset + np.asarray(times), side="right") - 1
    frames = index[np.clip(at, 0, len(index) - 1)]
    if frames.max() >= len(pts):
        raise IngestError(
            f"{where}: the frame stream shows frame {int(frames.max())}, but the clip has {len(pts)} frames"
        )
    return pts[frames] + 1e-6  # just after its pts: the decoder shows the last frame at or before a time
