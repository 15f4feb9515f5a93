"""EEG recordings through MNE: read any format, keep EEG channels by type and name, LaBraM's filters.

LaBraM's own preprocessing (docs/reference/background.md): drop non-EEG channels, band-pass 0.1-75 Hz,
notch 50 Hz, resample to 200 Hz, microvolts out. Event times are kept in seconds from the first
sample; trigger-channel events (sample indices) are resampled together with the data by
`raw.resample(events=...)`, MNE's own way, so they are not jittered. Resampling is polyphase (an
exact rational ratio, local support): MNE's default FFT method pads to a fast length (npad="auto"),
which stretches time slightly; measured here, a pulse 8.5 s into a 250 Hz recording landed half a
sample late at 200 Hz (tests/test_ingest_eeg.py checks sample-exact alignment).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.spec import EEGSpec

logger = logging.getLogger("peftzoo_data.ingest")

# Types MNE gives non-EEG channels; these are dropped before any name is looked at.
_NON_EEG_TYPES = {
    "eog",
    "ecg",
    "emg",
    "stim",
    "misc",
    "resp",
    "bio",
    "syst",
    "gsr",
    "temperature",
    "chpi",
    "exci",
    "ias",
    "dbs",
}
# Names of non-EEG channels that files type EEG (TUH: `EEG EKG1-REF`), after normalization.
PHYSIOLOGICAL = re.compile(r"^(ECG|EKG|EOG|HEOG|VEOG|EMG)\d*[LR]?$")
# A BAD annotation, also after BrainVision's `Comment/` prefix (docs/reference/background.md).
BAD = re.compile(r"(^|/)\s*bad", re.IGNORECASE)


_READ_ERRORS = (
    ValueError,
    OSError,
    RuntimeError,
    KeyError,
    IndexError,
    NotImplementedError,
    UnicodeDecodeError,
    EOFError,
)


def _unreadable(path, exc) -> IngestError:
    return IngestError(
        f"{path}: could not be read as an EEG recording ({type(exc).__name__}: {exc}); "
        f"check the file is complete and in a format MNE reads "
        f"(EDF, BDF, BrainVision .vhdr, FIF, EEGLAB .set, CNT)"
    )


# The reader mne.io.read_raw picks for these extensions (mne/io/_read_raw.py), called directly:
# read_raw imports every one of its ~30 readers to choose, a tenth of a second at each start.
_READERS = {
    ".fif": "read_raw_fif",
    ".fif.gz": "read_raw_fif",
    ".edf": "read_raw_edf",
    ".bdf": "read_raw_bdf",
    ".gdf": "read_raw_gdf",
    ".vhdr": "read_raw_brainvision",
    ".set": "read_raw_eeglab",
}


def reader_name(path: Path) -> str | None:
    """The mne.io reader of a recording by its extension (None: mne.io.read_raw chooses)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    return _READERS.get("".join(suffixes[-2:])) or _READERS.get("".join(suffixes[-1:]))


def import_readers(paths: list[Path]) -> None:
    """Import the MNE readers these recordings need now (MNE loads them lazily on first use): a quarter of a
    second for FIF, which sources.hash_ahead spends while other threads hash the files. Nothing is read."""
    names = {reader_name(p) for p in paths} - {None}
    if not names:
        return
    import mne

    for name in sorted(names):
        with contextlib.suppress(Exception):  # a reader that fails to import fails where it is used, as before
            getattr(mne.io, name)


def read_raw(path: Path, bids_path=None, preload: bool = True):
    """The recording as an MNE Raw, or an IngestError naming the file. `preload=False` leaves the
    samples in the file (where the format allows), for `preprocess` to read block by block."""
    import mne

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if bids_path is not None:
                import mne_bids

                raw = mne_bids.read_raw_bids(bids_path, verbose="error")
            else:
                raw = getattr(mne.io, reader_name(path) or "read_raw")(path, preload=False, verbose="error")
            if preload:
                raw.load_data(verbose="error")
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
    return raw


