"""Cache entries on disk: a data file, a manifest written last, and a lock per entry.

An entry `NAME` (`eeg-<key>`, `video-<key>`, `video-clips-<key>`) is `NAME.safetensors` or
`NAME.npy` plus `NAME.json`, its manifest (what it is, its size and sha256, when made). The data file
is written under a temporary name and renamed into place, and the manifest is written after it: a
data file without its manifest was never completed, so an interrupted or killed writer leaves no
entry that looks valid. Readers check an entry against its manifest and what its key implies, and a
damaged one is named in a warning, removed and recomputed, instead of failing every later run.
Writers hold the entry's lock (`.locks/NAME.lock`, an advisory file lock through `filelock`), so two
processes computing the same entry do not both write it: the second waits and then reads it
(`read_or_compute`, the one such step the feature and clip caches share).
The manifest's mtime is touched on every use, so `clear --older-than` goes by last use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import filelock

from peftzoo_engine.cache.hashing import file_digest, file_stat
from peftzoo_engine.rundir import atomic_write, now
from registry.errors import UserError

logger = logging.getLogger(__name__)

FORMAT = 1
"""Manifest format version; an entry of another format is recomputed."""

ENTRY = re.compile(r"^(?P<name>(?:eeg|video|video-clips)-[0-9a-f]{32})(?P<suffix>\.safetensors|\.npy|\.json)$")
"""The files that belong to entries; nothing else in a cache directory is ever listed or removed."""

TEMPORARY = re.compile(r"^\.(?:eeg|video|video-clips)-[0-9a-f]{32}\.(?:safetensors|npy|json)\..*\.tmp$")

T = TypeVar("T")


class CacheDirError(UserError, OSError):
    """A cache directory that cannot be created or written."""


def ensure_directory(directory: Path) -> Path:
    """`directory`, created if needed and checked writable; CacheDirError naming the fix otherwise.

    Cheap: the trainer may call it before a run starts, so a bad train.cache_dir is refused before
    anything is created (and the caches call it before they lock or write).
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CacheDirError(
            f"cache directory {str(directory)!r} is a file; point train.cache_dir at a directory"
        ) from None
    except OSError as exc:
        raise CacheDirError(
            f"cache directory {str(directory)!r} cannot be created ({exc.strerror}); point train.cache_dir at a "
            f"writable place"
        ) from None
    if not directory.is_dir():
        raise CacheDirError(
            f"cache directory {str(directory)!r} is not a directory; point train.cache_dir at a directory"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CacheDirError(
            f"cache directory {str(directory)!r} is not writable; point train.cache_dir at a writable place"
        )
    return directory


class Damaged(Exception):
    """An entry that does not match its manifest or its key (the message says how)."""


def write_json_atomic(path: Path, obj: dict) -> None:
    atomic_write(path, json.dumps(obj, indent=1, sort_keys=True))


@contextlib.contextmanager
def locked_path(lock: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `lock`; say once when another process holds it (waiting stays interruptible)."""
    ensure_directory(lock.parent)
    file_lock = filelock.FileLock(str(lock))
    try:
        file_lock.acquire(timeout=0)
    except filelock.Timeout:
        logger.info("another process is %s; waiting for it to finish (%s)", what, lock)
        file_lock.acquire(poll_interval=0.1)  # polls with sleeps, so Ctrl-C and SIGTERM still stop it
    try:
        yield
    finally:
        file_lock.release()


@dataclasses.dataclass(frozen=True)
class Entry:
    directory: Path
    name: str
    """`eeg-<key>`, `video-<key>` or `video-clips-<key>`."""
    suffix: str
    """`.safetensors` or `.npy`."""

    @property
    def data_path(self) -> Path:
        return self.directory / f"{self.name}{self.suffix}"

    @property
    def manifest_path(self) -> Path:
        return self.directory / f"{self.name}.json"

    @property
    def lock_path(self) -> Path:
        return self.directory / ".locks" / f"{self.name}.lock"

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return locked_path(self.lock_path, f"writing {self.data_path.name}")

    def temporary(self) -> Path:
        """A unique temporary path beside the data file (hidden, removed by `clear`)."""
        return self.directory / f".{self.data_path.name}.{uuid.uuid4().hex}.tmp"

    def manifest(self) -> dict | None:
        """The entry's manifest after checking it against the data file; None when there is no entry.

        Raises Damaged for a data file without manifest (never completed), a manifest without data
        file, an unreadable manifest, or a data file of another size than the one written.
        """
        has_data, has_manifest = self.data_path.exists(), self.manifest_path.exists()
        if not has_data and not has_manifest:
            return None
        if not has_manifest:
            raise Damaged("it has no manifest: its writing never completed, or an older peftzoo wrote it")
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise Damaged(f"its manifest {self.manifest_path.name} is unreadable: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("name") != self.name:
            raise Damaged(f"its manifest {self.manifest_path.name} is not a format-{FORMAT} manifest of this entry")
        if not has_data:
            raise Damaged(f"its data file {self.data_path.name} is missing")
        size = self.data_path.stat().st_size
        if size != manifest.get("size"):
            raise Damaged(
                f"{self.data_path.name} has {size} bytes but {manifest.get('size')} were written (truncated or "
                f"overwritten)"
            )
        return manifest

    def publish(self, temporary: Path, manifest: dict) -> None:
        """Rename the complete data file into place, then write the manifest: the entry exists from then on."""
        full = {
            "format": FORMAT,
            "name": self.name,
            "file": self.data_path.name,
            "created": now(),
            "size": temporary.stat().st_size,
            **manifest,
        }
        try:
            os.replace(temporary, self.data_path)
            full["stat"] = file_stat(self.data_path)  # after the rename, which may set ctime
            write_json_atomic(self.manifest_path, full)
        except BaseException:
            temporary.unlink(missing_ok=True)
            self.data_path.unlink(missing_ok=True)
            raise

    def verify(self, manifest: dict) -> None:
        """Check the data file's sha256 against the manifest, unless the file is untouched since written.

        An untouched file (same size, mtime, ctime, inode) is trusted; any other is hashed in full once
        (a cache copied elsewhere, a file rewritten in place) and its new facts recorded when sound.
        """
        if manifest.get("stat") == file_stat(self.data_path):
            return
        if file_digest(self.data_path) != manifest.get("sha256"):
            raise Damaged("its bytes do not match the sha256 written with it")
        with contextlib.suppress(OSError):
            write_json_atomic(self.manifest_path, {**manifest, "stat": file_stat(self.data_path)})

    def publish_bytes(self, raw: bytes, manifest: dict) -> None:
        """Write `raw` to a temporary file (fsynced), rename it into place, then write the manifest."""
        temporary = self.temporary()
        try:
            with open(temporary, "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self.publish(temporary, manifest)

    def discard(self, reason: str) -> None:
        logger.warning("cache entry %s is damaged (%s); removing it and computing it again", self.data_path, reason)
        self.remove()

    def remove(self) -> None:
        """Manifest first: a data file whose manifest is gone is no longer an entry, whatever happens next."""
        self.manifest_path.unlink(missing_ok=True)
        self.data_path.unlink(missing_ok=True)

    def touch(self) -> None:
        """Mark the entry used now (the manifest's mtime), for `clear --older-than`."""
        with contextlib.suppress(OSError):  # a read-only cache still serves
            os.utime(self.manifest_path)


def spec_key(spec: dict) -> str:
    """The entry key of a key spec: 32 hex digits of the sha256 of its canonical JSON."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]


def read_or_compute(entry: Entry, read: Callable[[Entry], T | None], compute: Callable[[Entry], T], what: str) -> T:
    """The entry's content through `read` when it is there and sound, else through `compute`, which publishes it.

    Both run under the entry's lock, so a second process after the same entry waits and then reads
    what the first wrote. `read` returns None for no entry and raises Damaged for a bad one: that
    one is named in a warning, removed and computed again. `what` names the content in the log.
    """
    with entry.locked():
        try:
            found = read(entry)
        except Damaged as exc:
            entry.discard(str(exc))
            found = None
        if found is not None:
            entry.touch()
            logger.info("%s: loaded from %s", what, entry.data_path)
            return found
        return compute(entry)


@dataclasses.dataclass
class Listed:
    """One entry as `python -m recipes.cache list` shows it."""

    name: str
    files: list[Path]
    size: int
    status: str
    """`ok`, or what is wrong (`incomplete`, `damaged: ...`)."""
    manifest: dict
    created: float
    last_used: float

    @property
    def age_days(self) -> float:
        return (time.time() - self.last_used) / 86400


def scan(directory: Path, verify: bool = False) -> list[Listed]:
    """Every entry (complete or not) in `directory`, oldest use first.

    Reads manifests and sizes only; with `verify`, also every data file's bytes against its sha256.
    """
    groups: dict[str, list[Path]] = {}
    for path in directory.iterdir():
        match = ENTRY.match(path.name)
        if match and path.is_file():
            groups.setdefault(match["name"], []).append(path)
    listed = []
    for name, files in groups.items():
        data = [p for p in files if p.suffix != ".json"]
        entry = Entry(
            directory, name, data[0].suffix if data else (".npy" if name.startswith("video-clips-") else ".safetensors")
        )
        manifest, status = {}, "ok"
        try:
            manifest = entry.manifest() or {}
            if verify and file_digest(entry.data_path) != manifest.get("sha256"):
                raise Damaged("its bytes do not match the sha256 written with it")
        except Damaged as exc:
            status = f"damaged: {exc}"
            with contextlib.suppress(OSError, ValueError):
                manifest = json.loads(entry.manifest_path.read_text())
            if not isinstance(manifest, dict):
                manifest = {}
        try:  # another process may remove or replace files while we look
            stats = [p.stat() for p in files]
            last_used = (
                entry.manifest_path.stat().st_mtime if entry.manifest_path.exists() else max(s.st_mtime for s in stats)
            )
        except FileNotFoundError:
            continue
        created = min(s.st_mtime for s in stats)
        listed.append(Listed(name, sorted(files), sum(s.st_size for s in stats), status, manifest, created, last_used))
    return sorted(listed, key=lambda x: x.last_used)


def temporaries(directory: Path) -> list[Path]:
    """Temporary files of writers (live ones, or left by a process killed with SIGKILL)."""
    return sorted(p for p in directory.iterdir() if TEMPORARY.match(p.name) and p.is_file())
