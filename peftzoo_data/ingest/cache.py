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
    """The cache folder: the option, else $PEFTZOO_INGEST_CACHE, else ~/.cache/peftzoo/ingest."""
    return Path(cache_dir or os.environ.get("PEFTZOO_INGEST_CACHE") or DEFAULT_CACHE).expanduser()
