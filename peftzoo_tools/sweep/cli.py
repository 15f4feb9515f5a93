"""`python -m recipes.sweep RECIPE key=[v1,v2] ... [--random N] [--workers K] [--backend local|ray] [--output-dir DIR]`

Every combination of the listed values (or N seeded draws with --random) is a trial: an ordinary
run directory under one sweep directory `DIR/<name>-sweep-<hash>/<trial id>/`, next to `sweep.json`
(each trial's overrides, status, run, final and best metrics). `key=value` without a list is fixed
for every trial; `seed=[0,1,2]` repeats each configuration over seeds, and the summary gives their
mean and standard deviation. RECIPE may also be a sweep file (YAML: `recipe`, `space`, `overrides`,
`random`, `seed`, `select`) for larger spaces and distributions. Every trial's recipe is validated
before anything runs. Running the same command again skips finished trials and resumes interrupted
ones from their checkpoints. The last line printed is `sweep: <dir>`.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import registry
from peftzoo_engine.rundir import atomic_write
from peftzoo_tools.sweep import plan as plans
from peftzoo_tools.sweep import prepass, summary
from peftzoo_tools.sweep import space as spaces
from peftzoo_tools.sweep import trials as trial_runs
from peftzoo_tools.sweep.local import LocalBackend, available_cores
from peftzoo_tools.sweep.record import SweepRecord
from recipes import preflight, schema
from recipes.errors import RecipeError
from registry.errors import UserError
from registry.pipes import quiet_on_broken_pipe

logger = logging.getLogger("peftzoo_tools.sweep")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recipes.sweep",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument(
        "recipe", help=f"recipe or sweep file path, or a bundled recipe: {', '.join(schema.bundled_names())}"
    )
    parser.add_argument(
        "space", nargs="*", help="key=[v1,v2] (an axis) or key=value (fixed), dotted as in peftzoo_tools.run"
    )
    parser.add_argument("--random", type=int, metavar="N", help="draw N trials (seeded) instead of the full grid")
    parser.add_argument(
        "--max-trials",
        type=int,
        default=spaces.MAX_TRIALS,
        metavar="N",
        help=f"refuse a sweep of more trials before it starts (default {spaces.MAX_TRIALS:,})",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of --random's draws (default 0)")
    parser.add_argument(
        "--workers", type=int, default=1, metavar="K", help="trials in parallel on this machine (default 1)"
    )
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--trial-cpus", type=float, default=None, help="CPUs per trial (ray; default cores // workers)")
    parser.add_argument("--trial-gpus", type=float, default=0.0, help="GPUs per trial (ray; fractions share a GPU)")
    parser.add_argument("--output-dir", default="sweeps", help="where the sweep directory is made (default: sweeps)")
    parser.add_argument(
        "--metric",
        help="selection metric of the summary (default: the recipe's train.select, else val/eeg_to_video/R@1)",
    )
    parser.add_argument("--mode", choices=("max", "min"), help="whether the selection metric is better high or low")
    parser.add_argument("--no-prepass", action="store_true", help="let each trial compute its frozen features itself")
    parser.add_argument(
        "--batched-heads",
        choices=("auto", "off"),
        default="auto",
        help="train trials that differ only in head, loss or optimizer numbers (frozen, cached encoders) "
        "in one process as one batched model (default auto; local backend)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    return parser


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    args.command_line = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return _sweep(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the trials started (validation, pre-pass): nothing to stop
        print("interrupted; rerun the same command to continue", file=sys.stderr)
        return 130


def _check_arguments(args) -> None:
    if args.max_trials < 1:
        raise RecipeError(f"--max-trials {args.max_trials}: give at least 1")
    if args.workers < 1:
        raise RecipeError(f"--workers {args.workers}: give at least 1")
    if args.trial_cpus is not None and args.trial_cpus <= 0:
        raise RecipeError(f"--trial-cpus {args.trial_cpus}: give a positive number")
    if args.trial_gpus < 0:
        raise RecipeError(f"--trial-gpus {args.trial_gpus}: give 0 or more")
    if args.backend == "local" and (args.trial_gpus or args.trial_cpus):
        raise RecipeError(
            "--trial-cpus and --trial-gpus are for --backend ray; "
            "locally, --workers K gives each trial cores // K threads"
        )


def _sweep(args) -> int:
    _check_arguments(args)
    select = {k: v for k, v in (("metric", args.metric), ("mode", args.mode)) if v}
    plan = plans.from_command(args.recipe, args.space, args.random, args.seed, select or None, args.max_trials)
    directory = plan.directory(preflight.writable_dir(args.output_dir, "--output-dir"))
    cache_dir, extra_args = _cache_place(plan, directory)
    reg = registry.default()
    plans.validate(plan, reg, extra_args)
    backend = _backend(args)  # a missing ray extra or a too-small cluster is reported before the directory is made
    if hasattr(backend, "connect"):
        backend.connect()

    record, base_yaml = _open_record(plan, directory, cache_dir)
    by_id = {t.id: t for t in plan.trials}
    jobs = [
        job
        for t in record.data["trials"]
        if (job := trial_runs.plan_job(record, t, base_yaml, by_id[t["id"]].args, extra_args)) is not None
    ]
    logger.info(
        "sweep %s: %d trials (%d done already), %s",
        directory.name,
        len(plan.trials),
        len(plan.trials) - len(jobs),
        backend.describe(),
    )
    if jobs and not args.no_prepass:
        counts = prepass.fill([by_id[j.trial_id].recipe for j in jobs if not j.resume], cache_dir, reg)
        logger.info(
            "feature pre-pass: %d group(s), %d frozen side(s) cached in %s",
            counts["groups"],
            counts["sides"],
            cache_dir,
        )

    def on_done(job, exit_code) -> None:
        logger.info("%s: %s", job.trial_id, trial_runs.finish(record, job.trial_id, exit_code, plan.select))

    def on_start(job) -> None:
        record.update(job.trial_id, status="running")

    def replan(job):
        return trial_runs.plan_job(record, record.trial(job.trial_id), base_yaml, by_id[job.trial_id].args, extra_args)

    jobs, stopped = _run_batched_groups(args, plan, jobs, directory, reg, on_start, on_done, replan)
    backend.run(jobs, on_start, on_done)
    stopped = stopped or getattr(backend, "stop", None) is not None and backend.stop.is_set()
    return _report(args, record, directory, stopped)


def _cache_place(plan, directory: Path) -> tuple[Path, list[str]]:
    """(the feature cache the trials share, the override that points them at it): the recipe's
    train.cache_dir, else one inside the sweep directory."""
    cache_setting = (plan.base.get("train") or {}).get("cache_dir")
    if cache_setting:
        return Path(cache_setting).expanduser(), []
    cache_dir = directory / ".cache" / "features"
    return cache_dir, [f"train.cache_dir={cache_dir}"]


def _open_record(plan, directory: Path, cache_dir: Path) -> tuple[SweepRecord, Path]:
    """The sweep directory's base.yaml and sweep.json, made or continued."""
    directory.mkdir(parents=True, exist_ok=True)
    base_yaml = directory / "base.yaml"
    atomic_write(base_yaml, plans.base_yaml(plan))
    header = {
        "name": plan.name,
        "source": plan.source,
        "select": plan.select,
        "space": plan.space.to_json(),
        "random": plan.random,
        "seed": plan.seed,
        "base": "base.yaml",
        "cache_dir": str(cache_dir),
    }
    return SweepRecord.load_or_create(directory, header, [(t.id, t.values) for t in plan.trials]), base_yaml


