"""One recording to pairs: EEG read and preprocessed, events found, windows cut, frames decoded."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from peftzoo_data.ingest import eeg as eeg_io
from peftzoo_data.ingest import events as event_io
from peftzoo_data.ingest import stimuli
from peftzoo_data.ingest import video as video_io
from peftzoo_data.ingest import windows as window_plan
from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.sources import Recording
from peftzoo_data.ingest.spec import IngestSpec

logger = logging.getLogger("peftzoo_data.ingest")

PREVIEW_CONTEXT_S = 1.0  # seconds of EEG shown before and after a previewed window


@dataclasses.dataclass
class Part:
    """What one recording contributes: its pairs, their provenance and what was dropped."""

    eeg: np.ndarray  # (W, C, T) float32 microvolts
    video: np.ndarray  # (W, F, H, W, 3) uint8
    channels: list[str]
    pairs: list[dict]
    report: dict
    previews: list[dict]


def _template_fields(rec: Recording) -> dict[str, str]:
    return {"dir": str(rec.path.parent), "stem": rec.path.name.split(".")[0], "name": rec.path.name, **rec.entities}


def _format(template: str, fields: dict[str, str], key: str, base: Path) -> Path:
    try:
        text = template.format(**fields)
    except KeyError as exc:
        raise IngestError(
            f"{key}: {template!r} uses {{{exc.args[0]}}}, which is not known (known: {sorted(fields)})"
        ) from None
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def events_of(rec: Recording, spec: IngestSpec):
    """The event source of the recording's set (recordings[i].events), else the spec's."""
    return rec.events or spec.events


def find_events(raw, rec: Recording, spec: IngestSpec, base: Path) -> event_io.Events:
    where = rec.name
    events = events_of(rec, spec)
    src = events.source
    if src == "annotations":
        return event_io.from_annotations(raw, events)
    if src == "trigger":
        return event_io.from_trigger(raw, events, where, rec.path)
    if src == "bids":
        if rec.bids_path is None:
            raise IngestError("events.source: bids needs recordings.bids (a BIDS dataset)")
        tsv = rec.bids_path.copy().update(suffix="events", extension=".tsv").fpath
        return event_io.from_table(Path(tsv), events, where, delimiter="\t")
    path = _format(events.file, _template_fields(rec), "events.file", base)
    return event_io.from_table(path, events, where)


@dataclasses.dataclass
class _Signal:
    """The recording's EEG once preprocessed, with its events and what the video placement needs from it."""

    chans: eeg_io.Channels
    prepared: eeg_io.Prepared
    found: event_io.Events
    bad: list
    sync: float
    shown_frames: list


def _read(rec: Recording, spec: IngestSpec, where: str, report: dict):
    """Open the recording lazily; an XDF file also brings its displayed-frame markers and provenance."""
    if rec.path.suffix.lower() != ".xdf":
        return eeg_io.read_raw(rec.path, rec.bids_path, preload=False), []
    from peftzoo_data.ingest import xdf

    loaded = xdf.read(rec.path, spec.eeg.xdf, where)
    report["xdf"] = loaded.provenance
    return loaded.raw, loaded.frames


def _trigger_channels(rec: Recording, spec: IngestSpec) -> set[str]:
    """A trigger channel named in the spec is never EEG, whatever type the format gave it."""
    events = events_of(rec, spec)
    return {events.stim_channel} if events.source == "trigger" and events.stim_channel else set()


def _bad_spans(raw, chans, spec: IngestSpec, rec: Recording) -> list:
    """Annotated bad spans plus non-finite samples; a recording that cannot stream is loaded here to find them."""
    if raw.preload or eeg_io.streamable(raw, chans, spec.eeg):  # streamed: read block by block in preprocess
        return eeg_io.bad_intervals(raw) + (eeg_io.nonfinite_spans(raw, chans.kept) if raw.preload else [])
    eeg_io.load(raw, rec.path)
    return eeg_io.bad_intervals(raw) + eeg_io.nonfinite_spans(raw, chans.kept)


