"""Arrays directories built once and kept in a cache folder, keyed by what made them.

Used by the `recordings` and `seed_dv` dataset components: the key covers the spec and the sha256
of every input file, so a changed file or option builds a new entry and an unchanged one is read
back (memory-mapped) without decoding anything.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE = "~/.cache/peftzoo/ingest"


def cache_root(cache_dir: str | None) -> Path:
    """The cache folder: the option, else $PEFTZOO_INGEST_CACHE, else ~/.cache/peftzoo/ingest; an
    IngestError naming where it came from when it (or a folder above it) is a file."""
    from peftzoo_data.ingest.errors import IngestError

    from_env = os.environ.get("PEFTZOO_INGEST_CACHE")
    origin = "data.cache_dir" if cache_dir else "$PEFTZOO_INGEST_CACHE" if from_env else "the default cache"
    root = Path(cache_dir or from_env or DEFAULT_CACHE).expanduser()
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise IngestError(
            f"{origin}: {str(root)!r} cannot be the ingest cache folder: {str(probe)!r} is a file; "
            f"give a folder (or remove the file)"
        )
    return root
