"""Run trials as K parallel processes on this machine, each with cores // K torch threads.

Several GPUs are shared round-robin: worker slot i sees GPU i mod n only. SIGINT or SIGTERM to the
sweep is passed on to every running trial (each writes a checkpoint and stops), no new trial
starts, and the sweep ends as interrupted; rerunning the same command resumes them.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from peftzoo_tools.sweep.trials import Job, child_environment

logger = logging.getLogger(__name__)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 (no usable CUDA is simply no GPU to share)
        return 0


class LocalBackend:
    def __init__(self, workers: int, threads: int | None = None):
        self.workers = workers
        self.threads = threads or max(1, available_cores() // workers)
        self.stop = threading.Event()
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.workers} local worker(s) x {self.threads} thread(s)"

    def run(self, jobs: list[Job], on_start: Callable[[Job], None], on_done: Callable[[Job, int | None], None]) -> None:
        gpus = _gpu_count()
        slots: queue.Queue[int] = queue.Queue()
        for slot in range(self.workers):
            slots.put(slot)

        def work(job: Job) -> None:
            if self.stop.is_set():
                on_done(job, None)
                return
            slot = slots.get()
            try:
                gpu = str(slot % gpus) if gpus > 1 and self.workers > 1 else None
                on_start(job)
                on_done(job, self._execute(job, child_environment(self.threads, gpu)))
            finally:
                slots.put(slot)

        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self._forward)
        try:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                for future in [pool.submit(work, job) for job in jobs]:
                    future.result()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _execute(self, job: Job, env: dict[str, str]) -> int | None:
        if not job.command:  # nothing to run: the trial's run had finished already
            return 0
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log_path, "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(job.command)}\n")
            log.flush()
            # A session of its own: a terminal's Ctrl-C reaches the sweep, which passes it on once.
            child = subprocess.Popen(job.command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            with self._lock:
                self._children.add(child)
                if self.stop.is_set():
                    child.send_signal(signal.SIGTERM)
            try:
                return child.wait()
            finally:
                with self._lock:
                    self._children.discard(child)

    def _forward(self, signum, frame) -> None:
        if not self.stop.is_set():
            logger.warning(
                "%s: stopping the running trials (each writes a checkpoint); rerun the same command to resume",
                signal.Signals(signum).name,
            )
        self.stop.set()
        with self._lock:
            for child in self._children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
