"""`python -m recipes.export RUN (--bundle OUT | --peft OUT | --merged OUT) [--checkpoint best|last]`.

--bundle OUT   self-contained model (recipes/bundle.py): encoders with adapters merged where they can
               be, the other adapter weights, heads, temperature, preprocessing, channel names, the
               resolved recipe, versions, a sha256 manifest. `recipes.load(OUT)` gives the run's
               embeddings without the run or the base checkpoint files. Any strategy.
--peft OUT     each adapted side in Hugging Face PEFT's format, OUT/<side>/adapter_config.json and
               adapter_model.safetensors: `peft.PeftModel.from_pretrained(encoder, OUT/<side>)` on the
               plain base encoder (built as the recipe builds it) gives the run's encoder outputs.
               lora, adalora, ia3, loha, lokr; strategies peft cannot load back (prefix, prompt,
               bitfit, last_k, full) are refused: use --bundle or --merged.
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
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from registry.errors import UserError

logger = logging.getLogger(__name__)

PEFT_LOADABLE = ("lora", "adalora", "ia3", "loha", "lokr")


def load_run(run_dir: Path, checkpoint: str | None = None):
    """The run's validated recipe and its model with the trained weights loaded (best when kept)."""
    from recipes.trained import rebuild_run

    recipe, model, _, _ = rebuild_run(Path(run_dir), checkpoint)
    return recipe, model


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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def peft_adapters(model) -> dict[str, tuple]:
    """Side -> (peft config, adapter state) for every side that has an adapter peft can load back;
    an error naming the strategy for a side that trained something peft cannot carry."""
    from adapters.strategies.lora import LoRA
    from adapters.strategies.lora.export import to_peft
    from adapters.strategies.peft_export import tuner_to_peft
    from adapters.strategies.peft_tuner import PeftTuner

    out = {}
    for side in ("eeg", "video"):
        tower = getattr(model, side)
        # what trains nothing by design (head_only) has nothing to carry
        strategies = [s for s, _ in tower.applied.values() if not getattr(s, "trains_nothing_by_design", False)]
        refused = [s.name for s in strategies if not isinstance(s, (LoRA, PeftTuner))]
        if refused:
            raise UserError(
                f"{side}: strategy {', '.join(refused)} cannot be exported in peft's format (peft cannot load it back onto "
                f"the plain encoder; --peft takes {', '.join(PEFT_LOADABLE)}); use --bundle (any strategy, loads with "
                f"recipes.load) or --merged (adapters folded into the encoder weights)"
            )
        if any(isinstance(s, LoRA) for s in strategies):
            out[side] = to_peft(tower.encoder)
        elif strategies:
            out[side] = tuner_to_peft(tower.encoder)
    if not out:
        raise UserError("this run trained no adapter on either side (head_only); there is nothing to export with --peft; use --bundle")
    return out


def export_peft(model, out: Path) -> list[str]:
    """Write OUT/<side>/ for each adapted side; returns the sides written."""
    from safetensors.torch import save

    from recipes.rundir import atomic_write

    adapters = peft_adapters(model)
    with staged_output(out) as tmp:
        for side, (config, state) in adapters.items():
            (tmp / side).mkdir()
            atomic_write(tmp / side / "adapter_model.safetensors", save(state))
            config.save_pretrained(str(tmp / side))
    return list(adapters)


def export_bundle(trained, out: Path, merged: bool = False) -> dict:
    from recipes.bundle import write_bundle

    out = Path(out).expanduser()
    with staged_output(out) as tmp:
        return write_bundle(trained, tmp, require_merged=merged, final_path=out)


def main(argv: list[str] | None = None) -> int:
    from recipes.trained_cli import add_model_arguments, load_model, parse_model_arguments

    parser = argparse.ArgumentParser(prog="python -m recipes.export", description=__doc__.splitlines()[0])
    add_model_arguments(parser, run_help="a finished run directory (the one `run:` printed)", checkpoint_help="weights to export", device=False)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--bundle", type=Path, metavar="OUT", help="write a self-contained model that recipes.load reads")
    group.add_argument("--peft", type=Path, metavar="OUT", help="write adapters in Hugging Face PEFT format")
    group.add_argument("--merged", type=Path, metavar="OUT", help="write encoders with every adapter merged into their weights")
    args = parse_model_arguments(parser, argv)
    from recipes.bundle import is_bundle

    try:
        out = (args.bundle or args.peft or args.merged).expanduser()
        check_output(out)  # before the (slow) model rebuild
        if args.run.is_dir() and is_bundle(args.run):
            raise UserError(f"{args.run} is a bundle already; export from the run directory it came from")
        trained = load_model(args, device="cpu")
        if args.peft:
            sides = export_peft(trained.model, args.peft)
            print(f"peft adapters ({', '.join(sides)}; {trained.weights} weights): {args.peft}")
        else:
            export_bundle(trained, out, merged=bool(args.merged))
            print(f"{'merged' if args.merged else 'bundle'} ({trained.weights} weights): {out}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
