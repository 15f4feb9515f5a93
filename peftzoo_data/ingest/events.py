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

    def after_resample(self, events: np.ndarray | None, first_samp: int, sfreq: float) -> "Events":
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
        events = mne.find_events(raw, stim_channel=spec.stim_channel, shortest_event=1, consecutive="increasing",
                                 mask=mask, mask_type="and", verbose="error")
    except ValueError as exc:
        stims = [c for c, t in zip(raw.ch_names, raw.get_channel_types()) if t == "stim"]
        raise IngestError(f"{where}: no trigger channel to read ({exc}); set events.stim_channel to one of {stims or raw.ch_names[:10]}") from None
    codes = spec.codes
    keep = np.ones(len(events), bool) if codes is None else np.isin(events[:, 2], list(codes))
    seen = sorted({int(c) for c in events[~keep, 2]})
    events = events[keep]
    stims = [str(c) if codes is None else codes[int(c)] for c in events[:, 2]]
    return Events((events[:, 0] - raw.first_samp) / raw.info["sfreq"], stims, samples=events, seen=[str(c) for c in seen[:8]])


def from_table(path: Path, spec: EventsSpec, where: str, delimiter: str | None = None) -> Events:
    """A CSV/TSV with an onset column (seconds) and a stimulus column; rows without a stimulus are skipped."""
    if not path.is_file():
        raise IngestError(f"{where}: event file {str(path)!r} does not exist; check events.file")
    text = path.read_text(encoding="utf-8-sig")
    if delimiter is None:
        delimiter = "\t" if path.suffix == ".tsv" else csv.Sniffer().sniff(text.splitlines()[0] if text else ",", ",;\t").delimiter
    rows = list(csv.DictReader(text.splitlines(), delimiter=delimiter))
    header = list(rows[0].keys()) if rows else []
    for column in (spec.onset_column, spec.stim_column):
        if column not in header:
            raise IngestError(f"{path}: no column {column!r} (columns: {header}); set events.onset_column / events.stim_column")
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
            raise IngestError(f"{path}, line {i}: onset {row[spec.onset_column]!r} is not a number of seconds") from None
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
