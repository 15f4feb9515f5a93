"""The command-line part that every command over a trained model shares (evaluate, embed, retrieve, export).

Each takes a run directory or bundle, `--checkpoint best|last`, usually `--device`, and `-q`; sets
logging from `-q`; and loads the model those name (`peftzoo_trained.loading.load`). Kept in one place so the
commands cannot drift apart in what they accept or how they report.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

RUN_HELP = "a run directory (the one `run:` printed) or an exported bundle"


def add_model_arguments(
    parser: argparse.ArgumentParser,
    *,
    run_help: str = RUN_HELP,
    checkpoint_help: str = "weights to use",
    device: bool = True,
) -> None:
    """RUN, --checkpoint, --device (unless the command picks the device itself) and -q/--quiet."""
    parser.add_argument("run", type=Path, help=run_help)
    parser.add_argument(
        "--checkpoint", choices=("best", "last"), help=f"{checkpoint_help} (default: best when the run kept them)"
    )
    if device:
        parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")


def parse_model_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The parsed command line, with logging set up as -q asks (warnings only, else progress too)."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format=LOG_FORMAT)
    return args


def load_model(args: argparse.Namespace, device: str | None = None):
    """The TrainedModel that RUN and --checkpoint name, on --device (or on `device` where the command fixes it)."""
    from peftzoo_trained.loading import load

    return load(args.run, device=device if device is not None else args.device, checkpoint=args.checkpoint)
