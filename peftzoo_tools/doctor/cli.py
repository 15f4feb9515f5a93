"""`python -m recipes.doctor RUN [--json]`: diagnose a run directory.

Prints the findings most severe first, each with its evidence and fix; `--json` prints a list of
`{"code", "severity", "evidence", "fix"}`. Exit 0 when the run could be read (with or without
findings), 2 (one `error:` line) when the path is not a run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap

from registry.errors import UserError
from registry.pipes import quiet_on_broken_pipe


def _override(key: str, value) -> str:
    """`key=value` as recipes/overrides.py reads it (YAML values; a mapping or list in flow style, quoted)."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
    return f"'{key}={text}'" if isinstance(value, dict | list) else f"{key}={text}"


def _text(report) -> str:
    run = report.run
    status = run.info.get("status", "unknown")
    lines = [
        f"run {run.path.name} ({status}, {run.total_steps()} steps): "
        f"{len(report.findings) or 'no'} finding{'s' if len(report.findings) != 1 else ''}"
    ]
    for f in report.findings:
        lines.append(f"\n{f.severity.upper():7s} {f.code}")
        lines += textwrap.wrap(f.evidence, 100, initial_indent="  evidence: ", subsequent_indent="            ")
        lines += textwrap.wrap(f.fix, 100, initial_indent="  fix:      ", subsequent_indent="            ")
        if f.overrides:  # the fix as command-line overrides of the run's recipe
            lines.append("  apply:    " + " ".join(_override(k, v) for k, v in f.overrides.items()))
    for note in report.notes:
        lines.append(f"\nnote: {note}")
    return "\n".join(lines)


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.doctor", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory (the one `run:` printed)")
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    parser.add_argument(
        "--no-model", action="store_true", help="read metrics and recipe only; do not rebuild the model or embed data"
    )
    parser.add_argument("--sample", type=int, default=256, help="validation pairs to embed (default 256)")
    parser.add_argument(
        "--device", default="cpu", help="device for embedding the sample: cpu (default), auto, cuda or cuda:N"
    )
    args = parser.parse_args(argv)
    if args.sample < 4:
        parser.error(f"--sample {args.sample}: embed at least 4 validation pairs (default 256)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from peftzoo_engine.device import resolve_device
    from peftzoo_tools.doctor.diagnose import diagnose

    try:
        device = resolve_device(args.device, key="--device")  # a CUDA device on a machine without one: one message
        report = diagnose(args.run, model=not args.no_model, sample=args.sample, device=device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # A reader that stops early (`| head`) is not an error of the run: main's quiet_on_broken_pipe ends it quietly.
    if args.json:
        print(json.dumps([f.to_json() for f in report.findings], indent=2), flush=True)
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
    else:
        print(_text(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
