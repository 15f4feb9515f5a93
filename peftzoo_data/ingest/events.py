"""Event onsets and stimulus ids from annotations, a trigger channel, a BIDS events.tsv or a CSV.

Every source gives onsets in seconds from the recording's first sample (MNE's `first_time`
removed). Trigger events are sample indices; they stay samples until the data are resampled, then
are resampled with them (eeg.preprocess), so they land on the new grid exactly as MNE puts them.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import numpy as np

from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.spec import EventsSpec


@dataclasses.dataclass
class Events:
    onsets: np.ndarray
    """(E,) float64 seconds from the first sample (after trigger resampling)."""
    stims: list[str]
    """Stimulus id per event."""
    samples: np.ndarray | None = None
    """trigger only: MNE events array (E, 3) at the file's rate, to resample with the data."""
    seen: list[str] = dataclasses.field(default_factory=list)
    """A few descriptions/codes that did not match (for the 'no event matched' message)."""

    def after_resample(self, events: np.ndarray | None, first_samp: int, sfreq: float) -> Events:
        if self.samples is None or events is None:
            return self
        return dataclasses.replace(self, onsets=(events[:, 0] - first_samp) / sfreq, samples=events)


def stim_id(match: re.Match) -> str:
    """The named group `stim`, else the first group, else the whole match."""
    if "stim" in match.re.groupindex:
        return match.group("stim")
    if match.re.groups:
        return match.group(1)
    return match.group(0)


def from_annotations(raw, spec: EventsSpec, skip_bad: bool = True) -> Events:
    """Annotations whose description the regex finds (a search: BrainVision prefixes `Stimulus/`)."""
    from peftzoo_data.ingest.eeg import BAD

    pattern = re.compile(spec.match)
    onsets, stims, seen = [], [], []
    for ann in raw.annotations:
        desc = str(ann["description"])
        if skip_bad and BAD.search(desc):
            continue
        m = pattern.search(desc)
        if m is None:
            if desc not in seen:
                seen.append(desc)
            continue
        onsets.append(float(ann["onset"]) - raw.first_time)
        stims.append(stim_id(m))
    return Events(np.asarray(onsets, dtype=np.float64), stims, seen=seen[:8])


BIOSEMI_TRIGGER_BITS = 2**16 - 1


def trigger_mask(spec: EventsSpec, path: Path) -> int | None:
    """The mask for find_events: `auto` is BioSemi's 16 trigger bits for a .bdf file, else none."""
    if spec.mask == "auto":
        return BIOSEMI_TRIGGER_BITS if path.suffix.lower() == ".bdf" else None
    return spec.mask


def from_trigger(raw, spec: EventsSpec, where: str, path: Path | None = None) -> Events:
    import mne

    mask = trigger_mask(spec, path or Path(where))
    try:
        events = mne.find_events(
            raw,
            stim_channel=spec.stim_channel,
            shortest_event=1,
            consecutive="increasing",
            mask=mask,
            mask_type="and",
            verbose="error",
        )
    except ValueError as exc:
        raise IngestError(_no_trigger_message(raw, spec, where, exc)) from None
    codes = spec.codes
    keep = np.ones(len(events), bool) if codes is None else np.isin(events[:, 2], list(codes))
    seen = sorted({int(c) for c in events[~keep, 2]})
    events = events[keep]
    stims = [str(c) if codes is None else codes[int(c)] for c in events[:, 2]]
    return Events(
        (events[:, 0] - raw.first_samp) / raw.info["sfreq"], stims, samples=events, seen=[str(c) for c in seen[:8]]
    )


# Names trigger channels go by across systems: Neuromag/MNE `STI 014`/`STI101`, BioSemi `Status`,
# `TRIG`/`Trigger`, EGI `DIN*`/`STI*`, `Marker`/`Event` channels of other amplifiers.
TRIGGER_NAME = re.compile(r"^(sti\b|sti\s?\d|status$|trig|din\d*$|marker|events?$|stim)", re.IGNORECASE)


