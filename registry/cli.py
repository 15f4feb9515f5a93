"""`list-registry` (also `python -m registry`): what is installed, from metadata alone.

--check imports each component, runs the quick, import-level part of the conformance kit on it
(registry/quick.py: Config is pydantic and refuses unknown keys, a description, what its
kind needs on the class) and reports `ok` or `error: <Type>: <message>` per row; it exits 1 when any
row is in error, so scripts and CI can rely on it. The full kit: `python -m peftzoo_conformance`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from registry.core import Registry
from registry.errors import UserError
from registry.kinds import KINDS
from registry.pipes import quiet_on_broken_pipe
from registry.quick import quick_problems


def _check(reg: Registry, entry) -> str:
    """The row's status under --check: the registry's load check, then the kit's quick checks."""
    status = reg.check(entry)
    if status != "ok":
        return status
    problems = quick_problems(entry.kind, entry.name, reg.get(entry.kind, entry.name))
    return f"error: ConformanceError: {'; '.join(problems)}" if problems else "ok"


def _rows(reg: Registry, kind: str | None, check: bool) -> list[dict]:
    rows = []
    for entry in reg.entries(kind):
        if check:
            status = _check(reg, entry)
        elif entry.duplicate_of:
            status = f"error: DuplicateComponentError: also registered by {', '.join(entry.duplicate_of)}"
        else:
            status = "unchecked"
        description = entry.description
        if check and status == "ok" and not description:
            description = reg.description(entry.kind, entry.name)
        rows.append(
            {
                "kind": entry.kind,
                "name": entry.name,
                "target": entry.target,
                "distribution": entry.distribution,
                "version": entry.version,
                "status": status,
                "description": description,
            }
        )
    return rows


def _table(rows: list[dict], check: bool) -> str:
    headers = ["KIND", "NAME", "DISTRIBUTION", "STATUS" if check else None, "DESCRIPTION"]
    headers = [h for h in headers if h]
    lines = []
    for r in rows:
        dist = f"{r['distribution']} {r['version']}" if r["version"] else r["distribution"]
        cells = [r["kind"], r["name"], dist]
        if check:
            cells.append(r["status"] if r["status"] == "ok" else "ERROR")
        elif r["status"].startswith("error"):
            dist += " (DUPLICATE)"
            cells[2] = dist
        cells.append(r["description"])
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(headers)]
    width = shutil.get_terminal_size((120, 20)).columns
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for cells in lines:
        line = "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        out.append(line if len(line) <= width or not sys.stdout.isatty() else line[: width - 1] + "…")
    errors = [r for r in rows if r["status"].startswith("error")]
    if errors:
        out.append("")
        for r in errors:
            out.append(f"{r['kind']} {r['name']} ({r['distribution']}): {r['status']}")
    return "\n".join(out)


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="list-registry",
        description="List the encoders, strategies, heads, losses, data sets and training callbacks installed.",
    )
    parser.add_argument("--kind", choices=KINDS, help="only this kind")
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    parser.add_argument(
        "--check",
        action="store_true",
        help="import each component, run the conformance kit's quick checks on it, report its status",
    )
    args = parser.parse_args(argv)

    reg = Registry()
    try:
        rows = _rows(reg, args.kind, args.check)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = reg.problems()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows, args.check))
    for p in problems:
        print(f"warning: malformed entry point skipped: {p}", file=sys.stderr)
    if args.check and any(r["status"] != "ok" for r in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
