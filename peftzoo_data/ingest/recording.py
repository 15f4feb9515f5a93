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
        raise IngestError(f"{key}: {template!r} uses {{{exc.args[0]}}}, which is not known (known: {sorted(fields)})") from None
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


def ingest_recording(rec: Recording, spec: IngestSpec, base: Path, progress: bool = False) -> Part:
    where = rec.name
    report: dict = {"recording": rec.name, "entities": rec.entities}
    shown_frames = []
    if rec.path.suffix.lower() == ".xdf":
        from peftzoo_data.ingest import xdf

        loaded = xdf.read(rec.path, spec.eeg.xdf, where)
        raw, shown_frames, report["xdf"] = loaded.raw, loaded.frames, loaded.provenance
    else:
        raw = eeg_io.read_raw(rec.path, rec.bids_path, preload=False)
    found = find_events(raw, rec, spec, base)
    # a trigger channel named in the spec is never EEG, whatever type the format gave it
    events = events_of(rec, spec)
    trigger = {events.stim_channel} if events.source == "trigger" and events.stim_channel else set()
    chans = eeg_io.choose_channels(raw, spec.eeg, where, triggers=trigger)
    sync = event_io.sync_time(raw, spec.video.sync, where) if spec.video.movie is not None else 0.0
    relative = None if found.samples is None else found.samples - np.array([raw.first_samp, 0, 0])
    if raw.preload or eeg_io.streamable(raw, chans, spec.eeg):  # streamed: read block by block in preprocess
        bad = eeg_io.bad_intervals(raw) + (eeg_io.nonfinite_spans(raw, chans.kept) if raw.preload else [])
    else:
        eeg_io.load(raw, rec.path)
        bad = eeg_io.bad_intervals(raw) + eeg_io.nonfinite_spans(raw, chans.kept)
    prepared = eeg_io.preprocess(raw, chans, spec.eeg, where, relative)
    bad += prepared.nonfinite
    del raw
    found = found.after_resample(prepared.events, 0, prepared.sfreq)
    report.update(channels_dropped=chans.dropped, preprocessing=prepared.done, events_found=len(found.onsets))
    if len(found.onsets) == 0 and events.source == "trigger":
        raise IngestError(f"{where}: no trigger event with a code in events.codes {sorted(events.codes or {})} "
                          f"(codes found: {found.seen or 'none'}); fix events.codes, events.stim_channel or events.mask")
    if len(found.onsets) == 0:
        raise IngestError(
            f"{where}: no event matches events.match {events.match!r} (source {events.source}; "
            f"seen instead: {found.seen}); fix the pattern, e.g. match: 'movie/(?P<stim>\\w+)'"
        )
    sfreq = prepared.sfreq
    data = prepared.data
    report["warnings"] = eeg_io.check_units(data, prepared.done["units"], where)
    report["amplitude_uv"] = eeg_io.amplitude(data, where)
    report["flat_channels"] = eeg_io.flat_channels(data, chans.names, where)
    length = int(round(spec.window.seconds * sfreq))
    planned, drops = window_plan.plan(found.onsets, found.stims, spec.window, sfreq, data.shape[1], bad)

    # Video: which file and which times each window needs; check files before decoding anything.
    fields = _template_fields(rec)
    per_window, infos, pts_of = [], {}, {}
    kept = []
    for w in planned:
        if spec.video.clips is not None:
            path = stimuli.clip_path(spec.video, w.stim, fields, base)
            t0 = w.start - w.onset
        else:
            path = _format(spec.video.movie, fields, "video.movie", base)
            t0 = w.start - sync + spec.video.sync_offset
        row = {"event": w.event, "stim": w.stim, "onset": round(w.onset, 6), "start": round(w.start, 6)}
        if not path.is_file():  # a movie (clips are checked by stimuli.clip_path): a missing file is named
            raise IngestError(f"{where}: video.movie {str(path)!r} does not exist; copy the movie there or fix "
                              f"video.movie")
        if path not in infos:
            infos[path] = video_io.probe(path)
        times = video_io.frame_times(t0, spec.window.seconds, spec.video.frames)
        if shown_frames and spec.video.clips is not None:  # XDF frame markers: the frames truly displayed
            from peftzoo_data.ingest import xdf

            if path not in pts_of:
                pts_of[path] = xdf.frame_pts(path)
            times = xdf.displayed(times, w.onset, shown_frames, pts_of[path], where)
        if times[0] < 0:  # before the clip starts (negative offset) or the movie's sync point
            drops.append({**row, "reason": f"the window needs video at {times[0]:.3f} s, before {path.name} starts (time 0)"})
            continue
        if times[-1] >= infos[path].end:
            drops.append({**row, "reason": f"video {path.name} ends at {infos[path].end:.3f} s; the window needs frames up to {times[-1]:.3f} s"})
            continue
        kept.append(w)
        per_window.append((path, times))
    report["windows_made"] = len(kept)
    report["windows_dropped"] = drops
    if not kept:
        return Part(np.zeros((0, len(chans.names), length), np.float32), np.zeros((0, spec.video.frames, 0, 0, 3), np.uint8),
                    chans.names, [], report, [])

    # Decode each file once for all the times its windows need.
    frames = [None] * len(kept)
    shown = [None] * len(kept)
    by_file: dict[Path, list[int]] = {}
    for i, (path, _) in enumerate(per_window):
        by_file.setdefault(path, []).append(i)
    sizes = set()
    for path, idx in by_file.items():
        times = np.concatenate([per_window[i][1] for i in idx])
        pixels, pts, _ = video_io.frames_at(path, times, spec.video.short_side, progress=progress, size=spec.video.size)
        sizes.add(pixels.shape[1:3])
        f = spec.video.frames
        for j, i in enumerate(idx):
            frames[i] = pixels[j * f:(j + 1) * f]
            shown[i] = pts[j * f:(j + 1) * f]
    if len(sizes) > 1:
        raise IngestError(f"{where}: the videos have different shapes after resizing ({sorted(sizes)}); set video.size: [height, width] to resize and centre-crop them to one shape")
    eeg = window_plan.cut(data, kept, length)
    video = np.stack(frames)
    pairs = []
    for w, (path, times), pts in zip(kept, per_window, shown):
        pairs.append({
            "recording": rec.name, **rec.entities, "event": w.event, "repeat": w.repeat, "stim": w.stim,
            "onset": round(w.onset, 6), "start": round(w.start, 6), "video": str(path),
            "video_times": [round(float(t), 4) for t in times], "frame_pts": [round(float(t), 4) for t in pts],
        })
    previews = []
    context = int(round(PREVIEW_CONTEXT_S * sfreq))
    for i in range(min(spec.preview, len(kept))):
        a = max(0, kept[i].sample - context)
        b = min(data.shape[1], kept[i].sample + length + context)
        previews.append({"eeg": data[:, a:b].copy(), "first": a, "window": [kept[i].sample, kept[i].sample + length],
                         "frames": video[i], "times": per_window[i][1], "pair": pairs[i]})
    report["videos"] = sorted(str(p) for p in by_file)
    return Part(eeg, video, chans.names, pairs, report, previews)