def _prepare_signal(rec: Recording, spec: IngestSpec, base: Path, report: dict) -> _Signal:
    """Read and preprocess the EEG; the raw recording is released on return, keeping only the prepared array."""
    where = rec.name
    raw, shown_frames = _read(rec, spec, where, report)
    found = find_events(raw, rec, spec, base)
    chans = eeg_io.choose_channels(raw, spec.eeg, where, triggers=_trigger_channels(rec, spec))
    sync = event_io.sync_time(raw, spec.video.sync, where) if spec.video.movie is not None else 0.0
    relative = None if found.samples is None else found.samples - np.array([raw.first_samp, 0, 0])
    bad = _bad_spans(raw, chans, spec, rec)
    prepared = eeg_io.preprocess(raw, chans, spec.eeg, where, relative)
    bad += prepared.nonfinite
    del raw
    found = found.after_resample(prepared.events, 0, prepared.sfreq)
    return _Signal(chans, prepared, found, bad, sync, shown_frames)


def _require_events(found: event_io.Events, events, where: str) -> None:
    """No event at all is a spec mistake; name the setting to fix (codes for triggers, the pattern otherwise)."""
    if len(found.onsets) == 0 and events.source == "trigger":
        raise IngestError(
            f"{where}: no trigger event with a code in events.codes {sorted(events.codes or {})} "
            f"(codes found: {found.seen or 'none'}); "
            f"fix events.codes, events.stim_channel or events.mask"
        )
    if len(found.onsets) == 0:
        raise IngestError(
            f"{where}: no event matches events.match {events.match!r} (source {events.source}; "
            f"seen instead: {found.seen}); fix the pattern, e.g. match: 'movie/(?P<stim>\\w+)'"
        )


def _check_signal(report: dict, sig: _Signal, where: str) -> None:
    """Record the signal checks (units, amplitude, flat channels) in the report, which warn as they go."""
    data = sig.prepared.data
    report["warnings"] = eeg_io.check_units(data, sig.prepared.done["units"], where)
    sd = eeg_io.channel_sd(data)
    report["amplitude_uv"] = eeg_io.amplitude(data, where, sd)
    report["flat_channels"] = eeg_io.flat_channels(data, sig.chans.names, where, sd)


@dataclasses.dataclass
class _VideoPlan:
    """Which windows keep video, the file and times each needs, and what was learnt about each file on the way."""

    kept: list = dataclasses.field(default_factory=list)
    per_window: list = dataclasses.field(default_factory=list)
    infos: dict = dataclasses.field(default_factory=dict)
    pts_of: dict = dataclasses.field(default_factory=dict)


def _window_source(w, spec: IngestSpec, fields: dict, base: Path, sync: float) -> tuple[Path, float]:
    """The video file a window shows and the time in it where the window starts."""
    if spec.video.clips is not None:
        return stimuli.clip_path(spec.video, w.stim, fields, base), w.start - w.onset
    return _format(spec.video.movie, fields, "video.movie", base), w.start - sync + spec.video.sync_offset


def _window_times(w, path: Path, t0: float, spec: IngestSpec, sig: _Signal, plan: _VideoPlan, where: str):
    """The frame times a window needs; with XDF frame markers, the frames that were truly displayed."""
    times = video_io.frame_times(t0, spec.window.seconds, spec.video.frames)
    if sig.shown_frames and spec.video.clips is not None:
        from peftzoo_data.ingest import xdf

        if path not in plan.pts_of:
            plan.pts_of[path] = xdf.frame_pts(path)
        times = xdf.displayed(times, w.onset, sig.shown_frames, plan.pts_of[path], where)
    return times


def _out_of_video(times, path: Path, info) -> str | None:
    """Why a window's frames fall outside its video, or None when they all lie inside it."""
    if times[0] < 0:  # before the clip starts (negative offset) or the movie's sync point
        return f"the window needs video at {times[0]:.3f} s, before {path.name} starts (time 0)"
    if times[-1] >= info.end:
        return f"video {path.name} ends at {info.end:.3f} s; the window needs frames up to {times[-1]:.3f} s"
    return None


def _plan_video(planned, drops: list, rec: Recording, spec: IngestSpec, base: Path, sig: _Signal) -> _VideoPlan:
    """Which file and which times each window needs; files are checked before anything is decoded."""
    where = rec.name
    fields = _template_fields(rec)
    plan = _VideoPlan()
    for w in planned:
        path, t0 = _window_source(w, spec, fields, base, sig.sync)
        row = {"event": w.event, "stim": w.stim, "onset": round(w.onset, 6), "start": round(w.start, 6)}
        if not path.is_file():  # a movie (clips are checked by stimuli.clip_path): a missing file is named
            raise IngestError(
                f"{where}: video.movie {str(path)!r} does not exist; copy the movie there or fix video.movie"
            )
        if path not in plan.infos:
            plan.infos[path] = video_io.probe(path)
        times = _window_times(w, path, t0, spec, sig, plan, where)
        reason = _out_of_video(times, path, plan.infos[path])
        if reason is not None:
            drops.append({**row, "reason": reason})
            continue
        plan.kept.append(w)
        plan.per_window.append((path, times))
    return plan