def load(raw, path) -> None:
    """The samples of a Raw read with preload=False, loaded (an IngestError naming the file if they
    cannot be)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw.load_data(verbose="error")
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None


def streamable(raw, chans: Channels, spec: EEGSpec) -> bool:
    """Whether `preprocess` can read `raw` block by block, downsampling as it goes, instead of
    loading it whole at its own rate: a rate above the target in a ratio dsp.resample handles
    (MAX_NUMPY_UP), and nothing that needs every sample at once (projectors, interpolating bad
    channels)."""
    sfreq = float(raw.info["sfreq"])
    if sfreq <= spec.sfreq + 1e-9:
        return False
    up, down = resample_ratio(sfreq, spec.sfreq)
    interpolate = spec.bads == "interpolate" and any(b in chans.kept for b in raw.info["bads"])
    return (
        not raw.preload
        and _numpy_resampler(up, down, raw.n_times)
        and not raw.info["projs"]
        and not interpolate
        and not (spec.h_freq is not None and spec.h_freq >= sfreq / 2)
    )


# The largest `up` of a rate ratio that dsp.resample handles (1000 -> 200 Hz is 1/5, 500 is 2/5, 250 is
# 4/5); above it (256 and 512 Hz are 25/32 and 25/64) scipy's resample_poly is quicker.
MAX_NUMPY_UP = 4


def _numpy_resampler(up: int, down: int, n: int) -> bool:
    """Whether dsp.resample (numpy) resamples `n` samples by up/down: a small `up`, and a signal
    longer than the filter (a shorter one is reflected more than once at its edges by scipy)."""
    return up <= MAX_NUMPY_UP and n > 100 * max(up, down)


def _channel_names():
    """encoders/channels.py (the encoders' own name normalization), loaded without running
    encoders/__init__.py, which imports torch (seconds at every ingest's start); registered as
    `encoders.channels`, so a later `import encoders` uses this same module."""
    import importlib.util
    import sys

    if "encoders.channels" in sys.modules:
        return sys.modules["encoders.channels"]
    package = importlib.util.find_spec("encoders")  # finds the package without importing it
    spec = importlib.util.spec_from_file_location("encoders.channels", Path(package.origin).parent / "channels.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["encoders.channels"] = module
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass
class Channels:
    kept: list[str]
    """Names in the file, in output order."""
    names: list[str]
    """Their normalized 10-20 names (encoders.channels.normalize)."""
    dropped: dict[str, str]
    """File name -> why it was dropped."""


_UNKNOWN_SITE = "no 10-20 name"  # the drop reason of a channel whose name has no known site


@dataclasses.dataclass
class _ChannelRules:
    """What each channel is judged by, gathered once from the file and the spec."""

    spec: EEGSpec
    normalize: object  # encoders.channels.normalize
    position: object  # encoders.channels.position
    not_a_site: type  # encoders.channels.ChannelError
    types: dict[str, str]
    bads: set[str]
    exclude: set[str]
    wanted: list[str]
    triggers: set[str]


def _channel_rules(raw, spec: EEGSpec, triggers: set[str]) -> _ChannelRules:
    """The file's channel types and bad marks with the spec's exclude and wanted lists, as normalized names."""
    channel_names = _channel_names()
    normalize = channel_names.normalize
    return _ChannelRules(
        spec=spec,
        normalize=normalize,
        position=channel_names.position,
        not_a_site=channel_names.ChannelError,
        types=dict(zip(raw.ch_names, raw.get_channel_types())),
        bads=set(raw.info["bads"]),
        exclude={normalize(n) for n in spec.exclude},
        wanted=[normalize(c) for c in spec.channels] if spec.channels is not None else [],
        triggers=triggers,
    )


def _file_reason(name: str, rules: _ChannelRules) -> str | None:
    """Why the file itself rules a channel out (the trigger, a non-EEG type, marked bad), or None."""
    kind = rules.types[name]
    if name in rules.triggers:
        return "trigger channel (events.stim_channel)"
    if kind in _NON_EEG_TYPES or kind not in ("eeg", "seeg", "ecog"):
        return f"channel type {kind}"
    if name in rules.bads and rules.spec.bads == "drop":
        return "marked bad in the file (eeg.bads: drop)"
    return None


def _name_reason(normal: str, rules: _ChannelRules) -> str | None:
    """Why a channel's normalized name rules it out (excluded, physiological, no known site), or None.

    An unknown site gives _UNKNOWN_SITE, which eeg.unknown_channels decides about later, unless
    eeg.channels (the list of what is kept) already leaves the channel out."""
    if normal in rules.exclude:
        return "in eeg.exclude"
    physiological = PHYSIOLOGICAL.match(normal)
    if physiological and normal not in rules.wanted:  # TUH's `EEG EKG1-REF`: typed EEG, an ECG by its name
        return f"{physiological.group(1).replace('EKG', 'ECG')} channel (by its name)"
    try:
        rules.position(normal)
    except rules.not_a_site:
        if rules.spec.channels is not None and normal not in rules.wanted:
            return "not in eeg.channels"
        return _UNKNOWN_SITE
    return None


def _sort_channels(raw, rules: _ChannelRules):
    """Each file channel kept (with its normalized name), dropped (with why) or of unknown site, in file order."""
    kept, names, dropped, unknown = [], [], {}, []
    for name in raw.ch_names:
        normal = None
        reason = _file_reason(name, rules)
        if reason is None:
            normal = rules.normalize(rules.spec.rename.get(name, name))
            reason = _name_reason(normal, rules)
        if reason is None:
            kept.append(name)
            names.append(normal)
        elif reason == _UNKNOWN_SITE:
            unknown.append(name)
        else:
            dropped[name] = reason
    return kept, names, dropped, unknown


def _drop_unknown(unknown: list[str], dropped: dict[str, str], spec: EEGSpec, where: str) -> None:
    """Channels without a known site are an error unless eeg.unknown_channels: drop says to drop them."""
    if unknown and spec.unknown_channels == "error":
        raise IngestError(
            f"{where}: channels {unknown} have no 10-20/10-10 name LaBraM knows; map them with "
            f"eeg.rename ({{{unknown[0]!r}: Fz, ...}}), drop them with eeg.exclude, or set eeg.unknown_channels: drop"
        )
    for name in unknown:
        dropped[name] = _UNKNOWN_SITE


def _unique_names(kept: list[str], names: list[str], where: str) -> dict[str, str]:
    """Normalized name -> file name; two file channels with one normalized name are a mistake to fix."""
    seen: dict[str, str] = {}
    for file_name, normal in zip(kept, names):
        if normal in seen:
            raise IngestError(
                f"{where}: channels {seen[normal]!r} and {file_name!r} both are {normal}; "
                f"rename or exclude one (eeg.rename / eeg.exclude)"
            )
        seen[normal] = file_name
    return seen


def _missing_wanted(missing: list[str], names: list[str], rules: _ChannelRules, where: str) -> IngestError:
    """The error for eeg.channels naming channels not kept: dropped as bad, or not in the file at all."""
    spec = rules.spec
    bad = [c for c in missing if any(rules.normalize(spec.rename.get(n, n)) == c for n in rules.bads)]
    if bad:
        return IngestError(
            f"{where}: eeg.channels asks for {bad}, which the file marks bad and eeg.bads: drop "
            f"removed; set eeg.bads: interpolate or remove them from eeg.channels"
        )
    return IngestError(
        f"{where}: eeg.channels asks for {missing}, which the file lacks (it has {names}); "
        f"map file names with eeg.rename or remove them from eeg.channels"
    )


def _select_wanted(kept, names, seen, dropped, rules: _ChannelRules, where: str):
    """With eeg.channels, exactly those channels in its order; every one must be there."""
    missing = [c for c in rules.wanted if c not in seen]
    if missing:
        raise _missing_wanted(missing, names, rules, where)
    for file_name, normal in zip(kept, names):
        if normal not in rules.wanted:
            dropped[file_name] = "not in eeg.channels"
    return [seen[c] for c in rules.wanted], rules.wanted


def choose_channels(raw, spec: EEGSpec, where: str, triggers: set[str] = frozenset()) -> Channels:
    """EEG channels by type, then by name (exclude list, unknown sites), renamed and normalized.

    `triggers`: channels read as the trigger (a BDF or BrainVision file may type them EEG).
    Channels the file marks bad are dropped here under `eeg.bads: drop`; otherwise they stay and
    `preprocess` interpolates (or keeps) them."""
    rules = _channel_rules(raw, spec, triggers)
    kept, names, dropped, unknown = _sort_channels(raw, rules)
    _drop_unknown(unknown, dropped, spec, where)
    seen = _unique_names(kept, names, where)
    if spec.channels is not None:
        kept, names = _select_wanted(kept, names, seen, dropped, rules, where)
    if not kept:
        raise IngestError(f"{where}: no EEG channel is left (dropped: {dropped}); map channel names with eeg.rename")
    return Channels(kept, names, dropped)


def bad_intervals(raw) -> list[tuple[float, float, str]]:
    """(start, stop, description) in seconds from the first sample of every BAD_* annotation."""
    out = []
    for ann in raw.annotations:
        if BAD.search(ann["description"]):
            start = float(ann["onset"]) - raw.first_time
            out.append((start, start + float(ann["duration"]), str(ann["description"])))
    return out


NONFINITE = "BAD_nonfinite"
# Seconds added on each side of a span of NaN/inf samples: the polyphase resampler's filter reaches
# about 12 input samples either way (scipy's resample_poly, 10 zero crossings), 0.05 s at 250 Hz.
NONFINITE_MARGIN_S = 0.1


def nonfinite_spans(raw, picks: list[str]) -> list[tuple[float, float, str]]:
    """(start, stop, BAD_nonfinite) in seconds from the first sample, around every run of samples
    where a kept channel is NaN or inf (a gap a reader filled with NaN, a float file with holes);
    also annotated on `raw`, so MNE's filters treat the spans as edges (skip_by_annotation)."""
    bad = np.zeros(raw.n_times, dtype=bool)
    for name in picks:  # one channel at a time: a 64-channel hour at 1000 Hz is 1.8 GB as float64
        bad |= ~np.isfinite(raw.get_data(picks=[name])[0])
    if not bad.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bad.astype(np.int8), [0]])))
    sfreq = float(raw.info["sfreq"])
    spans = []
    for a, b in zip(edges[::2], edges[1::2]):
        start, stop = (
            max(0.0, a / sfreq - NONFINITE_MARGIN_S),
            min(raw.times[-1] + 1 / sfreq, b / sfreq + NONFINITE_MARGIN_S),
        )
        spans.append((start, stop, NONFINITE))
    import mne

    raw.set_annotations(
        raw.annotations
        + mne.Annotations(
            [a / sfreq + raw.first_time for a in edges[::2]],
            [(b - a) / sfreq for a, b in zip(edges[::2], edges[1::2])],
            [NONFINITE] * (len(edges) // 2),
            orig_time=raw.annotations.orig_time,
        )
    )
    return spans


@dataclasses.dataclass
class Prepared:
    """A recording after preprocessing."""

    data: np.ndarray
    """(C, T) float32 microvolts at `sfreq`."""
    sfreq: float
    events: np.ndarray | None
    """Trigger events (E, 3) with sample indices on the output grid from the first sample, or None."""
    done: dict
    """What was done, for the report."""
    nonfinite: list = dataclasses.field(default_factory=list)
    """(start, stop, BAD_nonfinite) spans found while reading block by block (see nonfinite_spans)."""


# Annotations whose spans are filtered around, not through (as MNE's Raw.filter skip_by_annotation).
SKIP = ("edge", "bad_acq_skip", NONFINITE.lower())


def _check_rate(sfreq: float, spec: EEGSpec, where: str) -> None:
    """A low-pass at or above the file's Nyquist cannot be applied; a file below the target rate is upsampled."""
    if spec.h_freq is not None and spec.h_freq >= sfreq / 2:
        raise IngestError(
            f"{where}: sampled at {sfreq:g} Hz, too low for the low-pass eeg.h_freq {spec.h_freq:g} Hz "
            f"(it must be below {sfreq / 2:g} Hz, half the sampling rate); lower eeg.h_freq"
        )
    if sfreq < spec.sfreq:
        logger.warning("%s: sampled at %g Hz, below the target %g Hz; it is upsampled", where, sfreq, spec.sfreq)


def _apply_projectors(raw, spec: EEGSpec, done: dict) -> None:
    """SSP projectors: applied (eeg.projectors: apply) or dropped; before picking, as a projector spans the
    channels it was made on. Ones the file has already applied to its data cannot be taken back."""
    if not raw.info["projs"]:
        return
    done["projectors"] = {
        "action": spec.projectors,
        "names": [p["desc"] for p in raw.info["projs"]],
        "already_applied_in_file": [p["desc"] for p in raw.info["projs"] if p["active"]],
    }
    if spec.projectors == "apply":
        raw.apply_proj(verbose="error")
    else:
        raw.del_proj([i for i, p in enumerate(raw.info["projs"]) if not p["active"]])


def _pick_and_rename(raw, chans: Channels):
    """The chosen channels under their normalized names."""
    if list(raw.ch_names) != chans.kept:  # MNE's pick copies every sample even when it keeps them all
        raw = raw.pick(chans.kept)
    raw.rename_channels(dict(zip(chans.kept, chans.names)))
    return raw


def _handle_bad_channels(raw, spec: EEGSpec, where: str, done: dict) -> None:
    """Channels the file marks bad: interpolated (eeg.bads: interpolate), or kept as recorded."""
    bads = list(raw.info["bads"])
    if not bads:
        return
    done["bad_channels"] = {"names": bads, "action": spec.bads}
    if spec.bads == "interpolate":
        _interpolate(raw, bads, where)
    else:  # keep: the recorded signal goes through as it is
        raw.info["bads"] = []


def _zero_holes(data: np.ndarray, done: dict) -> None:
    """The gaps (NaN/inf): zeros, so neither resampler nor filter spreads NaN (their windows are dropped as
    BAD_nonfinite)."""
    holes = ~np.isfinite(data)
    if holes.any():
        data[holes] = 0.0
        done["nonfinite_samples_zeroed"] = int(holes.any(axis=0).sum())


def _filter_settings(spec: EEGSpec, nyquist: float, done: dict) -> list[float]:
    """The notches below `nyquist` (the others cannot be applied), recorded with the band-pass in `done`."""
    notches = [f for f in spec.notch if f < nyquist]
    done["notch"] = notches
    if set(spec.notch) - set(notches):
        done["notch_above_nyquist"] = sorted(set(spec.notch) - set(notches))
    if spec.l_freq is not None or spec.h_freq is not None:
        done["bandpass"] = [spec.l_freq, spec.h_freq]
    return notches


def _resample_and_filter(data, events, sfreq: float, spec: EEGSpec, notches, skip, done: dict):
    """Filter at the lower of the two rates: downsample first, or filter first and then upsample."""
    downsample = sfreq > spec.sfreq + 1e-9
    if not downsample:
        _filter(data, sfreq, spec, notches, skip, sfreq)
    out_rate = sfreq
    if abs(sfreq - spec.sfreq) > 1e-9:
        data, events, done["resample"] = resample(data, sfreq, spec.sfreq, events)
        out_rate = spec.sfreq
    if downsample:
        _filter(data, spec.sfreq, spec, notches, skip, sfreq)
    done["order"] = "resample, then filter" if downsample else "filter, then resample"
    return data, events, out_rate


def preprocess(raw, chans: Channels, spec: EEGSpec, where: str, events: np.ndarray | None = None) -> Prepared:
    """Pick, reference, then resample and filter in the cheaper order, in microvolts.

    Band-pass and notch are linear and time-invariant, as is the polyphase resampler, so their order
    does not change the result in the pass band as long as the resampler's anti-alias filter (at the
    target's Nyquist, 100 Hz) lies above the band-pass (75 Hz): downsampling first (1000 -> 200 Hz)
    leaves 5 times fewer samples to filter, with the same output within 1% RMS in 0.5-70 Hz and
    pulses on the same sample (tests/test_ingest_speed.py checks both against MNE's filter-first
    order). A file sampled below the target is filtered first, at its own rate, then upsampled.
    `events`: trigger events (E, 3) at the file's rate, moved onto the output grid."""
    sfreq = float(raw.info["sfreq"])
    _check_rate(sfreq, spec, where)
    done: dict = {"file_sfreq": sfreq}
    file_units = dict(getattr(raw, "_orig_units", None) or {})
    header = {normal: file_units.get(name) for name, normal in zip(chans.kept, chans.names)}
    reader = type(raw).__name__
    _apply_projectors(raw, spec, done)
    raw = _pick_and_rename(raw, chans)
    _handle_bad_channels(raw, spec, where, done)
    if not raw.preload:  # streamable(): read block by block, downsampled as it is read
        return _preprocess_streamed(raw, spec, where, events, sfreq, done, header, reader)
    data = raw._data  # MNE's preloaded (C, N) float64 volts, edited in place (the Raw is not used after)
    _zero_holes(data, done)
    if spec.reference == "average":  # linear and per sample: the same before or after filtering
        data -= data.mean(axis=0, keepdims=True)
    done["reference"] = spec.reference or "as recorded"
    skip = _skipped_spans(raw)
    notches = _filter_settings(spec, min(sfreq, spec.sfreq) / 2, done)
    data, events, out_rate = _resample_and_filter(data, events, sfreq, spec, notches, skip, done)
    done["sfreq"] = spec.sfreq
    factor, done["units"] = unit_factors(reader, header, spec)
    data *= factor[:, None]
    return Prepared(data.astype(np.float32), out_rate, events, done)


def _preprocess_streamed(
    raw, spec: EEGSpec, where: str, events, sfreq: float, done: dict, header: dict, reader: str
) -> Prepared:
    """preprocess for a Raw whose samples are still in the file: each block is read (MNE's
    Raw.get_data), its NaN/inf zeroed and re-referenced (both per sample), and downsampled by the
    polyphase filter (dsp.resample) as it comes, so the recording is never held whole at its own
    rate; then band-pass and notch at the target rate, as in preprocess."""
    from peftzoo_data.ingest import dsp

    n = raw.n_times
    up, down = resample_ratio(sfreq, spec.sfreq)
    holes = np.zeros(n, dtype=bool)

    def read(a: int, b: int) -> np.ndarray:
        try:
            block = raw.get_data(start=a, stop=b)
        except _READ_ERRORS as exc:
            raise _unreadable(where, exc) from None
        bad = ~np.isfinite(block)
        if bad.any():
            holes[a:b] |= bad.any(axis=0)
            block[bad] = 0.0
        if spec.reference == "average":
            block -= block.mean(axis=0, keepdims=True)
        # float32 from here on, the output's dtype: resampling and filtering run about twice as fast, and
        # beside a 30 mV electrode offset the result is within 0.003 uV RMS of float64's (0.02 uV beside
        # 250 mV; tests/test_ingest_dsp.py), far below the filters' own 1% against MNE.
        return block.astype(np.float32)

    data = dsp.resample(read, up, down, n)
    done["resample"] = {
        "method": NUMPY_METHOD,
        "up": up,
        "down": down,
        "grid_error_ppm": round(abs(up / down * sfreq / spec.sfreq - 1) * 1e6, 6),
    }
    if events is not None and len(events):
        events = events.copy()
        events[:, 0] = np.round(events[:, 0] * (up / down)).astype(events.dtype)
    spans, skip = [], _skipped_spans(raw)
    if holes.any():
        done["nonfinite_samples_zeroed"] = int(holes.sum())
        edges = np.flatnonzero(np.diff(np.concatenate([[0], holes.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            margin = NONFINITE_MARGIN_S
            spans.append((max(0.0, a / sfreq - margin), min(n / sfreq, b / sfreq + margin), NONFINITE))
            skip.append((a / sfreq, b / sfreq))
        skip.sort()
    done["reference"] = spec.reference or "as recorded"
    notches = _filter_settings(spec, spec.sfreq / 2, done)
    _filter(data, spec.sfreq, spec, notches, skip, sfreq)
    done["order"] = "resample, then filter"
    done["sfreq"] = spec.sfreq
    factor, done["units"] = unit_factors(reader, header, spec)
    data *= factor[:, None].astype(data.dtype)
    return Prepared(data.astype(np.float32, copy=False), spec.sfreq, events, done, spans)


def _skipped_spans(raw) -> list[tuple[float, float]]:
    """(start, stop) seconds from the first sample of annotations filtered around (SKIP)."""
    out = []
    for ann in raw.annotations:
        if str(ann["description"]).lower().startswith(SKIP):
            start = float(ann["onset"]) - raw.first_time
            out.append((start, start + float(ann["duration"])))
    return sorted(out)


def _filter(
    data: np.ndarray,
    sfreq: float,
    spec: EEGSpec,
    notches: list[float],
    skip: list[tuple[float, float]],
    file_sfreq: float,
) -> None:
    """Band-pass and notch `data` (C, N) in place with MNE's FIR filters (MNE's Raw.filter and
    Raw.notch_filter defaults, designed and applied by peftzoo_data/ingest/dsp.py without importing
    scipy.signal), each stretch between skipped spans on its own."""
    from peftzoo_data.ingest import dsp

    if spec.l_freq is None and spec.h_freq is None and not notches:
        return
    designed = (dsp.bandpass_taps(sfreq, spec.l_freq, spec.h_freq), dsp.notch_taps(sfreq, notches))
    taps = [h for h in designed if h is not None]
    n = data.shape[1]
    cuts = [0]
    for a, b in skip:
        cuts += [min(n, max(0, int(round(a * sfreq)))), min(n, max(0, int(round(b * sfreq))))]
    cuts.append(n)
    for a, b in zip(cuts[::2], cuts[1::2]):
        if b - a < 2:
            continue
        dsp.zero_phase_filter(data[:, a:b], taps, out=data[:, a:b])


NUMPY_METHOD = "polyphase, Kaiser window 5.0 (scipy.signal.resample_poly's filter, peftzoo_data/ingest/dsp.py)"
# Largest up or down factor resampled exactly; its anti-alias filter has 20 x that many taps.
MAX_EXACT_FACTOR = 200_000


def resample_ratio(sfreq: float, target: float) -> tuple[int, int]:
    """(up, down): the exact rational ratio of the two rates as written (600.615 -> 200 is
    40000/120123), so the output grid is exactly `target` and no event drifts."""
    ratio = Fraction(repr(float(target))) / Fraction(repr(float(sfreq)))
    if max(ratio.numerator, ratio.denominator) > MAX_EXACT_FACTOR:
        ratio = ratio.limit_denominator(MAX_EXACT_FACTOR // 10)
    return ratio.numerator, ratio.denominator


def resample(data: np.ndarray, sfreq: float, target: float, events: np.ndarray | None = None):
    """Polyphase resampling (scipy's resample_poly, the filter MNE's method='polyphase' designs) at
    an exact rational ratio; trigger events move to the nearest output sample.
    Returns (data, events, record)."""
    up, down = resample_ratio(sfreq, target)
    if _numpy_resampler(up, down, data.shape[1]):  # the same filter and output, without importing scipy.signal
        from peftzoo_data.ingest import dsp

        out, method = dsp.resample(data, up, down), NUMPY_METHOD
    else:
        from scipy import signal

        out = signal.resample_poly(data, up, down, axis=1, padtype="reflect")
        method = "scipy.signal.resample_poly (polyphase, Kaiser window 5.0)"
    record = {
        "method": method,
        "up": up,
        "down": down,
        "grid_error_ppm": round(abs(up / down * sfreq / target - 1) * 1e6, 6),
    }
    if events is not None and len(events):
        events = events.copy()
        events[:, 0] = np.round(events[:, 0] * (up / down)).astype(events.dtype)
    return out, events, record


# The unit names a spec may give, as microvolts per unit.
UNIT_UV = {"V": 1e6, "mV": 1e3, "µV": 1.0, "μV": 1.0, "uV": 1.0, "nV": 1e-3}


def _mne_volts_per_unit(reader: str, unit: str) -> float:
    """The factor MNE's reader applied to a channel whose header states `unit` (values in volts
    after it): BrainVision knows nV; EDF, BDF and GDF readers know µV and mV and take anything else
    as volts (mne/io/edf/edf.py, mne/io/brainvision/brainvision.py); XDF streams are read by
    peftzoo_data/ingest/xdf.py with every unit above."""
    table = {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "µV": 1e-6, "μV": 1e-6, "nV": 1e-9}
    if reader in ("RawEDF", "RawBDF", "RawGDF"):
        del table["nV"]
    return table.get(unit, 1.0)


def unit_factors(reader: str, header: dict[str, str | None], spec: EEGSpec) -> tuple[np.ndarray, dict]:
    """Per output channel (`header`: its name -> the unit its file header states, None when the
    format has none), the factor from MNE's volts to microvolts, honouring eeg.unit (the unit the
    file's numbers really are in, whatever its header states) and eeg.scale (a factor on top)."""
    factor = np.full(len(header), 1e6)
    record: dict = {"reader": reader, "header": sorted({u or "V (no unit in the format)" for u in header.values()})}
    if spec.unit is not None:
        factor = np.array([UNIT_UV[spec.unit] / _mne_volts_per_unit(reader, u or "V") for u in header.values()])
        record["unit"] = spec.unit
    if spec.scale is not None:
        factor = factor * spec.scale
        record["scale"] = spec.scale
    record["factor_to_uv"] = sorted({float(f"{f:.6g}") for f in factor})
    return factor, record


def _interpolate(raw, bads: list[str], where: str) -> None:
    """MNE's spherical-spline interpolation of `bads`, with standard 10-05 positions when the file
    carries no electrode positions (the channels have 10-20 names by now)."""
    import mne

    if len(bads) == len(raw.ch_names):
        raise IngestError(
            f"{where}: every kept channel is marked bad ({bads}); nothing to interpolate from; set eeg.bads: keep or "
            f"drop"
        )
    locs = np.array([ch["loc"][:3] for ch in raw.info["chs"]])
    if raw.get_montage() is None or not np.isfinite(locs).all() or not np.abs(locs).sum(axis=1).all():
        builtin = mne.channels.get_builtin_montages()
        name = "colin27_1005" if "colin27_1005" in builtin else "standard_1005"  # renamed in MNE 1.13
        montage = mne.channels.make_standard_montage(name)
        known = {n.upper() for n in montage.ch_names}
        missing = [c for c in raw.ch_names if c.upper() not in known]
        if missing:
            raise IngestError(
                f"{where}: bad channels {bads} cannot be interpolated: {missing} have no standard 10-05 "
                f"position and the file has none; set eeg.bads: drop (and eeg.channels) or keep"
            )
        raw.set_montage(montage, match_case=False, on_missing="ignore", verbose="error")
    raw.interpolate_bads(reset_bads=True, verbose="error")


FLAT_UV = 0.01  # a channel whose standard deviation is below this is flat (disconnected, or a copy of the reference)


def channel_sd(data: np.ndarray) -> np.ndarray:
    """Each channel's standard deviation (C,), computed once for flat_channels and amplitude."""
    return data.std(axis=1) if data.size else np.zeros(len(data))


def flat_channels(data: np.ndarray, names: list[str], where: str, sd: np.ndarray | None = None) -> list[str]:
    """Channels whose signal is flat after preprocessing; warned about and listed in the report
    (they carry no EEG: mark them bad in the file, or list eeg.exclude, to interpolate or drop them).
    `sd`: channel_sd(data), where the caller has it."""
    sd = channel_sd(data) if sd is None else sd
    flat = [name for name, value in zip(names, sd) if not value >= FLAT_UV]
    if flat:
        logger.warning(
            "%s: channels %s are flat (standard deviation below %g uV); exclude them (eeg.exclude) "
            "or mark them bad in the file to interpolate them",
            where,
            flat,
            FLAT_UV,
        )
    return flat


def amplitude(data: np.ndarray, where: str, sd: np.ndarray | None = None) -> float:
    """Median per-channel standard deviation in microvolts, for the report (check_units judges the unit).
    `sd`: channel_sd(data), where the caller has it."""
    sd = channel_sd(data) if sd is None else sd
    value = float(np.median(sd)) if data.size else 0.0
    return round(value, 3)


def check_units(data: np.ndarray, units: dict, where: str) -> list[str]:
    """Refuse amplitudes that cannot be microvolts (an IngestError with the measured median, the
    likely unit and the spec key that fixes it) and return warnings for implausible ones, by the
    same verdict as training's check (peftzoo_data/checks.py). `units`: Prepared.done["units"]."""
    from peftzoo_data.units import judge_amplitude

    step = max(1, data.shape[1] // 20_000)  # every sample up to 100 s at 200 Hz, a regular subsample beyond
    median = float(np.median(np.abs(data[:, ::step]))) if data.size else 0.0
    if median == 0:
        return [f"{where}: the median absolute EEG value is 0 (flat channels?); check the recording"]
    verdict, text = judge_amplitude(median)
    if verdict is None:
        return []
    exponent = int(round(np.log10(20.0 / median) / 3) * 3)
    scale = float(f"1e{exponent}") * (units.get("scale") or 1.0)
    headers = units.get("header", [])
    current = units.get("factor_to_uv", [1e6])
    fix = f"eeg.scale: {scale:g}"
    if "unit" not in units and len(headers) == 1 and len(current) == 1:
        header = headers[0].split(" ")[0]
        true_uv = current[0] * 10.0**exponent * _mne_volts_per_unit(units.get("reader", ""), header)
        named = next(
            (name for name, uv in UNIT_UV.items() if name not in ("μV", "uV") and abs(np.log10(uv / true_uv)) < 0.01),
            None,
        )
        if named is not None:
            fix = (
                f"eeg.unit: {named} (the unit the file's numbers are really in; its header states {headers[0]}) "
                f"or {fix}"
            )
    message = f"{where}: as read, {text}; set {fix} in the spec"
    if verdict == "error":
        raise IngestError(message)
    logger.warning("%s", message)
    return [message]
