"""EEG channel names: normalization of file styles and positions in LaBraM's 10-20 list.

LaBraM learned one spatial embedding per name of `utils.standard_1020` in the official code. Its
first 128 names fit the 129-row `pos_embed` (row 0 is CLS); the 8 bipolar names after them crash the
official code with an IndexError. Every bipolar name (those 8 and the 8 within the 128) is refused
here with a clear message, as is one site given twice (T7 and its old name T3).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from registry.errors import UserError, did_you_mean

# Verbatim order of `standard_1020` in LaBraM's utils.py (136 names).
STANDARD_1020: tuple[str, ...] = (
    "FP1",
    "FPZ",
    "FP2",
    "AF9",
    "AF7",
    "AF5",
    "AF3",
    "AF1",
    "AFZ",
    "AF2",
    "AF4",
    "AF6",
    "AF8",
    "AF10",
    "F9",
    "F7",
    "F5",
    "F3",
    "F1",
    "FZ",
    "F2",
    "F4",
    "F6",
    "F8",
    "F10",
    "FT9",
    "FT7",
    "FC5",
    "FC3",
    "FC1",
    "FCZ",
    "FC2",
    "FC4",
    "FC6",
    "FT8",
    "FT10",
    "T9",
    "T7",
    "C5",
    "C3",
    "C1",
    "CZ",
    "C2",
    "C4",
    "C6",
    "T8",
    "T10",
    "TP9",
    "TP7",
    "CP5",
    "CP3",
    "CP1",
    "CPZ",
    "CP2",
    "CP4",
    "CP6",
    "TP8",
    "TP10",
    "P9",
    "P7",
    "P5",
    "P3",
    "P1",
    "PZ",
    "P2",
    "P4",
    "P6",
    "P8",
    "P10",
    "PO9",
    "PO7",
    "PO5",
    "PO3",
    "PO1",
    "POZ",
    "PO2",
    "PO4",
    "PO6",
    "PO8",
    "PO10",
    "O1",
    "OZ",
    "O2",
    "O9",
    "CB1",
    "CB2",
    "IZ",
    "O10",
    "T3",
    "T5",
    "T4",
    "T6",
    "M1",
    "M2",
    "A1",
    "A2",
    "CFC1",
    "CFC2",
    "CFC3",
    "CFC4",
    "CFC5",
    "CFC6",
    "CFC7",
    "CFC8",
    "CCP1",
    "CCP2",
    "CCP3",
    "CCP4",
    "CCP5",
    "CCP6",
    "CCP7",
    "CCP8",
    "T1",
    "T2",
    "FTT9h",
    "TTP7h",
    "TPP9h",
    "FTT10h",
    "TPP8h",
    "TPP10h",
    "FP1-F7",
    "F7-T7",
    "T7-P7",
    "P7-O1",
    "FP2-F8",
    "F8-T8",
    "T8-P8",
    "P8-O2",
    "FP1-F3",
    "F3-C3",
    "C3-P3",
    "P3-O1",
    "FP2-F4",
    "F4-C4",
    "C4-P4",
    "P4-O2",
)
N_USABLE = 128  # names that fit LaBraM's position table
USABLE: tuple[str, ...] = STANDARD_1020[:N_USABLE]
_INDEX = {name.upper(): i for i, name in enumerate(STANDARD_1020)}

# Old (10-20) and new (10-10) names of the same four sites; used only when the name itself is absent.
ALIASES = {"T3": "T7", "T7": "T3", "T4": "T8", "T8": "T4", "T5": "P7", "P7": "T5", "T6": "P8", "P8": "T6"}

# File styles: 'EEG FP1-REF' (TUH), 'EEG Fp1-LE', 'Fp1.', 'FP1 ' ...
_PREFIX = re.compile(r"^(EEG|EKG)\s+", re.IGNORECASE)
_REFERENCE_SUFFIX = re.compile(r"-(REF|LE|AR|AVG|CAR|M1|M2|A1|A2)$", re.IGNORECASE)


class ChannelError(UserError, ValueError):
    """A channel name that cannot be placed in the 10-20 list."""


def normalize(name: str) -> str:
    """Canonical upper-case name: 'EEG Fp1-REF' -> 'FP1', ' cz. ' -> 'CZ'."""
    text = _PREFIX.sub("", str(name).strip()).strip().rstrip(".").strip()
    text = _REFERENCE_SUFFIX.sub("", text)
    return text.upper()


def position(name: str) -> int:
    """Index of `name` in STANDARD_1020 (0..127), after normalization and T3/T7-style aliases."""
    key = normalize(name)
    if "-" in key:
        # LaBraM's list holds 16 bipolar names; the last 8 have no row in its position table (the
        # official code crashes on them) and the first 8 are montage-specific: a derivation is a
        # difference of two sites, which a per-site spatial embedding cannot place. Refuse all.
        raise ChannelError(
            f"EEG channel {name!r} is a bipolar derivation ({key}), a difference of two sites that a per-site "
            f"position cannot place; give referential channels (one site each) such as '{key.split('-')[0]}' instead"
        )
    idx = _INDEX.get(key)
    if idx is None and key in ALIASES:
        idx = _INDEX.get(ALIASES[key])
    if idx is None:
        raise ChannelError(
            f"unknown EEG channel {name!r} (normalized {key!r}){did_you_mean(key, (n.upper() for n in USABLE))}; "
            f"channels must be 10-20/10-10 names such as 'Fp1', 'Cz', 'EEG T3-REF' (LaBraM's list of {N_USABLE})"
        )
    return idx


def positions(names: Sequence[str]) -> list[int]:
    """Positions of all `names`; duplicates after normalization are an error."""
    if len(names) == 0:
        raise ChannelError("no EEG channel names given; pass one name per row of the EEG array")
    out = [position(n) for n in names]
    seen: dict[str, str] = {}
    for n in names:
        site = _site(n)
        if site in seen:
            same = f"the same site ({site}" + (
                ", under its old and new 10-20 names)" if normalize(seen[site]) != normalize(n) else ")"
            )
            raise ChannelError(f"EEG channels {seen[site]!r} and {n!r} are {same}; keep one")
        seen[site] = n
    return out


_NEW_NAME = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}


def _site(name: str) -> str:
    """The electrode site a name denotes, old 10-20 names (T3, T4, T5, T6) mapped to the 10-10 ones."""
    key = normalize(name)
    return _NEW_NAME.get(key, key)
