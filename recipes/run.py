"""`python -m recipes.run RECIPE [dotted.key=value ...] [--output-dir DIR]`: compose and train.

RECIPE is a path or the name of a bundled recipe. A user's mistake (bad recipe, bad override,
data that does not fit the encoders) exits with status 2 and one message, no traceback, and leaves
no run directory behind. The last line printed is `run: <path of the run directory>`.
"""

from __future__ import annotations

import argparse
import logging
import sys

import registry
from recipes import overrides, schema
from recipes.compose import compose
from recipes.rundir import RunDir
from recipes.train import resolve_device, seed_everything, train
from registry.errors import UserError

logger = logging.getLogger("recipes.run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.run", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help=f"recipe path, or a bundled recipe: {', '.join(schema.bundled_names())}")
    parser.add_argument("overrides", nargs="*", help="dotted overrides parsed as YAML, e.g. train.lr=3e-4")
    parser.add_argument("--output-dir", default="runs", help="where run directories are made (default: runs)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    run = None
    try:
        reg = registry.default()
        path = schema.resolve(args.recipe)
        raw = overrides.apply(schema.read_yaml(path), args.overrides)
        recipe = schema.validate(raw, reg, source=f"recipe {str(path)!r}")
        seed_everything(recipe.seed)
        data = reg.build("datasets", recipe.data, seed=recipe.seed)
        model = compose(recipe, data, reg)
        device = resolve_device(recipe.train.device)
        run = RunDir(args.output_dir, recipe.name)
        train(recipe, model, data, run, device)
    except UserError as exc:
        if run is not None and run.info:
            run.finish("failed", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if run is not None and run.info:
            run.finish("interrupted")
        print("interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:
        if run is not None and run.info:
            run.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    print(f"run: {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
