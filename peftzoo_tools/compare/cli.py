"""`python -m recipes.compare PATH... [--metrics M1,M2] [--html OUT]`

PATH is a run directory, a sweep directory, or a folder holding them (searched recursively). Prints
a table of the recipe keys that differ between the runs and each metric's final and best value,
best run first; `--html OUT` also writes OUT/index.html with plots per run and, for sweeps, the
selection metric against every swept value.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from peftzoo_tools.compare import page, runs, table
from registry.errors import UserError
from registry.pipes import quiet_on_broken_pipe


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recipes.compare",
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="run directories, sweep directories, or folders of them"
    )
    parser.add_argument(
        "--metrics",
        default=None,
        help=f"comma-separated metrics (default {','.join(table.DEFAULT_METRICS)}); the first sorts the table",
    )
    parser.add_argument("--html", metavar="OUT", help="write a static page OUT/index.html with PNG plots")
    args = parser.parse_args(argv)
    chosen = args.metrics is not None
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if chosen else list(table.DEFAULT_METRICS)
    try:
        if not metrics:
            raise UserError("--metrics is empty; give metric names as in metrics.jsonl, e.g. val/eeg_to_video/R@1")
        if args.html:
            page.check_output(Path(args.html))  # before the table: one message, nothing printed or written
        found, sweeps = runs.collect(args.paths)
        known = {k for r in found for line in r.evals() for k in line}
        unknown = [m for m in metrics if m not in known]
        # Only metrics the user named must exist: runs still before their first evaluation (or failed
        # before it) show "-" under the default ones rather than refusing the whole comparison.
        if unknown and chosen:
            per_step = {k for r in found for line in r.lines if line.get("type") != "eval" for k in line}
            hint = (
                f"; {', '.join(m for m in unknown if m in per_step)} is logged per step or epoch of training, "
                "while compare ranks the evaluation's metrics"
                if any(m in per_step for m in unknown)
                else ""
            )
            raise UserError(
                f"--metrics: {', '.join(unknown)} not logged by any of these runs' evaluations{hint} "
                f"(logged: {', '.join(sorted(k for k in known if k not in ('type', 'epoch', 'step')))})"
            )
        header, body = table.rows(found, metrics)
        print(table.text(header, body))
        if args.html:
            index = page.write(Path(args.html), found, sweeps, metrics)
            print(f"html: {index}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
