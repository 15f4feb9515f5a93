"""A minimal XDF writer for tests (pyxdf has none), after the XDF 1.0 specification
(github.com/sccn/xdf, wiki "Specifications"): magic `XDF:`, then chunks [NumLengthBytes][Length]
[Tag uint16][Content]: FileHeader (1), StreamHeader (2), Samples (3), ClockOffset (4), StreamFooter (6)."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np


@dataclasses.dataclass
class Stream:
    name: str
    type: str
    srate: float
    """Nominal rate; 0 for an irregular (marker) stream."""
    stamps: np.ndarray
    """(N,) time stamps on the stream's own clock."""
    values: np.ndarray | list[str]
    """(N, C) float32 samples, or N strings for a string stream."""
    offsets: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    """(collection time on the stream's clock, offset): stream time + offset = the recorder's time."""
    channels: list[tuple[str, str]] | None = None
    """(label, unit) per channel, written to desc/channels."""


def _chunk(tag: int, content: bytes) -> bytes:
    length = len(content) + 2
    return struct.pack("<BQ", 8, length) + struct.pack("<H", tag) + content


def _varlen(n: int) -> bytes:
    return struct.pack("<BI", 4, n)


def _header(sid: int, s: Stream) -> bytes:
    string = isinstance(s.values, list)
    count = 1 if string else s.values.shape[1]
    desc = ""
    if s.channels:
        desc = (
            "<desc><channels>"
            + "".join(
                f"<channel><label>{escape(label)}</label><unit>{escape(unit)}</unit><type>{escape(s.type)}</type></channel>"
                for label, unit in s.channels
            )
            + "</channels></desc>"
        )
    xml = (
        f'<?xml version="1.0"?><info><name>{escape(s.name)}</name><type>{escape(s.type)}</type>'
        f"<channel_count>{count}</channel_count><nominal_srate>{s.srate}</nominal_srate>"
        f"<channel_format>{'string' if string else 'float32'}</channel_format><created_at>0</created_at>"
        f"<uid>{sid}</uid>{desc}</info>"
    )
    return _chunk(2, struct.pack("<I", sid) + xml.encode())


def _samples(sid: int, s: Stream, a: int, b: int) -> bytes:
    out = [struct.pack("<I", sid), _varlen(b - a)]
    for i in range(a, b):
        out.append(struct.pack("<Bd", 8, float(s.stamps[i])))
        if isinstance(s.values, list):
            text = s.values[i].encode()
            out.append(_varlen(len(text)) + text)
        else:
            out.append(np.asarray(s.values[i], dtype="<f4").tobytes())
    return _chunk(3, b"".join(out))


def write(path: Path, streams: list[Stream], chunk: int = 256) -> Path:
    """Stream headers, samples in interleaved chunks of `chunk`, clock offsets, footers."""
    data = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for sid, s in enumerate(streams, start=1):
        data.append(_header(sid, s))
    longest = max(len(s.stamps) for s in streams)
    for a in range(0, longest, chunk):
        for sid, s in enumerate(streams, start=1):
            if a < len(s.stamps):
                data.append(_samples(sid, s, a, min(a + chunk, len(s.stamps))))
    for sid, s in enumerate(streams, start=1):
        for t, value in s.offsets:
            data.append(_chunk(4, struct.pack("<Idd", sid, t, value)))
    for sid, s in enumerate(streams, start=1):
        footer = (
            f'<?xml version="1.0"?><info><first_timestamp>{s.stamps[0]}</first_timestamp>'
            f"<last_timestamp>{s.stamps[-1]}</last_timestamp><sample_count>{len(s.stamps)}</sample_count></info>"
        )
        data.append(_chunk(6, struct.pack("<I", sid) + footer.encode()))
    path.write_bytes(b"".join(data))
    return path
