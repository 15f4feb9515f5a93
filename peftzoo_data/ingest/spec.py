"""The ingest spec: what to read, how to preprocess, how events become windows and pairs.

Validated with pydantic (unknown keys refused, every error located as `section.key: ...`), so the
same model serves `python -m recipes.ingest SPEC` and the `recordings` dataset component's inline
`data:` block; `python -m recipes.ingest --schema` prints its JSON Schema for editors.
Paths are relative to the spec file's folder (or, inline in a recipe, to the recipe's folder).
`recordings` is one set of files or a list of sets, each with its own `events` where they differ;
`video.clips` is the stimulus map (peftzoo_data/ingest/stimuli.py). Numbers follow the recipe's rules
(registry/numbers.py): finite, no true/false for a number, and bounded where a typo would hang.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from peftzoo_data.ingest.errors import IngestError
from registry.numbers import StrictNumbers

# LaBraM: 1-s patches (200 samples at 200 Hz) and a 16-row time embedding
# (docs/reference/background.md, "LaBraM's input").
LABRAM_MAX_SECONDS = 16


# Sizes past which a value is a typo, not a study: decoding 10^9 frames per window or resizing to a
# 10^6-pixel side would run for hours or exhaust memory before failing.
MAX_FRAMES = 512
MAX_SIDE = 4096
MAX_WINDOWS_PER_EVENT = 10_000


class _Strict(StrictNumbers):
    """The recipe's number rules (registry/numbers.py): finite, no booleans as numbers, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a valid regular expression ({exc})") from None
    return value


