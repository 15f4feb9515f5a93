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

import dataclasses
import logging
import re
import warnings
from pathlib import Path

import numpy as np

from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.spec import EEGSpec

logger = logging.getLogger("peftzoo_data.ingest")

# Types MNE gives non-EEG channels; these are dropped before any name is looked at.
_NON_EEG_TYPES = {"eog", "ecg", "emg", "stim", "misc", "resp", "bio", "syst", "gsr", "temperature", "chpi", "exci", "ias", "dbs"}
# A BAD annotation, also after BrainVision's `Comment/` prefix (docs/reference/background.md).
BAD = re.compile(r"(^|/)\s*bad", re.IGNORECASE)


def read_raw(path: Path, bids_path=None):
    """The recording as an MNE Raw (data loaded), or an IngestError naming the file."""
    import mne

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if bids_path is not None:
                import mne_bids

                raw = mne_bids.read_raw_bids(bids_path, verbose="error")
            else:
                raw = mne.io.read_raw(path, preload=False, verbose="error")
            raw.load_data(verbose="error")
    except (ValueError, OSError, RuntimeError, KeyError, IndexError, NotImplementedError, UnicodeDecodeError, EOFError) as exc:
        raise IngestError(f"{path}: could not be read as an EEG recording ({type(exc).__name__}: {exc}); "
                          f"check the file is complete and in a format MNE reads (EDF, BDF, BrainVision .vhdr, FIF, EEGLAB .set, CNT)") from None
    return raw


@dataclasses.dataclass
class Channels:
    kept: list[str]
    """Names in the file, in output order."""
    names: list[str]
    """Their normalized 10-20 names (encoders.channels.normalize)."""
    dropped: dict[str, str]
    """File name -> why it was dropped."""