def _decode(plan: _VideoPlan, spec: IngestSpec, progress: bool, where: str):
    """Decode each file once for all the times its windows need; returns frames, their pts and the files used."""
    frames = [None] * len(plan.kept)
    shown = [None] * len(plan.kept)
    by_file: dict[Path, list[int]] = {}
    for i, (path, _) in enumerate(plan.per_window):
        by_file.setdefault(path, []).append(i)
    sizes = set()
    f = spec.video.frames
    for path, idx in by_file.items():
        times = np.concatenate([plan.per_window[i][1] for i in idx])
        pixels, pts, _ = video_io.frames_at(path, times, spec.video.short_side, progress=progress, size=spec.video.size)
        sizes.add(pixels.shape[1:3])
        for j, i in enumerate(idx):
            frames[i] = pixels[j * f : (j + 1) * f]
            shown[i] = pts[j * f : (j + 1) * f]
    if len(sizes) > 1:
        raise IngestError(
            f"{where}: the videos have different shapes after resizing ({sorted(sizes)}); "
            f"set video.size: [height, width] to resize and centre-crop them to one shape"
        )
    return frames, shown, by_file


def _pairs(rec: Recording, plan: _VideoPlan, shown: list) -> list[dict]:
    """One provenance row per pair: where its EEG and its frames came from."""
    return [
        {
            "recording": rec.name,
            **rec.entities,
            "event": w.event,
            "repeat": w.repeat,
            "stim": w.stim,
            "onset": round(w.onset, 6),
            "start": round(w.start, 6),
            "video": str(path),
            "video_times": [round(float(t), 4) for t in times],
            "frame_pts": [round(float(t), 4) for t in pts],
        }
        for w, (path, times), pts in zip(plan.kept, plan.per_window, shown)
    ]


def _previews(data: np.ndarray, sfreq: float, length: int, plan: _VideoPlan, video, pairs, count: int) -> list[dict]:
    """The first windows with some EEG context around them, for the ingest preview."""
    previews = []
    context = int(round(PREVIEW_CONTEXT_S * sfreq))
    for i in range(min(count, len(plan.kept))):
        a = max(0, plan.kept[i].sample - context)
        b = min(data.shape[1], plan.kept[i].sample + length + context)
        start = plan.kept[i].sample
        previews.append(
            {
                "eeg": data[:, a:b].copy(),
                "first": a,
                "window": [start, start + length],
                "frames": video[i],
                "times": plan.per_window[i][1],
                "pair": pairs[i],
            }
        )
    return previews


def ingest_recording(rec: Recording, spec: IngestSpec, base: Path, progress: bool = False) -> Part:
    """Turn one recording into EEG/video pairs, with a report of what was found, checked and dropped."""
    where = rec.name
    report: dict = {"recording": rec.name, "entities": rec.entities}
    sig = _prepare_signal(rec, spec, base, report)
    chans, prepared, found = sig.chans, sig.prepared, sig.found
    report.update(channels_dropped=chans.dropped, preprocessing=prepared.done, events_found=len(found.onsets))
    _require_events(found, events_of(rec, spec), where)
    sfreq = prepared.sfreq
    data = prepared.data
    _check_signal(report, sig, where)
    length = int(round(spec.window.seconds * sfreq))
    planned, drops = window_plan.plan(found.onsets, found.stims, spec.window, sfreq, data.shape[1], sig.bad)
    plan = _plan_video(planned, drops, rec, spec, base, sig)
    report["windows_made"] = len(plan.kept)
    report["windows_dropped"] = drops
    if not plan.kept:
        return Part(
            np.zeros((0, len(chans.names), length), np.float32),
            np.zeros((0, spec.video.frames, 0, 0, 3), np.uint8),
            chans.names,
            [],
            report,
            [],
        )
    frames, shown, by_file = _decode(plan, spec, progress, where)
    eeg = window_plan.cut(data, plan.kept, length)
    video = np.stack(frames)
    pairs = _pairs(rec, plan, shown)
    previews = _previews(data, sfreq, length, plan, video, pairs, spec.preview)
    report["videos"] = sorted(str(p) for p in by_file)
    return Part(eeg, video, chans.names, pairs, report, previews)