class EventsSpec(_Strict):
    """Where event onsets and stimulus ids come from."""

    source: Literal["annotations", "trigger", "bids", "csv"] = "annotations"
    match: str = r"(?P<stim>.+)"
    """annotations/bids: regex searched in the description (BrainVision prefixes `Stimulus/`),
    its group `stim` (else the first group, else the whole match) is the stimulus id."""
    stim_channel: str | None = None
    """trigger: the trigger channel (None: MNE's default STI 014 / first stim channel)."""
    codes: dict[int, str] | None = None
    """trigger: code -> stimulus id; codes not listed are ignored. None: the code itself is the id."""
    mask: int | Literal["auto"] | None = "auto"
    """trigger: bits of the trigger value that carry the code (MNE's find_events mask, `and`).
    `auto`: 65535 for BDF files, whose BioSemi Status channel holds the code in its 16 low bits and
    system flags (CMS in range, battery) above them (MNE's read_raw_bdf notes); none otherwise."""
    file: str | None = None
    """csv: template of the event file per recording, `{dir}/{stem}_events.csv` (`dir`, `stem`, `name`)."""
    onset_column: str = "onset"
    """csv/bids: the onset column (seconds from the recording's first sample)."""
    stim_column: str = "stim_file"
    """csv/bids: the column holding the stimulus id (BIDS: stim_file, trial_type or value)."""

    _regex = field_validator("match")(classmethod(lambda cls, v: _check_regex(v)))

    @field_validator("mask")
    @classmethod
    def _positive_mask(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError(
                f"mask {value} keeps no bit of the trigger value; give a positive bit mask (65535: 16 bits) or null"
            )
        return value

    @model_validator(mode="after")
    def _needs(self) -> EventsSpec:
        if self.source == "csv" and not self.file:
            raise ValueError("source csv needs `file`, a template such as {dir}/{stem}_events.csv")
        return self


class BidsSource(_Strict):
    root: str
    """BIDS root folder (the one holding dataset_description.json)."""
    task: str | None = None
    subjects: list[str] | None = None
    sessions: list[str] | None = None
    datatype: Literal["eeg", "meg", "ieeg"] = "eeg"


class RecordingsSpec(_Strict):
    """Which recordings to read: file globs (any format `mne.io.read_raw` reads) or a BIDS dataset."""

    files: list[str] | None = None
    """Glob patterns of EEG files (`raw/*.vhdr`, `sub-*/eeg/*.edf`); a single string is one pattern."""
    bids: BidsSource | None = None
    entities: str | None = None
    """Regex on the file name with named groups `subject`, `session`, `block` (and any other),
    e.g. `sub(?P<subject>\\d+)_run(?P<block>\\d+)`; BIDS recordings take them from BIDS."""
    events: EventsSpec | None = None
    """This set's own event source (a stim channel here, annotations there); None: the spec's `events`."""
    duplicates: Literal["refuse", "allow"] = "refuse"
    """A recording whose data file has the same content as another one under another name (a copy):
    refused, as it would count one session twice (and may put it on both sides of a split); `allow`
    keeps both. The same file reached twice (two patterns, a symlink) is always read once."""

    @field_validator("files", mode="before")
    @classmethod
    def _one_pattern(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    _regex = field_validator("entities")(classmethod(lambda cls, v: _check_regex(v)))

    @model_validator(mode="after")
    def _one_source(self) -> RecordingsSpec:
        if (self.files is None) == (self.bids is None):
            raise ValueError("give exactly one of `files` (glob patterns) or `bids` (a BIDS root)")
        if self.files is not None and not self.files:
            raise ValueError("`files` is empty; give at least one glob pattern such as raw/*.edf")
        return self


class XdfStreams(_Strict):
    """Streams of an XDF file (peftzoo_data/ingest/xdf.py), each chosen by its name or its type."""

    stream: str = "EEG"
    """The EEG stream: its name, else its type (LSL's type `EEG`)."""
    markers: str | None = "Markers"
    """The marker stream whose strings are the events (matched by events.match): name, else type;
    None: no events from markers."""
    frames: str | None = None
    """A video frame-marker stream (one marker per displayed frame, its value the frame's index in
    the current clip, 0 starting a clip): each window's frames are then the ones truly displayed."""
    synchronize_clocks: bool = True
    """pyxdf's clock synchronization from the ClockOffset chunks (streams recorded on other machines)."""
    dejitter_timestamps: bool = True
    """pyxdf's dejittering of regularly sampled streams (a linear fit of their time stamps)."""


class EEGSpec(_Strict):
    """Channel choice and LaBraM's preprocessing (band-pass 0.1-75 Hz, notch, 200 Hz, microvolts)."""

    channels: list[str] | None = None
    """Keep only these channels (after renaming), in this order; None keeps every EEG channel."""
    rename: dict[str, str] = Field(default_factory=dict)
    """File channel name -> 10-20 name, applied before normalization (`{"sine 8 Hz": Fz}`)."""
    exclude: list[str] = Field(
        default_factory=lambda: ["HEO", "VEO", "HEOG", "VEOG", "EOG", "ECG", "EKG", "EMG", "M1", "M2"]
    )
    """Names dropped even when typed EEG (BrainVision keeps no types); compared after normalization."""
    l_freq: float | None = Field(0.1, ge=0)
    h_freq: float | None = Field(75.0, gt=0)
    notch: list[float] = Field(default_factory=lambda: [50.0])
    """Line-noise frequencies (50 in Europe/Asia, 60 in the Americas); [] for none."""
    sfreq: float = Field(200.0, gt=0)
    """Target sampling rate; LaBraM was trained at 200 Hz."""
    reference: Literal["average"] | None = None
    """`average` re-references to the common average; None keeps the file's reference."""
    unknown_channels: Literal["error", "drop"] = "error"
    """A channel with no 10-20 name: stop with a message (default), or drop it and report it."""
    bads: Literal["interpolate", "drop", "keep"] = "interpolate"
    """Channels the file marks bad (FIF `info["bads"]`, BIDS channels.tsv): `interpolate` them from
    their neighbours by spherical splines (MNE's interpolate_bads; standard 10-05 positions when
    the file has none), so every recording keeps the same channels; `drop` them (recordings then
    differ, so list eeg.channels); or `keep` the recorded signal."""
    projectors: Literal["apply", "ignore"] = "apply"
    """SSP projectors stored in the file (FIF: an average reference, EOG/ECG projections): apply
    them as MNE's Epochs do by default, or ignore them."""
    unit: Literal["V", "mV", "µV", "μV", "uV", "nV"] | None = None
    """The unit the file's numbers are really in, when its header states a wrong one (a GDF whose
    µ byte reads as volts); None trusts the header. Recorded in the report's preprocessing.units."""
    scale: float | None = Field(None, gt=0)
    """A factor applied to the microvolts as read (after eeg.unit), e.g. 1e-6 for a file read
    10^6 times too large; None for none."""
    xdf: XdfStreams | None = None
    """XDF recordings (Lab Streaming Layer): which streams are the EEG, the markers, the frames
    (None: the defaults of XdfStreams)."""

    @field_validator("notch", mode="before")
    @classmethod
    def _notch_list(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, (int, float)) else value

    @model_validator(mode="after")
    def _band(self) -> EEGSpec:
        if self.l_freq is not None and self.h_freq is not None and self.l_freq >= self.h_freq:
            raise ValueError(f"l_freq {self.l_freq} must be below h_freq {self.h_freq}")
        if self.h_freq is not None and self.h_freq >= self.sfreq / 2:
            raise ValueError(
                f"h_freq {self.h_freq} Hz is not below the Nyquist frequency of the target rate "
                f"sfreq {self.sfreq} Hz ({self.sfreq / 2} Hz); lower h_freq or raise sfreq"
            )
        return self

    @model_validator(mode="after")
    def _channels_once(self) -> EEGSpec:
        """A channel listed twice would give two rows of one site (and a shape the encoder's channel
        embedding would count twice); a notch at 0 Hz or below is no line frequency."""
        for key, names in (("channels", self.channels or []), ("rename values", list(self.rename.values()))):
            seen = [n for i, n in enumerate(names) if n.strip().upper() in {m.strip().upper() for m in names[:i]}]
            if seen:
                raise ValueError(f"{key} lists {sorted(set(seen))} more than once; list each channel once")
        for f in self.notch:  # applied at the file's rate, before resampling: only the sign is known here
            if f <= 0:
                raise ValueError(f"notch {f} Hz is not a line frequency; give 50 or 60 (Hz), or [] for none")
        return self


class WindowSpec(_Strict):
    """Window(s) cut per event: `count` windows of `seconds`, the first at onset + offset, then every `stride`."""

    seconds: float = Field(2.0, gt=0)
    offset: float = Field(0.0, ge=-3600, le=3600)
    """Seconds from the event's onset to the first window's start; a window whose frames would fall
    before its video's time 0 is dropped and reported (a clip has no picture before it starts)."""
    stride: float | None = Field(None, gt=0)
    """Seconds between window starts of one event; None is `seconds` (back to back)."""
    count: int = Field(1, ge=1, le=MAX_WINDOWS_PER_EVENT)
    max_seconds: float = Field(LABRAM_MAX_SECONDS, gt=0)
    """The EEG encoder's longest input (16 s for LaBraM)."""
    whole_seconds: bool = True
    """LaBraM reads 1-s patches: windows must be whole seconds. Turn off only for other encoders."""

    @model_validator(mode="after")
    def _encoder_limits(self) -> WindowSpec:
        if self.whole_seconds and abs(self.seconds - round(self.seconds)) > 1e-9:
            raise ValueError(
                f"seconds {self.seconds} is not a whole number; LaBraM reads 1-s patches, so use "
                f"{max(1, round(self.seconds))} (or set whole_seconds: false for another encoder)"
            )
        if self.seconds > self.max_seconds:
            raise ValueError(
                f"seconds {self.seconds} exceeds the encoder's limit of {self.max_seconds} s (LaBraM: 16); shorten the "
                f"window"
            )
        return self

    @property
    def step(self) -> float:
        return self.stride if self.stride is not None else self.seconds


class VideoSpec(_Strict):
    """The stimulus video of each window: a clip per event, or one continuous movie per recording."""

    clips: str | dict[str, str] | None = None
    """The stimulus map, event id -> clip file; the clip's time 0 is the event onset. Either a
    template with `{stim}` (and `{dir}`, `{stem}`, subject/session/block), e.g. stimuli/{stim}.mp4;
    or a glob with `{stim}` that must match exactly one file, e.g. stimuli/{stim}.* (the id is
    matched literally, so `clip09` finds clip09.mp4, never clip09_vfr.mp4); or a mapping
    {event id: file}. A clip must lie below the template's folder (an id `../../x` is refused),
    and a missing clip stops the ingest with its name."""
    movie: str | None = None
    """One movie per recording: template such as movies/{stem}.mp4."""
    sync: str | None = None
    """movie: regex on annotation descriptions marking movie time 0 (the first match); None: the
    recording's first sample is movie time 0."""
    sync_offset: float = Field(0.0, ge=-86400, le=86400)
    """movie: seconds of movie time at the sync point (movie time = EEG time - sync + sync_offset)."""
    frames: int = Field(8, ge=1, le=MAX_FRAMES)
    """Frames per window, sampled uniformly over the window's span (centres of F equal parts)."""
    short_side: int = Field(128, ge=8, le=MAX_SIDE)
    """Frames are resized so their shorter side has this many pixels (aspect kept, even sizes)."""
    size: tuple[int, int] | None = None
    """[height, width]: resize to cover it, then centre-crop (for stimuli of mixed aspect ratios,
    which `short_side` alone refuses to stack); replaces short_side."""

    _regex = field_validator("sync")(classmethod(lambda cls, v: _check_regex(v)))

    @field_validator("size")
    @classmethod
    def _sane_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not all(8 <= v <= MAX_SIDE for v in value):
            raise ValueError(f"size {list(value)} must be [height, width], each from 8 to {MAX_SIDE} pixels")
        return value

    @field_validator("clips")
    @classmethod
    def _map_not_empty(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value:
            raise ValueError("the stimulus map is empty; give {event id: clip file} pairs or a template with {stim}")
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> VideoSpec:
        if (self.clips is None) == (self.movie is None):
            raise ValueError(
                "give exactly one of `clips` (a video per event, with {stim}) or `movie` (one per recording)"
            )
        if isinstance(self.clips, str) and "{stim}" not in self.clips:
            raise ValueError(
                f"clips {self.clips!r} has no {{stim}}; it must name each event's clip, e.g. stimuli/{{stim}}.mp4"
            )
        return self


class GroupsSpec(_Strict):
    """The leakage unit: pairs of one group are never split apart (groups.npy)."""

    by: Literal["recording", "subject", "session", "block", "stimulus"] = "recording"
    """Pairs sharing a group are never on both sides of a split (windows of one recording are not
    independent). Which pairs are not each other's negatives is `negatives`, a separate idea."""


class NegativesSpec(_Strict):
    """Which pairs are never each other's negatives (stimulus.npy and meta["stimuli"])."""

    by: str = Field("stimulus", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """stimulus: pairs showing one stimulus (the event's stim id) are not each other's negatives, across
    subjects and recordings; none: every pair is its own; or a label every pair carries (an entity such
    as `concept` from recordings.entities, or `event`): pairs sharing it are not each other's negatives."""


class SplitSpec(_Strict):
    """Train/val/test assignment that never cuts a group (the leakage unit); stimuli may be shared
    across splits (the cross-subject protocol: the same clips shown to every subject)."""

    by: Literal["fraction", "subject", "block"] = "fraction"
    val: float | list[str] = 0.2
    """fraction: share of pairs (whole groups) for validation; subject/block: the ids held out."""
    test: float | list[str] = 0.0
    """fraction: share for test; subject/block: the ids held out for test."""
    fold: int | None = Field(None, ge=0)
    """block: leave-one-block-out fold k (EEG2Video): the k-th block (sorted) is test, the one before
    it validation; replaces `val`/`test` lists."""
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> SplitSpec:
        if self.by == "fraction":
            if not isinstance(self.val, float | int) or not isinstance(self.test, float | int):
                raise ValueError("split by fraction takes numbers for val and test (shares of the pairs)")
            if not 0 <= self.val < 1 or not 0 <= self.test < 1 or self.val + self.test >= 1:
                raise ValueError(f"val {self.val} + test {self.test} must be shares in [0, 1) summing below 1")
            if self.fold is not None:
                raise ValueError("fold is for split by block")
        else:
            if self.fold is not None and self.by != "block":
                raise ValueError("fold (leave-one-block-out) needs by: block")
            if self.fold is None:
                for key in ("val", "test"):
                    value = getattr(self, key)
                    if isinstance(value, float | int):
                        if value:
                            raise ValueError(
                                f"split by {self.by} takes a list of {self.by} ids for {key}, e.g. {key}: ['03']"
                            )
                        setattr(self, key, [])
                    else:
                        setattr(self, key, [str(v) for v in value])
        return self


def _as_sets(value: Any) -> Any:
    """`recordings`: one set as a mapping, or several as a list."""
    if isinstance(value, list) and not value:
        raise ValueError("no recording set; give {files: ...} or a list of them")
    return [value] if isinstance(value, dict) else value


class IngestSections(_Strict):
    """The sections an ingest spec and a recipe's `recordings` data block share, defined once here
    (peftzoo_data/recordings.py derives its Config from this class), with the checks across them."""

    recordings: Annotated[
        list[RecordingsSpec],
        BeforeValidator(_as_sets, json_schema_input_type=Union[RecordingsSpec, list[RecordingsSpec]]),  # noqa: UP007 - runtime typing.Union
    ]
    """One recording set (a mapping), or several (a list), each with its files and, where it differs,
    its own `events` (annotations for some files, a stim channel for others)."""
    events: EventsSpec = Field(default_factory=EventsSpec)
    window: WindowSpec = Field(default_factory=WindowSpec)
    eeg: EEGSpec = Field(default_factory=EEGSpec)
    video: VideoSpec
    groups: GroupsSpec = Field(default_factory=GroupsSpec)
    negatives: NegativesSpec = Field(default_factory=NegativesSpec)
    preview: int = Field(4, ge=0)
    """Windows drawn in preview.png (EEG traces, window edges, chosen frames); 0 for none."""

    def sets(self) -> list[tuple[RecordingsSpec, EventsSpec]]:
        """Each recording set with the event source it uses (its own, else the spec's)."""
        return [(s, s.events or self.events) for s in self.recordings]

    def check_across(self, split: SplitSpec) -> None:
        """ValueError when sections disagree (with `split`, which the data block may leave out)."""
        for i, (rs, events) in enumerate(self.sets()):
            if events.source == "bids" and rs.bids is None:
                where = "events.source" if rs.events is None else f"recordings[{i}].events.source"
                raise ValueError(
                    f"{where}: bids reads each recording's events.tsv and needs recordings.bids (a BIDS root)"
                )
        if self.video.movie is None and self.video.sync is not None:
            raise ValueError("video.sync is only for `movie`")
        if (
            split.by in ("subject", "block")
            and self.groups.by == "recording"
            and any(rs.entities is None and rs.bids is None for rs in self.recordings)
        ):
            raise ValueError(
                f"split by {split.by} needs {split.by} ids: give recordings.entities (a file-name regex "
                f"with (?P<{split.by}>...)) or read a BIDS dataset"
            )


class IngestSpec(IngestSections):
    """One ingest: recordings + events + windows + video -> an arrays directory."""

    split: SplitSpec = Field(default_factory=SplitSpec)

    @model_validator(mode="after")
    def _cross(self) -> IngestSpec:
        self.check_across(self.split)
        return self


def _format(err: dict) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(spec)"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key"
    if kind == "missing":
        return f"{key}: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or kind == "value_error" else f" (got {value!r})"
    return f"{key}: {msg}{shown}"


def _allowed_hint(err: dict) -> str:
    """For an unknown key: the keys allowed at that level."""
    model: Any = IngestSpec
    for part in err["loc"][:-1]:
        if isinstance(part, int):  # an item of a list of models (recording sets)
            continue
        field = model.model_fields.get(part) if isinstance(part, str) and hasattr(model, "model_fields") else None
        if field is None:
            return ""
        ann = field.annotation
        model = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
        if model is None:
            return ""
    if isinstance(model, type) and issubclass(model, BaseModel):
        from registry.errors import did_you_mean

        allowed = list(model.model_fields)
        return f"{did_you_mean(str(err['loc'][-1]), allowed)} (allowed: {', '.join(allowed)})"
    return ""


def validate(raw: Any, source: str = "ingest spec", prefix: str = "") -> IngestSpec:
    """An IngestSpec from parsed YAML, or one IngestError listing every located problem."""
    if not isinstance(raw, dict):
        raise IngestError(
            f"{source} must be a mapping with recordings, events, window, eeg, video sections, not {type(raw).__name__}"
        )
    try:
        return IngestSpec.model_validate(raw)
    except ValidationError as exc:
        lines = []
        one_set = isinstance(raw.get("recordings"), dict)
        for err in exc.errors(include_url=False):
            if one_set and err["loc"][:2] == ("recordings", 0):  # one set given as a mapping: no index
                err = {**err, "loc": ("recordings", *err["loc"][2:])}
            line = prefix + _format(err)
            if err["type"] == "extra_forbidden":
                line += _allowed_hint(err)
            lines.append(line)
        unique = list(dict.fromkeys(lines))
        raise IngestError(f"{source} is not valid:\n" + "\n".join(f"  {line}" for line in unique)) from None


def read(path: str | Path) -> tuple[IngestSpec, dict]:
    """(spec, raw mapping) from a YAML file; located errors as IngestError."""
    from registry import yamlio

    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"ingest spec {str(path)!r} could not be read: {exc}") from None
    try:
        raw = yamlio.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        hint = (
            "; quote templates holding {...} inside a {...} mapping: clips: 'stimuli/{stim}.mp4'"
            if re.search(r"\{\w+\}", line)
            else ""
        )
        raise IngestError(
            f"ingest spec {str(path)!r} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}{hint}"
        ) from None
    return validate(raw, f"ingest spec {str(path)!r}"), raw


def json_schema() -> str:
    return json.dumps(IngestSpec.model_json_schema(), indent=2)
