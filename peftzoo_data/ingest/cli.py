"""`python -m recipes.ingest SPEC --out DIR`: EEG recordings + stimulus videos -> an arrays directory.

`--merge A B ... --out C` joins ingested folders whose channels, rates and shapes agree.
`--schema` prints the spec's JSON Schema. A mistake in the spec or the files exits 2 with one
message naming it (no traceback) and leaves DIR as it was. The last line printed is `data: DIR`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from registry.errors import UserError
from registry.pipes import quiet_on_broken_pipe


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", help="the ingest spec (YAML)")
    parser.add_argument("--out", help="output folder (an arrays directory: eeg.npy, video.npy, meta.json, ...)")
    parser.add_argument("--schema", action="store_true", help="print the spec's JSON Schema and exit")
    parser.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        help="join these ingested folders into --out (channels, rates and shapes must agree)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="recordings processed at once, each in its own process (default: one per CPU core)",
    )
    args = parser.parse_args(argv)
    from peftzoo_data.ingest import spec as spec_module

    if args.schema:
        print(spec_module.json_schema())
        return 0
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1 (got {args.workers})")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.merge:
        return _merge(parser, args)
    if not args.spec or not args.out:
        parser.error("give SPEC and --out DIR (or --merge DIR DIR ... --out DIR, or --schema)")
    from peftzoo_data.ingest import ingest

    try:
        report = ingest(args.spec, args.out, quiet=args.quiet, workers=args.workers)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in report["recordings"]:
        state = "reused" if r.get("reused") else "ingested"
        print(
            f"{r['recording']}: {r['events_found']} events, {r['pairs']} pairs, {r['windows_dropped_count']} windows "
            f"dropped ({state})"
        )
    print(f"pairs: {report['pairs']} " + json.dumps(report["split_sizes"]))
    print(f"data: {Path(args.out).expanduser().resolve()}")
    return 0


def _merge(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.spec or not args.out:
        parser.error("--merge takes the ingested folders and --out DIR, no SPEC")
    from peftzoo_data.ingest.merge import merge

    try:
        report = merge(args.merge, args.out)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"pairs: {report['pairs']} " + json.dumps(report["split_sizes"]))
    print(f"data: {Path(args.out).expanduser().resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
