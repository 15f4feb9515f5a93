"""Run trials on a Ray cluster: the same trial commands as locally, as Ray tasks with per-trial resources.

`ray.init(address="auto")` joins the cluster named by RAY_ADDRESS (or started with `ray start`) when
RAY_ADDRESS is set, else starts a local instance. Each trial is one task reserving `--trial-cpus` CPUs
and `--trial-gpus` GPUs (Ray sets CUDA_VISIBLE_DEVICES in it); it runs `python -m recipes.run ...`
exactly as the local backend does, so the sweep directory (which must be on a file system every node
sees, e.g. NFS) and sweep.json are the same. Plain tasks rather than Ray Tune's trial runner: Tune
would keep its own trial directories and results beside ours, and the search space is already ours.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable

from peftzoo_tools.sweep.trials import Job
from recipes.errors import RecipeError

logger = logging.getLogger(__name__)


def _run_trial(command: list[str], env_changes: dict[str, str], log_path: str) -> int:
    """Executed on a Ray worker: the trial's command in the worker's environment (which holds the
    CUDA_VISIBLE_DEVICES Ray chose) plus `env_changes`, its output appended to trial.log."""
    env = {**os.environ, **env_changes}
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode


class RayBackend:
    def __init__(self, cpus: float, gpus: float = 0.0):
        try:
            import ray
        except ImportError:
            raise RecipeError("--backend ray needs Ray: pip install 'peftzoo[ray]'") from None
        self.ray, self.cpus, self.gpus = ray, cpus, gpus
        self.stop = None

    def describe(self) -> str:
        return f"Ray tasks of {self.cpus:g} CPU(s) and {self.gpus:g} GPU(s) each"

    def connect(self) -> None:
        ray = self.ray
        if not ray.is_initialized():  # a caller (a notebook, a test) may have connected already
            if os.environ.get("RAY_ADDRESS"):
                ray.init(address="auto", log_to_driver=False)
            else:
                ray.init(log_to_driver=False, include_dashboard=False)
        total = ray.cluster_resources()
        if total.get("CPU", 0) < self.cpus or total.get("GPU", 0) < self.gpus:
            raise RecipeError(
                f"a trial asks for {self.cpus:g} CPUs and {self.gpus:g} GPUs, but the Ray cluster has "
                f"{total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs; lower --trial-cpus / --trial-gpus"
            )

    def run(self, jobs: list[Job], on_start: Callable[[Job], None], on_done: Callable[[Job, int | None], None]) -> None:
        if not jobs:
            return
        self.connect()
        ray = self.ray
        remote = ray.remote(_run_trial)
        threads = str(max(1, int(self.cpus)))
        env_changes = {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        pending = {}
        for job in jobs:
            if not job.command:
                on_done(job, 0)
                continue
            on_start(job)  # submitted: Ray starts it as soon as the cluster has its resources
            ref = remote.options(num_cpus=self.cpus, num_gpus=self.gpus).remote(
                job.command, env_changes, str(job.log_path)
            )
            pending[ref] = job
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        code = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the task or its node died
                        logger.warning("%s: Ray task failed: %s", job.trial_id, exc)
                        code = None
                    on_done(job, code)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)
            for job in pending.values():
                on_done(job, None)
            raise