def choose_channels(raw, spec: EEGSpec, where: str, triggers: set[str] = frozenset()) -> Channels:
    """EEG channels by type, then by name (exclude list, unknown sites), renamed and normalized.

    `triggers`: channels read as the trigger (a BDF or BrainVision file may type them EEG).
    Channels the file marks bad are dropped here under `eeg.bads: drop`; otherwise they stay and
    `preprocess` interpolates (or keeps) them."""
    from encoders import channels as channel_names  # the encoders' own normalization (imports torch: lazily)

    types = dict(zip(raw.ch_names, raw.get_channel_types()))
    exclude = {channel_names.normalize(n) for n in spec.exclude}
    bads = set(raw.info["bads"])
    kept, names, dropped, unknown = [], [], {}, []
    for name in raw.ch_names:
        if name in triggers:
            dropped[name] = "trigger channel (events.stim_channel)"
            continue
        if types[name] in _NON_EEG_TYPES or types[name] not in ("eeg", "seeg", "ecog"):
            dropped[name] = f"channel type {types[name]}"
            continue
        if name in bads and spec.bads == "drop":
            dropped[name] = "marked bad in the file (eeg.bads: drop)"
            continue
        normal = channel_names.normalize(spec.rename.get(name, name))
        if normal in exclude:
            dropped[name] = "in eeg.exclude"
            continue
        try:
            channel_names.position(normal)
        except channel_names.ChannelError:
            unknown.append(name)
            continue
        kept.append(name)
        names.append(normal)
    if unknown and spec.unknown_channels == "error":
        raise IngestError(
            f"{where}: channels {unknown} have no 10-20/10-10 name LaBraM knows; map them with "
            f"eeg.rename ({{{unknown[0]!r}: Fz, ...}}), drop them with eeg.exclude, or set eeg.unknown_channels: drop"
        )
    for name in unknown:
        dropped[name] = "no 10-20 name"
    seen: dict[str, str] = {}
    for file_name, normal in zip(kept, names):
        if normal in seen:
            raise IngestError(f"{where}: channels {seen[normal]!r} and {file_name!r} both are {normal}; rename or exclude one (eeg.rename / eeg.exclude)")
        seen[normal] = file_name
    if spec.channels is not None:
        wanted = [channel_names.normalize(c) for c in spec.channels]
        missing = [c for c in wanted if c not in seen]
        if missing:
            bad = [c for c in missing if any(channel_names.normalize(spec.rename.get(n, n)) == c for n in bads)]
            if bad:
                raise IngestError(f"{where}: eeg.channels asks for {bad}, which the file marks bad and eeg.bads: drop removed; "
                                  f"set eeg.bads: interpolate or remove them from eeg.channels")
            raise IngestError(f"{where}: eeg.channels asks for {missing}, which the file lacks (it has {names}); "
                              f"map file names with eeg.rename or remove them from eeg.channels")
        for file_name, normal in zip(kept, names):
            if normal not in wanted:
                dropped[file_name] = "not in eeg.channels"
        kept = [seen[c] for c in wanted]
        names = wanted
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
        start, stop = max(0.0, a / sfreq - NONFINITE_MARGIN_S), min(raw.times[-1] + 1 / sfreq, b / sfreq + NONFINITE_MARGIN_S)
        spans.append((start, stop, NONFINITE))
    import mne

    raw.set_annotations(raw.annotations + mne.Annotations(
        [a / sfreq + raw.first_time for a in edges[::2]], [(b - a) / sfreq for a, b in zip(edges[::2], edges[1::2])],
        [NONFINITE] * (len(edges) // 2), orig_time=raw.annotations.orig_time))
    return spans


def preprocess(raw, chans: Channels, spec: EEGSpec, where: str, events: np.ndarray | None = None):
    """Pick, filter, notch, reference, resample (with `events`, sample indices at the file's rate).

    Returns (raw at spec.sfreq, events at spec.sfreq or None, record of what was done)."""
    sfreq = float(raw.info["sfreq"])
    if spec.h_freq is not None and spec.h_freq >= sfreq / 2:
        raise IngestError(
            f"{where}: sampled at {sfreq:g} Hz, too low for the low-pass eeg.h_freq {spec.h_freq:g} Hz "
            f"(it must be below {sfreq / 2:g} Hz, half the sampling rate); lower eeg.h_freq"
        )
    if sfreq < spec.sfreq:
        logger.warning("%s: sampled at %g Hz, below the target %g Hz; it is upsampled", where, sfreq, spec.sfreq)
    done: dict = {"file_sfreq": sfreq}
    if raw.info["projs"]:
        done["projectors"] = {"action": spec.projectors, "names": [p["desc"] for p in raw.info["projs"]],
                              "already_applied_in_file": [p["desc"] for p in raw.info["projs"] if p["active"]]}
        if spec.projectors == "apply":  # before picking: a projector spans the channels it was made on
            raw.apply_proj(verbose="error")
        else:  # ones the file has already applied to its data cannot be taken back
            raw.del_proj([i for i, p in enumerate(raw.info["projs"]) if not p["active"]])
    raw = raw.pick(chans.kept)
    raw.rename_channels(dict(zip(chans.kept, chans.names)))
    bads = list(raw.info["bads"])
    if bads:
        done["bad_channels"] = {"names": bads, "action": spec.bads}
        if spec.bads == "interpolate":
            _interpolate(raw, bads, where)
        else:  # keep: the recorded signal goes through as it is
            raw.info["bads"] = []
    skip = ("edge", "bad_acq_skip", NONFINITE.lower())  # filter the pieces between gaps separately
    if spec.l_freq is not None or spec.h_freq is not None:
        raw.filter(spec.l_freq, spec.h_freq, picks="all", skip_by_annotation=skip, verbose="error")
        done["bandpass"] = [spec.l_freq, spec.h_freq]
    notches = [f for f in spec.notch if f < sfreq / 2]
    if notches:
        raw.notch_filter(notches, picks="all", skip_by_annotation=skip, verbose="error")
    done["notch"] = notches
    if any(d == NONFINITE for d in raw.annotations.description):
        # the gaps themselves, left unfiltered: zeros, so the resampler does not spread them (their
        # windows are dropped as BAD_nonfinite); raw._data is MNE's preloaded array, edited in place
        holes = ~np.isfinite(raw._data)
        raw._data[holes] = 0.0
        done["nonfinite_samples_zeroed"] = int(holes.any(axis=0).sum())
    if spec.reference == "average":
        raw.set_eeg_reference("average", projection=False, verbose="error")
    done["reference"] = spec.reference or "as recorded"
    if abs(sfreq - spec.sfreq) > 1e-9:
        if events is not None and len(events):
            raw, events = raw.resample(spec.sfreq, events=events, method="polyphase", verbose="error")
        else:
            raw.resample(spec.sfreq, method="polyphase", verbose="error")
    done["sfreq"] = spec.sfreq
    done["resample"] = "mne.io.Raw.resample(method='polyphase'), trigger events resampled with the data"
    return raw, events, done


def _interpolate(raw, bads: list[str], where: str) -> None:
    """MNE's spherical-spline interpolation of `bads`, with standard 10-05 positions when the file
    carries no electrode positions (the channels have 10-20 names by now)."""
    import mne

    if len(bads) == len(raw.ch_names):
        raise IngestError(f"{where}: every kept channel is marked bad ({bads}); nothing to interpolate from; set eeg.bads: keep or drop")
    locs = np.array([ch["loc"][:3] for ch in raw.info["chs"]])
    if raw.get_montage() is None or not np.isfinite(locs).all() or not np.abs(locs).sum(axis=1).all():
        builtin = mne.channels.get_builtin_montages()
        name = "colin27_1005" if "colin27_1005" in builtin else "standard_1005"  # renamed in MNE 1.13
        montage = mne.channels.make_standard_montage(name)
        known = {n.upper() for n in montage.ch_names}
        missing = [c for c in raw.ch_names if c.upper() not in known]
        if missing:
            raise IngestError(f"{where}: bad channels {bads} cannot be interpolated: {missing} have no standard 10-05 "
                              f"position and the file has none; set eeg.bads: drop (and eeg.channels) or keep")
        raw.set_montage(montage, match_case=False, on_missing="ignore", verbose="error")
    raw.interpolate_bads(reset_bads=True, verbose="error")


def microvolts(raw) -> np.ndarray:
    """(C, T) float32 microvolts; MNE holds volts whatever the file's unit."""
    return raw.get_data(units="uV").astype(np.float32)


# Scalp EEG after a 0.1-75 Hz band-pass has a standard deviation of roughly 5-100 uV per channel.
PLAUSIBLE_UV = (0.5, 1000.0)


FLAT_UV = 0.01  # a channel whose standard deviation is below this is flat (disconnected, or a copy of the reference)


def flat_channels(data: np.ndarray, names: list[str], where: str) -> list[str]:
    """Channels whose signal is flat after preprocessing; warned about and listed in the report
    (they carry no EEG: mark them bad in the file, or list eeg.exclude, to interpolate or drop them)."""
    flat = [name for name, sd in zip(names, data.std(axis=1)) if not sd >= FLAT_UV]
    if flat:
        logger.warning("%s: channels %s are flat (standard deviation below %g uV); exclude them (eeg.exclude) "
                       "or mark them bad in the file to interpolate them", where, flat, FLAT_UV)
    return flat


def amplitude(data: np.ndarray, where: str) -> float:
    """Median per-channel standard deviation in microvolts; warns when units look wrong (a file
    that stores microvolts but declares volts reads 1e6 times too large, and the reverse)."""
    value = float(np.median(data.std(axis=1))) if data.size else 0.0
    if not PLAUSIBLE_UV[0] <= value <= PLAUSIBLE_UV[1]:
        logger.warning("%s: median channel standard deviation is %.3g uV, outside the %g-%g uV of scalp EEG; "
                       "check the file's units (eeg data are written in microvolts)", where, value, *PLAUSIBLE_UV)
    return round(value, 3)
