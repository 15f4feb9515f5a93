"""`peftzoo SUBCOMMAND ...`: one command over the module commands (`python -m recipes.run` and the rest stay).

Each subcommand is a thin wrapper: its arguments go unchanged to the module's own command line, so
`peftzoo evaluate --help` is `python -m recipes.evaluate --help`. Commands other engineers add
(ingest, sweep, compare, doctor, cache) appear when their module is installed; whether it is, is
checked without importing it. To add one, add a row to COMMANDS.
"""

from __future__ import annotations

import importlib
import importlib.util
import runpy
import sys

from registry.pipes import quiet_on_broken_pipe

COMMANDS: dict[str, tuple[str, list[str], str]] = {
    # name: (module run as `python -m`, arguments put first, one-line description)
    "run": ("peftzoo_tools.run", [], "train a recipe: peftzoo run RECIPE [key=value ...] [--output-dir DIR]"),
    "resume": ("peftzoo_tools.run", ["--resume"], "continue an interrupted run: peftzoo resume RUN|latest [RECIPE]"),
    "evaluate": (
        "peftzoo_tools.evaluate",
        [],
        "test-split metrics with 95% intervals: peftzoo evaluate RUN [--split test]",
    ),
    "embed": ("peftzoo_tools.embed", [], "embeddings of a data set: peftzoo embed RUN --out FILE.npz"),
    "retrieve": (
        "peftzoo_tools.retrieve",
        [],
        "top-k retrieval: peftzoo retrieve RUN --eeg FILE --gallery DIR_OR_NPZ -k 5",
    ),
    "export": (
        "peftzoo_trained.export",
        [],
        "bundle, adapters (native or peft) or merged encoders: peftzoo export RUN --bundle OUT",
    ),
    "list": ("registry.cli", [], "list installed encoders, strategies, heads, losses, data sets"),
    "ingest": ("peftzoo_data.ingest", [], "recordings to an arrays directory: peftzoo ingest SPEC --out DIR"),
    "sweep": ("peftzoo_tools.sweep", [], "grid or random sweeps of a recipe"),
    "compare": ("peftzoo_tools.compare", [], "compare runs: differing recipe keys and metrics"),
    "doctor": ("peftzoo_tools.doctor", [], "diagnose a run: peftzoo doctor RUN"),
    "cache": ("peftzoo_engine.cache", [], "see and clear the feature cache"),
    "weights": ("peftzoo_tools.weights", [], "named pretrained weights: peftzoo weights list|where|verify|download"),
}


def available(module: str) -> bool:
    """Whether `module` is installed, found without importing it (only its parent package)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _usage() -> str:
    rows = [f"  {name:<9} {description}" for name, (module, _, description) in COMMANDS.items() if available(module)]
    return (
        "usage: peftzoo SUBCOMMAND [ARGS ...]\n\nsubcommands (each has its own --help):\n"
        + "\n".join(rows)
        + "\n\nThe module forms work as well: peftzoo evaluate ... is python -m recipes.evaluate ..."
    )


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS or not available(COMMANDS[name][0]):
        known = ", ".join(n for n, (m, _, _) in COMMANDS.items() if available(m))
        print(f"error: {name!r} is not a peftzoo subcommand; choose one of: {known}", file=sys.stderr)
        return 2
    module, first, description = COMMANDS[name]
    if name == "resume" and (not rest or rest[0] in ("-h", "--help")):
        print(
            f"usage: peftzoo resume RUN|latest [RECIPE] [--output-dir DIR]\n\n{description}\n"
            f"(python -m recipes.run --resume RUN|latest; see peftzoo run --help)"
        )
        return 0 if rest else 2
    target = importlib.import_module(module)
    if callable(getattr(target, "main", None)):  # the module's own command line, as `python -m` runs it
        try:
            code = target.main([*first, *rest])
        except SystemExit as exc:  # argparse's --help and usage errors
            code = exc.code
        return _exit_code(code)
    saved = sys.argv  # a package run through its __main__
    sys.argv = [f"peftzoo {name}", *first, *rest]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return _exit_code(exc.code)
    finally:
        sys.argv = saved
    return 0


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