def trigger_like(raw) -> list[str]:
    """Channels that look like trigger channels: typed stim, or named like one (`STI 014`, `Status`,
    `TRIG`) and not a 10-20 site (a format such as EDF types everything EEG). Never an EEG site."""
    from encoders import channels as channel_names

    def is_site(name: str) -> bool:
        try:
            channel_names.position(name)
        except channel_names.ChannelError:
            return False
        return True

    return [
        name
        for name, kind in zip(raw.ch_names, raw.get_channel_types())
        if not is_site(name) and (kind == "stim" or TRIGGER_NAME.search(name.strip()))
    ]


def _no_trigger_message(raw, spec: EventsSpec, where: str, exc: Exception) -> str:
    """Why find_events found no trigger channel, and what to do: name trigger-like channels only."""
    candidates = [c for c in trigger_like(raw) if c != spec.stim_channel]
    if spec.stim_channel is not None and spec.stim_channel not in raw.ch_names:
        problem = f"events.stim_channel {spec.stim_channel!r} is not a channel of this file"
    else:
        problem = f"no trigger channel to read ({exc})"
    if candidates:
        return f"{where}: {problem}; set events.stim_channel to the one holding the codes: {candidates}"
    n = len(raw.annotations)
    seen = sorted({str(d) for d in raw.annotations.description})[:5]
    alternative = (
        f"it has {n} annotations ({seen}): use events.source: annotations with events.match"
        if n
        else "read its events from a CSV (events.source: csv) or fix the recording"
    )
    return f"{where}: {problem}, and no channel of this file looks like a trigger channel; {alternative}"


def from_table(path: Path, spec: EventsSpec, where: str, delimiter: str | None = None) -> Events:
    """A CSV/TSV with an onset column (seconds) and a stimulus column; rows without a stimulus are skipped."""
    if not path.is_file():
        raise IngestError(f"{where}: event file {str(path)!r} does not exist; check events.file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        byte = path.read_bytes()[exc.start]
        raise IngestError(
            f"{path}, line {line}: not UTF-8 text (byte {byte:#04x}; saved as Latin-1 or Windows-1252?); "
            f"save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None
    except OSError as exc:
        raise IngestError(f"{path}: the event file could not be read ({exc.strerror or exc})") from None
    if delimiter is None:
        delimiter = (
            "\t"
            if path.suffix == ".tsv"
            else csv.Sniffer().sniff(text.splitlines()[0] if text else ",", ",;\t").delimiter
        )
    rows = list(csv.DictReader(text.splitlines(), delimiter=delimiter))
    header = list(rows[0].keys()) if rows else []
    for column in (spec.onset_column, spec.stim_column):
        if column not in header:
            raise IngestError(
                f"{path}: no column {column!r} (columns: {header}); set events.onset_column / events.stim_column"
            )
    pattern = re.compile(spec.match)
    onsets, stims, seen = [], [], []
    for i, row in enumerate(rows, start=2):
        stim = (row[spec.stim_column] or "").strip()
        if stim in ("", "n/a"):
            continue
        m = pattern.search(stim)
        if m is None:
            if stim not in seen:
                seen.append(stim)
            continue
        try:
            onset = float(row[spec.onset_column])
        except (TypeError, ValueError):
            raise IngestError(
                f"{path}, line {i}: onset {row[spec.onset_column]!r} is not a number of seconds"
            ) from None
        if not np.isfinite(onset):
            raise IngestError(
                f"{path}, line {i}: onset {row[spec.onset_column]!r} is not a finite number of seconds; "
                f"give the event's time, or leave its stimulus empty to skip the row"
            )
        onsets.append(onset)
        stims.append(stim_id(m))
    return Events(np.asarray(onsets, dtype=np.float64), stims, seen=seen[:8])


def sync_time(raw, pattern: str | None, where: str) -> float:
    """Seconds from the first sample of the first annotation matching `pattern` (0 when None)."""
    if pattern is None:
        return 0.0
    regex = re.compile(pattern)
    for ann in raw.annotations:
        if regex.search(str(ann["description"])):
            return float(ann["onset"]) - raw.first_time
    found = sorted({str(d) for d in raw.annotations.description})[:8]
    raise IngestError(f"{where}: no annotation matches video.sync {pattern!r} (found: {found}); fix video.sync")
