"""`python -m recipes.export RUN (--bundle OUT | --native OUT | --peft OUT | --merged OUT) [--checkpoint best|last]`.

--bundle OUT   self-contained model (peftzoo_trained/bundle.py): encoders with adapters merged where they can
               be, the other adapter weights, heads, temperature, preprocessing, channel names, the
               resolved recipe, versions, a sha256 manifest. `recipes.load(OUT)` gives the run's
               embeddings without the run or the base checkpoint files. Any strategy.
--native OUT   each strategy's adapters in its own outside format, written by the strategy's
               `export(encoder, directory)` hook (docs/plugins.md): OUT/<side>/<strategy>/ per side
               and strategy (training stages included; a name a side carries twice is numbered,
               lora-2), plus OUT/manifest.json (per side: the base encoder's options, and per adapter
               the strategy, its options, the format, the directory and each file's sha256). lora and
               the peft tuners write Hugging Face PEFT's format; a plugin writes its own. A strategy
               without the hook is refused, named (prefix, prompt, bitfit, last_k, full): use --bundle
               or --merged. head_only trains nothing in the encoder and has nothing to write.
--peft OUT     the same hooks, restricted to strategies writing peft's format (`export_format =
               "peft"`: lora, adalora, ia3, loha, lokr), one per side, each side directly in
               OUT/<side>/ (adapter_config.json, adapter_model.safetensors), plus OUT/manifest.json:
               `peft.PeftModel.from_pretrained(encoder, OUT/<side>)` on the plain base encoder (built as
               the recipe builds it) gives the run's encoder outputs.
--merged OUT   every adapter folded into the base weights: the bundle layout with nothing to re-apply,
               plus OUT/recipe.yaml, the run's recipe on the merged encoders (head_only, no stages)
               to train on from. Loads with `recipes.load(OUT)`. Each strategy is folded by its own
               `merge()` hook; refused where one without it leaves weights beyond the plain encoder's
               (prefix, prompt).

The run is rebuilt from RUN/recipe.yaml with its seed and its best weights (best.safetensors) when
it kept them, else the last (trainable.safetensors). OUT must not exist (or be an empty directory):
everything is written to a temporary directory beside it and moved into place when complete, so an
error leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from peftzoo_engine.rundir import DiskFull
from registry.errors import UserError
from registry.pipes import quiet_on_broken_pipe

logger = logging.getLogger(__name__)


def check_output(out: Path) -> None:
    """An export goes into a new or empty directory: an existing file, or a non-empty directory, is
    an error (nothing is overwritten)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is an existing file; give a new directory to export into")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; remove it or give a new directory")
    if out.parent.exists() and not out.parent.is_dir():
        raise UserError(f"{out.parent} is a file, not a directory; give a directory path for the export")


@contextlib.contextmanager
def staged_output(out: Path):
    """A temporary directory beside `out`, moved to `out` when the block succeeds, removed otherwise."""
    out = Path(out).expanduser()
    check_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        yield tmp
        if out.is_dir():
            out.rmdir()
        tmp.rename(out)
    except DiskFull as exc:  # named where the user will look for it, not in the staging directory
        shutil.rmtree(tmp, ignore_errors=True)
        inside = exc.path.relative_to(tmp) if exc.path.is_relative_to(tmp) else exc.path.name
        raise DiskFull(out / inside) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


SIDES = ("eeg", "video")
PEFT_FORMAT = "peft"
MANIFEST = "manifest.json"
NATIVE_FORMAT = "peftzoo.native_export"


def exporting_strategies(model, peft_only: bool = False) -> dict[str, list]:
    """Side -> the strategies applied to it (training stages included) whose `export()` hook writes
    its adapters; with `peft_only`, only strategies writing peft's format, one per side (peft's
    directory holds one adapter). Strategies that train nothing by design (head_only) have nothing
    to write. Every strategy that cannot be exported is named in one UserError, before anything is
    written: exporting the others alone would not reproduce the run's outputs."""
    from adapters.strategies.base import offers

    plan: dict[str, list] = {}
    refused: list[str] = []
    for side in SIDES:
        strategies = [
            s for s, _ in getattr(model, side).applied.values() if not getattr(s, "trains_nothing_by_design", False)
        ]
        if peft_only:
            bad = [
                s.name
                for s in strategies
                if not offers(s, "export") or getattr(s, "export_format", None) != PEFT_FORMAT
            ]
            if bad:
                refused.append(
                    f"{side}: strategy {', '.join(bad)} cannot be exported in peft's format (peft cannot load it back "
                    f"onto the plain encoder)"
                )
            elif len(strategies) > 1:
                refused.append(
                    f"{side}: strategies {', '.join(s.name for s in strategies)} are two adapters, and a peft "
                    f"adapter directory holds one; use --native (one directory per strategy)"
                )
        else:
            bad = [s.name for s in strategies if not offers(s, "export")]
            if bad:
                refused.append(
                    f"{side}: strategy {', '.join(bad)} offers no export() hook, so its trained weights have no "
                    f"outside format to be written in"
                )
        if strategies and not refused:
            plan[side] = strategies
    if refused:
        raise UserError(
            f"{'; '.join(refused)}; use --bundle (any strategy, loads with recipes.load) or --merged "
            f"(adapters folded into the encoder weights)"
        )
    if not plan:
        raise UserError(
            f"this run trained no adapter on either side (head_only); there is nothing to export with "
            f"--{'peft' if peft_only else 'native'}; use --bundle"
        )
    return plan


