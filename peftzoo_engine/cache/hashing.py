"""Streaming sha256 of files, and the file facts that tell whether a file may have changed.

sha256 rather than blake2b: with OpenSSL's SHA extensions it hashes about twice as fast on the
machines we measured (benchmarks/cache_hashing.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tqdm.auto import tqdm

CHUNK = 8 << 20
"""Bytes read per step: large enough for full hashing speed, small enough to stop within a second."""


def file_digest(path: Path, progress: bool = True) -> str:
    """sha256 of a file's bytes, read in chunks (interruptible between chunks), with a progress bar."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with (
        open(path, "rb", buffering=0) as f,
        tqdm(
            total=Path(path).stat().st_size,
            unit="B",
            unit_scale=True,
            desc=f"hashing {Path(path).name}",
            leave=False,
            disable=None if progress else True,
        ) as bar,
    ):
        while n := f.readinto(buffer):
            digest.update(view[:n])
            bar.update(n)
    return digest.hexdigest()


def file_stat(path: Path) -> dict[str, int]:
    """Size, mtime, ctime, inode and device: ctime cannot be set back by copying tools (cp -p, rsync -t),
    so a file rewritten in place with its old mtime still shows a change."""
    st = Path(path).stat()
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "inode": st.st_ino,
        "device": st.st_dev,
    }
