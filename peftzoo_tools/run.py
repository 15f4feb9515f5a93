"""`python -m recipes.run RECIPE [dotted.key=value ...] [--output-dir DIR]`: compose and train.

RECIPE is a path or the name of a bundled recipe. `--resume RUN|latest` continues an interrupted run
exactly (SIGTERM and SIGINT write a checkpoint at the current step and exit). A user's mistake (bad
recipe, bad override, data that does not fit the encoders) exits with status 2 and one message, no
traceback, and leaves no run directory behind. The last line printed is `run: <path of the run directory>`.

`torchrun --nproc_per_node=N -m recipes.run RECIPE ...` trains data-parallel over N processes
(peftzoo_engine.distributed); the main process writes the one run directory and logs.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import registry
from peftzoo_data.checks import check_eeg
from peftzoo_engine import TrainingInterrupted, distributed, resolve_device, rundir, seed_everything, train
from peftzoo_engine.checkpoint import read_checkpoint
from peftzoo_engine.plan import check as check_plan
from peftzoo_engine.rundir import DiskFull, RunDir
from peftzoo_tools.doctor.live import LiveDoctorCallback
from recipes import overrides, preflight, schema
from recipes.compose import compose
from recipes.errors import RecipeError
from registry.errors import UserError
from registry.pipes import quiet_on_broken_pipe

logger = logging.getLogger("peftzoo_tools.run")


RESUME_TAKES_NO_RECIPE = (
    "--resume continues a run with its own recipe.yaml, so it takes no {what} ({given}); "
    "drop {them}, or start a new run (without --resume) to train with a changed recipe"
)


def _check_resume_arguments(args) -> None:
    """--resume RUN takes nothing else; --resume latest takes the RECIPE (to find the runs) and no overrides.

    argparse puts a first stray `key=value` into `recipe`, so an override there is an override too.
    """
    extra = list(args.overrides)
    recipe_is_override = bool(args.recipe) and "=" in args.recipe and not Path(args.recipe).exists()
    if args.resume == "latest":
        if recipe_is_override:
            extra.insert(0, args.recipe)
        if extra:
            raise RecipeError(RESUME_TAKES_NO_RECIPE.format(what="overrides", given=" ".join(extra), them="them"))
    elif args.recipe or extra:
        given = " ".join([args.recipe, *extra] if args.recipe else extra)
        what = "overrides" if (recipe_is_override or not args.recipe) else "RECIPE or overrides"
        raise RecipeError(RESUME_TAKES_NO_RECIPE.format(what=what, given=given, them="them"))


def _run_info(run_dir: Path) -> dict:
    """run.json of a run directory to resume (peftzoo_engine.rundir's reader), or one message saying what is wrong."""
    if not (run_dir / rundir.RUN_JSON).is_file():
        raise RecipeError(
            f"{str(run_dir)!r} has no run.json, so it is not a run directory that can be resumed; "
            f"give the directory that `run:` printed"
        )
    return rundir.read_info(run_dir)


def _find_resume(args, parser) -> tuple[Path, Path]:
    """(run directory, checkpoint) named by --resume: a run directory, its checkpoint file, or `latest`."""
    if args.resume == "latest":
        if not args.recipe:
            parser.error("--resume latest needs the RECIPE, to know which runs to look at")
        name = schema.validate(schema.read_yaml(schema.resolve(args.recipe)), registry.default()).name
        root = Path(args.output_dir).expanduser()
        candidates = sorted(
            (
                p
                for p in root.glob(f"{name}-*")
                if rundir.checkpoint_path(p).is_file() and (p / rundir.RUN_JSON).is_file()
            ),
            key=lambda p: p.stat().st_mtime,
        )
        candidates = [p for p in candidates if _unfinished(p)]
        if not candidates:
            raise RecipeError(
                f"no unfinished run of {name!r} with a checkpoint under {str(root)!r}; start it without --resume"
            )
        run_dir = candidates[-1]
    else:
        given = Path(args.resume).expanduser()
        if not given.exists():
            raise RecipeError(
                f"--resume {args.resume!r} does not exist; give the run directory that `run:` printed, or latest"
            )
        run_dir = given.parent.parent if given.is_file() else given
    checkpoint = rundir.checkpoint_path(run_dir)
    if not checkpoint.is_file() or not (run_dir / rundir.RECIPE).is_file():
        raise RecipeError(
            f"{str(run_dir)!r} is not a run directory with a checkpoint (checkpoints/last.pt); "
            "give the one `run:` printed"
        )
    info = _run_info(run_dir)
    if info.get("status") == "completed":
        raise RecipeError(f"run {run_dir.name} has completed already; there is nothing to resume")
    if os.environ.get("RANK", "0") == "0":  # under torchrun the main process holds the lock for all
        RunDir.refuse_if_locked(run_dir)
    return run_dir, checkpoint


def _unfinished(run_dir: Path) -> bool:
    """A run `--resume latest` may pick: run.json readable and not completed (damaged ones are skipped)."""
    try:
        return _run_info(run_dir).get("status") != "completed"
    except rundir.DamagedRunFile:
        logger.warning("skipping %s: its run.json is damaged", run_dir)
        return False


def _end_refused(run: RunDir | None, exc: UserError) -> None:
    """A run a user's mistake stopped: marked failed (with what was finished kept: its last checkpoint resumes),
    or removed when nothing was written yet. On a full disk run.json may not be writable either: the
    message printed is then the record."""
    if run is None:
        return
    if run.info:
        try:
            run.finish("failed", error=str(exc))
        except DiskFull:
            run.release()
    elif run.writes:
        run.release(remove=True)
        _remove_if_empty(run.path)


def _remove_if_empty(path: Path) -> None:
    """Remove a run directory that a failure left with nothing in it (its empty checkpoints/ only)."""
    for sub in (rundir.checkpoint_path(path).parent, path):
        try:
            sub.rmdir()
        except OSError:
            return


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "recipe", nargs="?", help=f"recipe path, or a bundled recipe: {', '.join(schema.bundled_names())}"
    )
    parser.add_argument("overrides", nargs="*", help="dotted overrides parsed as YAML, e.g. train.lr=3e-4")
    parser.add_argument("--output-dir", default="runs", help="where run directories are made (default: runs)")
    parser.add_argument(
        "--resume", metavar="RUN|latest", help="continue an interrupted run exactly: its directory, or latest"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    args = parser.parse_intermixed_args(argv)
    if not args.recipe and not args.resume:
        parser.error("give a RECIPE (or --resume RUN)")

    run = None
    world = distributed.World()
    quiet = args.quiet or os.environ.get("RANK", "0") != "0"  # under torchrun, only the main process logs progress
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        reg = registry.default()
        resume = None
        if args.resume:
            _check_resume_arguments(args)
            run_dir, checkpoint_path = _find_resume(args, parser)
            resume = read_checkpoint(checkpoint_path)  # a damaged checkpoint is refused before the run is touched
            recipe = schema.validate(rundir.read_recipe(run_dir), reg, source=str(run_dir / rundir.RECIPE))
        else:
            path = schema.resolve(args.recipe)
            raw = overrides.apply(schema.read_yaml(path), args.overrides)
            recipe = schema.validate(raw, reg, source=f"recipe {str(path)!r}")
        seed_everything(recipe.seed)
        data = reg.build("datasets", recipe.data, seed=recipe.seed)
        data = check_eeg(data, getattr(recipe.data, "drop_nonfinite", False), where=f"data ({recipe.data.name})")
        model = compose(recipe, data, reg)
        if not resume:  # the splits and output places first: a plan over 0 training pairs is not the news
            preflight.check_run(
                recipe,
                data,
                args.output_dir,
                int(os.environ.get("WORLD_SIZE", "1")),
                masks_groups=bool(getattr(model.loss, "masks_groups", False)),
            )
            preflight.check_stages(recipe, data, reg)
        check_plan(recipe, data)  # before the run directory exists
        device = resolve_device(recipe.train.device)
        world = distributed.init_from_environment(device.type)
        device = distributed.device_for(device, world)
        if resume:
            run = RunDir.open(run_dir, writes=world.is_main)
        elif world.is_main:
            run = RunDir(args.output_dir, recipe.name)
            distributed.broadcast_object(str(run.path))
        else:
            run = RunDir.follower(Path(distributed.broadcast_object(None)))
        train(recipe, model, data, run, device, reg, resume=resume, callbacks=[LiveDoctorCallback()])
    except UserError as exc:
        _end_refused(run, exc)
        resumable = isinstance(exc, DiskFull) and run is not None and run.checkpoint_path.is_file()
        hint = (
            f"; the run keeps its last checkpoint: free space, then python -m recipes.run --resume {run.path}"
            if resumable
            else ""
        )
        print(f"{_rank_prefix(world)}error: {exc}{hint}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        run.finish("interrupted", checkpoint=str(stop.checkpoint))
        if world.is_main:
            print(
                f"interrupted ({signal.Signals(stop.signum).name}); "
                f"continue with: python -m recipes.run --resume {run.path}",
                file=sys.stderr,
            )
            print(f"run: {run.path}")
        return 128 + stop.signum
    except KeyboardInterrupt:
        if run is not None and run.info:
            run.finish("interrupted")
        print("interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:
        if run is not None and run.info:
            run.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        distributed.shutdown()
    if world.is_main:
        print(f"run: {run.path}")
    return 0


def _rank_prefix(world: distributed.World) -> str:
    return f"[rank {world.rank}] " if world.distributed else ""


if __name__ == "__main__":
    sys.exit(main())