def _run_batched_groups(args, plan, jobs, directory, reg, on_start, on_done, replan) -> tuple[list, bool]:
    """Train the trials that can share one batched model (and resume interrupted batched groups) in this
    process; returns (the jobs left for the backend, whether a signal stopped a group)."""
    batched = args.batched_heads == "auto" and args.backend == "local"
    if not (batched or any(j.batched_checkpoint for j in jobs)):  # an interrupted batched group resumes as one
        return jobs, False
    from peftzoo_tools.sweep.batched import sweep_groups

    recipes_by_id = {t.id: t.recipe for t in plan.trials}
    groups, ordinary = sweep_groups.split_jobs(jobs, recipes_by_id, fresh=batched)
    outcome = sweep_groups.run_groups(groups, recipes_by_id, directory, reg, on_start, on_done)
    if outcome.interrupted:  # a signal stopped a batched group: start nothing more
        return [], True
    return ordinary + [j for j in map(replan, outcome.fallback) if j is not None], False


def _report(args, record: SweepRecord, directory: Path, stopped: bool) -> int:
    """The summary table and the last line `sweep: DIR`; 130 when interrupted, 1 when a trial failed."""
    print(summary.table(record.data))
    print(f"sweep: {directory}")
    if stopped or any(t["status"] == "interrupted" for t in record.data["trials"]):
        print(f"interrupted; rerun the same command to resume: {rerun_command(args.command_line)}", file=sys.stderr)
        return 130
    failed = [t["id"] for t in record.data["trials"] if t["status"] == "failed"]
    if failed:
        print(
            f"{len(failed)} trial(s) failed ({', '.join(failed[:5])}); see their trial.log and sweep.json; "
            "a rerun retries them",
            file=sys.stderr,
        )
        return 1
    return 0


def rerun_command(argv: list[str]) -> str:
    """The sweep's command line, quoted for a POSIX shell: values such as `eeg.head=[linear, {name: mlp}]`
    hold spaces, brackets and braces that the shell would split or glob if pasted back unquoted."""
    return shlex.join(["python", "-m", "recipes.sweep", *argv])


def _backend(args):
    if args.backend == "ray":
        from peftzoo_tools.sweep.ray_backend import RayBackend

        return RayBackend(cpus=args.trial_cpus or max(1, available_cores() // args.workers), gpus=args.trial_gpus)
    return LocalBackend(args.workers)
