"""`python -m recipes.cache [--cache-dir DIR] list [--json] [--verify] | clear (--all | --older-than DAYS | ENTRY...)`.

Shows what the feature and clip caches hold (each entry's side, encoder, data, pairs, size, age and
last use, and whether it is sound: manifest and size, and with --verify every byte against the
sha256 written with it) and removes entries: all of them, those unused for DAYS days, or
named ones (a unique prefix of the name is enough). Only files named as cache entries (and the
cache's own .hashes, .locks and temporary files) are ever removed, so pointing --cache-dir at the
wrong folder removes nothing else. An entry another process is writing is skipped. A bad directory
or an unknown entry exits 2 with one message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path

import filelock

from peftzoo_engine.cache.store import Entry, Listed, scan, temporaries
from registry.errors import UserError
from registry.pipes import quiet_on_broken_pipe

DEFAULT_DIR = Path("runs") / ".cache" / "features"
"""Where `python -m recipes.run` keeps the cache with its default --output-dir and no train.cache_dir."""


class CacheCommandError(UserError):
    """A cache directory or entry that does not exist or cannot be used."""


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def human_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def cache_directory(path: str | None) -> Path:
    directory = Path(path).expanduser() if path else DEFAULT_DIR
    if not directory.exists():
        where = "--cache-dir" if path else "the default cache directory"
        raise CacheCommandError(
            f"{where} {str(directory)!r} does not exist; runs keep the cache in OUTPUT_DIR/.cache/features "
            f"(or train.cache_dir): pass that with --cache-dir"
        )
    if not directory.is_dir():
        raise CacheCommandError(f"--cache-dir {str(directory)!r} is a file, not a directory; pass the cache directory")
    return directory


def describe(item: Listed) -> dict:
    about = item.manifest.get("describe", {}) if isinstance(item.manifest.get("describe"), dict) else {}
    return {
        "entry": item.name,
        "kind": item.manifest.get("kind", "video-clips" if item.name.startswith("video-clips-") else "features"),
        "side": about.get("side", item.name.split("-")[0]),
        "encoder": about.get("encoder", "?"),
        "data": about.get("data", "?"),
        "pairs": about.get("pairs"),
        "device": about.get("device"),
        "created": item.manifest.get("created"),
        "size_bytes": item.size,
        "age_days": round((time.time() - item.created) / 86400, 3),
        "last_used_days": round(item.age_days, 3),
        "status": item.status,
        "files": [str(p) for p in item.files],
    }


def list_entries(directory: Path, as_json: bool, verify: bool = False) -> None:
    items = [describe(item) for item in scan(directory, verify=verify)]
    if as_json:
        print(
            json.dumps(
                {"cache_dir": str(directory), "size_bytes": sum(i["size_bytes"] for i in items), "entries": items},
                indent=1,
            )
        )
        return
    total = sum(i["size_bytes"] for i in items)
    print(f"cache {directory}: {len(items)} entries, {human_size(total)}")
    if not items:
        return
    rows = [("ENTRY", "KIND", "SIDE", "ENCODER", "PAIRS", "SIZE", "AGE", "USED", "STATUS", "DATA")]
    for i in items:
        rows.append(
            (
                i["entry"][:22],
                i["kind"],
                i["side"],
                str(i["encoder"]),
                str(i["pairs"] if i["pairs"] is not None else "?"),
                human_size(i["size_bytes"]),
                human_age(i["age_days"] * 86400),
                human_age(i["last_used_days"] * 86400) + " ago",
                i["status"],
                str(i["data"]),
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


def _remove(directory: Path, item: Listed) -> bool:
    """Remove an entry unless another process holds its lock (it is being written or read right now)."""
    suffix = next((p.suffix for p in item.files if p.suffix != ".json"), ".npy")
    entry = Entry(directory, item.name, suffix)
    lock = filelock.FileLock(str(entry.lock_path)) if entry.lock_path.parent.is_dir() else None
    try:
        if lock is not None:
            lock.acquire(timeout=0)
    except filelock.Timeout:
        print(f"skipped {item.name}: another process is using it", file=sys.stderr)
        return False
    try:
        entry.remove()
    finally:
        if lock is not None:
            lock.release()
    return True


def clear(directory: Path, names: list[str], everything: bool, older_than: float | None) -> None:
    items = scan(directory)
    if names:
        chosen = []
        for name in names:
            found = [i for i in items if i.name.startswith(name)]
            if not found:
                raise CacheCommandError(
                    f"no entry {name!r} in {directory}; `python -m recipes.cache --cache-dir {directory} list` shows "
                    f"them"
                )
            if len(found) > 1:
                raise CacheCommandError(f"{name!r} names {len(found)} entries in {directory}; give more of the name")
            chosen += found
    elif everything:
        chosen = items
    else:
        chosen = [i for i in items if i.age_days > older_than]
    removed = [i for i in chosen if _remove(directory, i)]
    freed = sum(i.size for i in removed)
    # Temporary files of killed writers: all with --all, else those older than the cut (live ones are recent).
    cut = 0 if everything else (older_than if older_than is not None else 1.0) * 86400
    for tmp in temporaries(directory):
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime >= cut:
                freed += tmp.stat().st_size
                tmp.unlink()
    if everything:
        shutil.rmtree(directory / ".hashes", ignore_errors=True)  # remembered hashes of data files: recomputed on need
    print(f"removed {len(removed)} of {len(items)} entries from {directory}, freed {human_size(freed)}")


def non_negative_days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not days >= 0 or days == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} days: give a finite number >= 0")
    return days


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.cache", description=__doc__.splitlines()[0].strip("`."))
    parser.add_argument(
        "--cache-dir", help=f"the cache directory (default: {DEFAULT_DIR}, the one runs with --output-dir runs use)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="entries with their side, encoder, data, size, age and status")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument(
        "--verify", action="store_true", help="also check every entry's bytes against its sha256 (reads them all)"
    )
    clearing = commands.add_parser("clear", help="remove all entries, those unused for DAYS days, or named ones")
    clearing.add_argument(
        "entries", nargs="*", metavar="ENTRY", help="entry names (or unique prefixes) as `list` shows them"
    )
    group = clearing.add_mutually_exclusive_group()
    group.add_argument("--all", action="store_true", help="remove every entry")
    group.add_argument(
        "--older-than", type=non_negative_days, metavar="DAYS", help="remove entries not used for DAYS days"
    )
    args = parser.parse_args(argv)
    if args.command == "clear":
        if not args.entries and not args.all and args.older_than is None:
            parser.error("clear needs --all, --older-than DAYS or ENTRY names")
        if args.entries and (args.all or args.older_than is not None):
            parser.error("give ENTRY names or --all / --older-than, not both")
    try:
        directory = cache_directory(args.cache_dir)
        if args.command == "list":
            list_entries(directory, args.json, args.verify)
        else:
            clear(directory, args.entries, args.all, args.older_than)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(
            f"error: {exc.filename or args.cache_dir}: permission denied; run as a user who may change the cache",
            file=sys.stderr,
        )
        return 2
    return 0
