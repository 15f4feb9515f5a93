"""Recordings cut short or missing a part, found from their headers before MNE reads them.

MNE reads a truncated EDF or BrainVision file without a word (the samples that are not there come
back as whatever the reader pads with, or the recording just ends early), so a copy interrupted
half-way would be ingested as a shorter session. The header says how long the data must be:
EDF/BDF give the number of data records and the samples per record of every signal; BrainVision
gives the channel count and the binary format (and, optionally, DataPoints), and its marker file
the positions that must lie inside the data.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from peftzoo_data.ingest.errors import IngestError

_BV_BYTES = {"INT_16": 2, "UINT_16": 2, "INT_32": 4, "IEEE_FLOAT_32": 4}


def check(path: Path) -> None:
    """IngestError naming the file when its header and its data disagree (or a part is missing)."""
    suffix = path.suffix.lower()
    if suffix in (".edf", ".bdf"):
        check_edf(path)
    elif suffix == ".vhdr":
        check_brainvision(path)


def check_edf(path: Path) -> None:
    """EDF/BDF: header bytes + records x (sum of samples per record) x 2 (EDF) or 3 (BDF) bytes."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(256)
        if len(head) < 256:
            raise IngestError(
                f"{path}: could not be read as an EEG recording: {size} bytes is shorter than an EDF "
                f"header (256 bytes); the file is truncated or not an EDF file, copy it again"
            )
        try:
            header_bytes, records, signals = int(head[184:192]), int(head[236:244]), int(head[252:256])
        except ValueError:
            raise IngestError(
                f"{path}: the EDF header is damaged (unreadable record counts); copy the file again"
            ) from None
        f.seek(256 + signals * 216)
        per_record = f.read(signals * 8)
    if records < 0:  # -1: unknown (still being recorded); the reader counts records from the size
        return
    try:
        samples = sum(int(per_record[i * 8 : (i + 1) * 8]) for i in range(signals))
    except ValueError:
        raise IngestError(
            f"{path}: the EDF header is damaged (unreadable samples per record); copy the file again"
        ) from None
    width = 3 if head[:1] == b"\xff" else 2
    expected = header_bytes + records * samples * width
    if size < expected:
        have = max(0, (size - header_bytes) // max(1, samples * width))
        raise IngestError(
            f"{path}: the header declares {records} data records ({expected} bytes) but the file holds "
            f"{size} bytes ({have} complete records); the file is truncated, copy it again"
        )


def _read_ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    text = path.read_bytes().decode("utf-8", errors="replace")
    body = text.split("\n", 1)[1] if "\n" in text else ""  # the first line is the format's title, not INI
    try:
        parser.read_string(body)
    except configparser.Error as exc:
        raise IngestError(f"{path}: the BrainVision header is damaged ({exc}); copy the file again") from None
    return parser


def brainvision_data_file(vhdr: Path) -> Path:
    """The binary the header names (DataFile=), beside the header; the header's stem + .eeg if unnamed."""
    match = re.search(r"^DataFile=(.+?)\s*$", vhdr.read_bytes().decode("utf-8", errors="replace"), re.MULTILINE)
    return vhdr.parent / (match.group(1) if match else vhdr.with_suffix(".eeg").name)


def check_brainvision(vhdr: Path) -> None:
    """The .eeg the header names exists, holds whole samples of every channel, as many as DataPoints
    says, and every marker of the .vmrk lies inside it."""
    info = _read_ini(vhdr)
    common = info["Common Infos"] if info.has_section("Common Infos") else {}
    data = vhdr.parent / common.get("DataFile", vhdr.with_suffix(".eeg").name)
    if not data.is_file():
        raise IngestError(
            f"{vhdr}: its data file {data.name!r} (DataFile= in the header) is missing from "
            f"{vhdr.parent}; copy the .eeg beside the .vhdr (a BrainVision recording is "
            f".vhdr + .vmrk + .eeg)"
        )
    marker = vhdr.parent / common.get("MarkerFile", vhdr.with_suffix(".vmrk").name)
    if "MarkerFile" in common and not marker.is_file():
        raise IngestError(
            f"{vhdr}: its marker file {marker.name!r} (MarkerFile= in the header) is missing from "
            f"{vhdr.parent}; copy the .vmrk beside the .vhdr"
        )
    binary = info["Binary Infos"].get("BinaryFormat", "INT_16") if info.has_section("Binary Infos") else "INT_16"
    try:
        channels = int(common.get("NumberOfChannels", "0"))
    except ValueError:
        channels = 0
    width = _BV_BYTES.get(binary.strip().upper())
    if common.get("DataFormat", "BINARY").strip().upper() != "BINARY" or not channels or width is None:
        return
    size = data.stat().st_size
    frame = channels * width
    points = size // frame
    declared = common.get("DataPoints")
    if size % frame or (declared and declared.strip().isdigit() and int(declared) > points):
        want = f"{int(declared)} samples" if declared and declared.strip().isdigit() else f"a multiple of {frame} bytes"
        raise IngestError(
            f"{data}: holds {size} bytes, {size / frame:.2f} samples of {channels} channels; the header "
            f"{vhdr.name} needs {want}; the file is truncated, copy it again"
        )
    last = _last_marker(marker) if marker.is_file() else 0
    if last > points:
        raise IngestError(
            f"{data}: holds {points} samples but {marker.name} has a marker at sample {last}; the data "
            f"file is truncated, copy it again"
        )


def _last_marker(vmrk: Path) -> int:
    """The largest marker position (1-based samples) in a .vmrk."""
    last = 0
    text = vmrk.read_bytes().decode("utf-8", errors="replace")
    for m in re.finditer(r"^Mk\d+=[^,\n]*,[^,\n]*,(\d+)", text, re.MULTILINE):
        last = max(last, int(m.group(1)))
    return last
