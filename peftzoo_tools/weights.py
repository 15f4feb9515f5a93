"""`peftzoo weights list|where|verify|download` (also `python -m peftzoo_tools.weights`): the named pretrained weights.

    peftzoo weights list [--json]        every known checkpoint: source, file, size, sha256, present?, download command
    peftzoo weights where [NAME]         the cache folder, or the path NAME is read from
    peftzoo weights verify [NAME ...]    sha256 of the present files against what their publishers give
    peftzoo weights download NAME        fetch NAME into the cache (the only command that uses the network)

A recipe names one as an encoder option, `pretrained: labram-base`; building the model reads it
from the cache and never downloads (encoders/pretrained.py). The table is encoders/weights_table.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from encoders import pretrained
from encoders.weights_table import Checkpoint
from registry.errors import UserError

NOT_PUBLISHED = "not published"


def _size(entry: Checkpoint) -> str:
    return f"about {entry.size_mb:,.1f} MB (publisher's figure)" if entry.size_mb else NOT_PUBLISHED


def _hash(entry: Checkpoint) -> str:
    if entry.sha256:
        return entry.sha256
    if entry.sha256_prefix:
        return f"{entry.sha256_prefix}... (the publisher gives the first {len(entry.sha256_prefix)} hex digits)"
    return NOT_PUBLISHED


def _row(entry: Checkpoint) -> dict:
    path = pretrained.path_of(entry)
    return {
        "name": entry.name,
        "family": entry.family,
        "preset": entry.preset,
        "description": entry.description,
        "url": entry.url,
        "source": entry.source,
        "file": entry.file,
        "path": str(path),
        "present": path.is_file(),
        "size_mb": entry.size_mb,
        "sha256": entry.sha256,
        "sha256_prefix": entry.sha256_prefix,
        "download": pretrained.download_command(entry),
        "notes": entry.notes,
    }


def _cache_line() -> str:
    origin = f"${pretrained.ENV}" if os.environ.get(pretrained.ENV) else f"default; set ${pretrained.ENV} to move it"
    return f"weights cache: {pretrained.cache_dir()} ({origin})"


def list_command(as_json: bool) -> int:
    rows = [_row(entry) for entry in pretrained.KNOWN.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    out = [_cache_line(), "recipe: an encoder option, e.g. `encoder: {name: labram_base, pretrained: labram-base}`", ""]
    for row, entry in zip(rows, pretrained.KNOWN.values()):
        state = "present" if row["present"] else "missing"
        out += [
            f"{entry.name}  [{state}]  encoder preset {entry.preset}",
            f"  {entry.description}",
            f"  file      {entry.file}",
            f"  url       {entry.url}",
            f"  source    {entry.source}",
            f"  size      {_size(entry)}",
            f"  sha256    {_hash(entry)}",
            f"  download  {row['download']}",
        ]
        if entry.notes:
            out.append(f"  note      {entry.notes}")
        out.append("")
    print("\n".join(out).rstrip())
    return 0


def where_command(name: str | None) -> int:
    """The cache folder, or NAME's file there (printed whether present or not, for scripts)."""
    if name is None:
        print(pretrained.cache_dir())
        return 0
    entry = pretrained.lookup(name)
    path = pretrained.path_of(entry)
    print(path)
    if not path.is_file():
        print(f"({name} is not there yet; download it with: {pretrained.download_command(entry)})", file=sys.stderr)
    return 0


def _verdict(entry: Checkpoint, path: Path) -> tuple[bool, str]:
    digest = pretrained.file_sha256(path)
    size = f"{path.stat().st_size:,} bytes"
    match = pretrained.hash_matches(entry, digest)
    if match is None:
        return True, f"{entry.name}: present ({size}), unverified: no hash is published; its sha256 is {digest}"
    if match:
        what = "sha256 matches" if entry.sha256 else f"sha256 starts with the published {entry.sha256_prefix}"
        return True, f"{entry.name}: ok ({what}; {size})"
    return False, f"{entry.name}: MISMATCH ({size}): " + pretrained.mismatch_message(entry, path, digest)


def verify_command(names: list[str]) -> int:
    """Hash the present files (or the named ones, which must be present); exit 2 when one disagrees."""
    entries = [pretrained.lookup(n) for n in names] if names else list(pretrained.KNOWN.values())
    missing = [e for e in entries if not pretrained.path_of(e).is_file()]
    if names and missing:
        e = missing[0]
        raise pretrained.WeightsError(
            f"{e.name} is not in the weights cache ({pretrained.path_of(e)}); "
            f"download it with: {pretrained.download_command(e)}"
        )
    print(_cache_line())
    bad = 0
    for entry in entries:
        path = pretrained.path_of(entry)
        if not path.is_file():
            print(f"{entry.name}: missing")
            continue
        ok, line = _verdict(entry, path)
        bad += not ok
        print(line)
    if bad:
        print(
            f"error: {bad} file{'s' if bad > 1 else ''} in the weights cache disagree with the published hash; "
            f"delete and download them again",
            file=sys.stderr,
        )
        return 2
    return 0


def download_command(name: str, force: bool) -> int:
    """Fetch NAME with torch.hub's downloader (a temporary file, moved into place once its hash prefix checks)."""
    from torch.hub import download_url_to_file

    entry = pretrained.lookup(name)
    path = pretrained.path_of(entry)
    if path.is_file() and not force:
        print(f"{path} is already there (peftzoo weights verify {name} checks it; --force downloads again)")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"downloading {entry.url}\n  -> {path}", file=sys.stderr)
    try:
        download_url_to_file(entry.url, str(path), hash_prefix=entry.sha256_prefix, progress=sys.stderr.isatty())
    except RuntimeError as exc:  # torch.hub's hash-prefix mismatch (the partial file is removed)
        raise pretrained.WeightsError(f"downloading {name}: {exc}") from None
    except OSError as exc:
        raise pretrained.WeightsError(
            f"downloading {name} from {entry.url} failed ({exc}); check the network, "
            f"or fetch it by hand: {pretrained.download_command(entry)}"
        ) from None
    digest = pretrained.file_sha256(path)
    if pretrained.hash_matches(entry, digest) is False:
        path.unlink()
        raise pretrained.WeightsError(
            f"the download of {name} has sha256 {digest}, not the published "
            f"{pretrained.published_hash(entry)}; it was removed"
        )
    print(f"{path} ({path.stat().st_size:,} bytes, sha256 {digest})")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="peftzoo weights",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_cache_line(),
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{list,where,verify,download}")
    ls = sub.add_parser("list", help="every known checkpoint, whether it is in the cache, and how to download it")
    ls.add_argument("--json", action="store_true", help="a JSON list of objects instead of text")
    wh = sub.add_parser("where", help="the cache folder, or the path a checkpoint is read from")
    wh.add_argument("name", nargs="?")
    ve = sub.add_parser("verify", help="check the sha256 of the files in the cache")
    ve.add_argument("names", nargs="*", metavar="NAME")
    dl = sub.add_parser("download", help="fetch a checkpoint into the cache (uses the network)")
    dl.add_argument("name")
    dl.add_argument("--force", action="store_true", help="download again when the file is there")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "list":
            return list_command(args.json)
        if args.command == "where":
            return where_command(args.name)
        if args.command == "verify":
            return verify_command(args.names)
        return download_command(args.name, args.force)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `peftzoo weights list | head`: the reader left; say nothing more
        sys.stdout = None
        return 0


if __name__ == "__main__":
    sys.exit(main())
