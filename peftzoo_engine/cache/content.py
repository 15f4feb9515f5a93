"""Content identity of the arrays a cache entry is computed from.

A data set's own fingerprint may be path + size + mtime (cheap, but a copy with preserved times, or a
file rewritten in place and given back its mtime, looks unchanged). Cache keys use the content
instead: a memory-mapped array is identified by a sha256 of its file, computed once and remembered
in a small sidecar under the cache directory, keyed by the file's path, size, mtime, ctime, inode
and device (ctime cannot be set back by copying tools, so a rewrite in place is noticed). An array
in memory (synthetic data, recordings decoded at load time) or part of a mapped file is hashed from
its own bytes on each call: it is in memory already, hashing runs at about 1 GB/s, and unlike a
generating config its content also follows edits of the generating code. Files are hashed in
streaming chunks (peftzoo_engine/cache/hashing.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from peftzoo_engine.cache.hashing import CHUNK, file_digest, file_stat
from peftzoo_engine.cache.store import locked_path, write_json_atomic

logger = logging.getLogger(__name__)


def remembered_digest(path: Path, cache_dir: Path) -> str:
    """The file's sha256, from the sidecar in `cache_dir/.hashes` when the file is unchanged, else hashed now."""
    path = Path(path).resolve()
    name = hashlib.sha256(str(path).encode()).hexdigest()[:32]
    sidecar = Path(cache_dir) / ".hashes" / f"{name}.json"
    with locked_path(Path(cache_dir) / ".locks" / f"hash-{name}.lock", f"hashing {path}"):  # hash once across processes
        stat = file_stat(path)
        try:
            known = json.loads(sidecar.read_text())
            if known.get("path") == str(path) and known.get("stat") == stat and isinstance(known.get("sha256"), str):
                return known["sha256"]
        except (OSError, ValueError):
            pass  # absent or unreadable: hash again
        if stat["size"] > 1 << 30:
            logger.info(
                "hashing %s (%.1f GiB) once for the cache key; later runs reuse the hash", path, stat["size"] / 2**30
            )
        digest = file_digest(path)
        if file_stat(path) != stat:
            raise OSError(f"{path} changed while it was being hashed; run again when it is no longer being written")
        write_json_atomic(sidecar, {"path": str(path), "stat": stat, "sha256": digest})
        return digest


def backing_file(array: np.ndarray) -> Path | None:
    """The file a memory-mapped array is the whole content of (after its header), else None."""
    if not isinstance(array, np.memmap) or not getattr(array, "filename", None) or not array.flags.c_contiguous:
        return None
    path = Path(array.filename)
    try:
        size = path.stat().st_size
    except OSError:
        return None
    # A slice of the map shares its filename and offset: only a map of the whole file stands for the file.
    return path if int(array.offset) + array.nbytes == size else None


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's bytes in C order, in chunks of rows (no full copy of a memory map)."""
    digest = hashlib.sha256()
    rows = max(1, CHUNK // max(1, array[0].nbytes)) if len(array) else 1
    for start in range(0, len(array), rows):
        digest.update(np.ascontiguousarray(array[start : start + rows]).data)
    return digest.hexdigest()


def identity(array: np.ndarray, fingerprint: str | None, cache_dir: Path) -> tuple[dict, str] | None:
    """(what the key holds for this array, a short description for listings); None: do not cache on disk.

    A file-backed array is keyed by its file's content; part of a mapped file and an in-memory array
    by their own bytes. A data set whose component gives no fingerprint is not cached on disk (the
    PairedData contract: None disables the on-disk cache).
    """
    shape = {"shape": list(array.shape), "dtype": str(array.dtype)}
    if fingerprint is None:
        return None
    path = backing_file(array)
    if path is not None:
        return {"sha256": remembered_digest(path, cache_dir), "offset": int(array.offset), **shape}, str(path.resolve())
    if isinstance(array, np.memmap):
        return {"sha256": array_digest(array), **shape}, f"part of {array.filename}"
    return {"sha256": array_digest(array), **shape}, f"in memory, data fingerprint {fingerprint[:12]}"