def adapter_directories(plan: dict[str, list], flat: bool) -> list[tuple[str, object, str]]:
    """(side, strategy, directory relative to OUT): OUT/<side>/<strategy name>, the name numbered
    (lora-2) where a side carries it twice (training stages); OUT/<side> itself when `flat`."""
    out = []
    for side, strategies in plan.items():
        seen: dict[str, int] = {}
        for strategy in strategies:
            seen[strategy.name] = seen.get(strategy.name, 0) + 1
            suffix = "" if seen[strategy.name] == 1 else f"-{seen[strategy.name]}"
            out.append((side, strategy, side if flat else f"{side}/{strategy.name}{suffix}"))
    return out


def export_adapters(trained, out: Path, peft_only: bool = False) -> dict:
    """Write every adapter of the run with its strategy's own `export()` hook, plus OUT/manifest.json;
    `peft_only` is `--peft` (peft's format, OUT/<side>/ directly), else `--native`
    (OUT/<side>/<strategy>/). Returns the manifest."""
    from peftzoo_engine.rundir import atomic_write, now, versions
    from peftzoo_trained.bundle import sha256_file

    model = trained.model
    plan = exporting_strategies(model, peft_only)
    places = adapter_directories(plan, flat=peft_only)
    manifest = {
        "format": NATIVE_FORMAT,
        "format_version": 1,
        "created": now(),
        "layout": "peft" if peft_only else "native",
        "source": {"run": str(trained.source), "weights": trained.weights},
        "versions": versions(),
        "sides": {},
    }
    with staged_output(out) as tmp:
        for side, strategy, relative in places:
            encoder = getattr(model, side).encoder
            written = [Path(p) for p in (strategy.export(encoder, tmp / relative) or [])]
            inside = [p for p in written if p.is_file() and (tmp / relative).resolve() in p.resolve().parents]
            if not written or len(inside) != len(written):
                raise RuntimeError(
                    f"{side} strategy {strategy.name}'s export() returned {[str(p) for p in written]}: it must "
                    f"return the files it wrote inside the directory it was given (docs/plugins.md)"
                )
            entry = manifest["sides"].setdefault(
                side, {"encoder": getattr(model, side).encoder.cfg.model_dump(mode="json"), "adapters": []}
            )
            entry["adapters"].append(
                {
                    "strategy": strategy.name,
                    "options": strategy.cfg.model_dump(mode="json", exclude={"name"}),
                    "format": getattr(strategy, "export_format", None) or strategy.name,
                    "directory": relative,
                    "files": {
                        p.resolve().relative_to(tmp.resolve()).as_posix(): {
                            "sha256": sha256_file(p),
                            "bytes": p.stat().st_size,
                        }
                        for p in sorted(inside)
                    },
                }
            )
        atomic_write(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def export_bundle(trained, out: Path, merged: bool = False) -> dict:
    from peftzoo_trained.bundle import write_bundle

    out = Path(out).expanduser()
    with staged_output(out) as tmp:
        return write_bundle(trained, tmp, require_merged=merged, final_path=out)


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    from peftzoo_trained.cli_args import add_model_arguments, load_model, parse_model_arguments

    parser = argparse.ArgumentParser(prog="python -m recipes.export", description=__doc__.splitlines()[0])
    add_model_arguments(
        parser,
        run_help="a finished run directory (the one `run:` printed)",
        checkpoint_help="weights to export",
        device=False,
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--bundle", type=Path, metavar="OUT", help="write a self-contained model that recipes.load reads"
    )
    group.add_argument(
        "--native",
        type=Path,
        metavar="OUT",
        help="write each strategy's adapters in its own outside format (its export() hook), OUT/<side>/<strategy>/",
    )
    group.add_argument(
        "--peft", type=Path, metavar="OUT", help="write adapters in Hugging Face PEFT format, OUT/<side>/"
    )
    group.add_argument(
        "--merged", type=Path, metavar="OUT", help="write encoders with every adapter merged into their weights"
    )
    args = parse_model_arguments(parser, argv)
    from peftzoo_trained.bundle import is_bundle

    try:
        out = (args.bundle or args.native or args.peft or args.merged).expanduser()
        check_output(out)  # before the (slow) model rebuild
        if args.run.is_dir() and is_bundle(args.run):
            raise UserError(f"{args.run} is a bundle already; export from the run directory it came from")
        trained = load_model(args, device="cpu")
        if args.peft or args.native:
            manifest = export_adapters(trained, out, peft_only=bool(args.peft))
            what = ", ".join(
                f"{a['directory']} ({a['format']})" for side in manifest["sides"].values() for a in side["adapters"]
            )
            print(f"{'peft' if args.peft else 'native'} adapters ({what}; {trained.weights} weights): {out}")
        else:
            export_bundle(trained, out, merged=bool(args.merged))
            print(f"{'merged' if args.merged else 'bundle'} ({trained.weights} weights): {out}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
