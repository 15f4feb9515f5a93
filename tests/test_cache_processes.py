"""Two processes or threads (parallel sweep trials) asking for one cache entry: one computes, the other waits
and reads."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import encoders
from peftzoo_data.base import PairedData
from peftzoo_engine import video_cache
from tests.cache_support import entry_files
from tests.conftest import ROOT
from tests.waiting import GENEROUS, wait_until


def test_two_processes_compute_one_feature_entry_once(tmp_path):
    cache, go = tmp_path / "cache", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "cache_worker.py"),
                str(cache),
                str(tmp_path / f"out{i}.npy"),
                str(tmp_path / f"ready{i}"),
                str(go),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        for i, p in enumerate(procs):
            wait_until(lambda i=i: (tmp_path / f"ready{i}").exists(), f"worker {i} to be ready", proc=p)
        go.touch()
        outputs = [p.communicate(timeout=GENEROUS) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs
    said = sorted(out.strip().splitlines()[-1] for out, _ in outputs)
    assert said == ["computed", "reused"], outputs
    waiter = next(err for out, err in outputs if out.strip().endswith("reused"))
    assert "another process is writing" in waiter
    assert np.array_equal(np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy"))
    assert len(entry_files(cache)) == 2  # one entry (data file and manifest), no temporary file


def test_two_threads_write_one_clip_entry_once(tmp_path, monkeypatch, caplog):
    """The clip cache takes the same per-entry lock (a file lock, so it holds between threads as between processes)."""
    rng = np.random.default_rng(0)
    data = PairedData(
        eeg=np.zeros((20, 1, 8), np.float32),
        video=rng.integers(0, 256, (20, 6, 20, 20, 3), dtype=np.uint8),
        sfreq=200.0,
        channels=["C3"],
        fps=8.0,
        groups=np.arange(20),
        splits={"train": np.arange(20)},
        fingerprint="two-thread-test",
    )
    encoder = encoders.build("tiny_video", dim=8, depth=1, heads=2, frames=4, size=16)
    real, computed = video_cache.clip_batches, []

    def slow(*args, **kwargs):
        computed.append(1)
        for batch in real(*args, **kwargs):
            time.sleep(0.3)
            yield batch

    monkeypatch.setattr(video_cache, "clip_batches", slow)
    results, errors = {}, []

    def ask(i):
        try:
            results[i] = np.array(video_cache.prepare(encoder, data, tmp_path, batch_size=5).video)
        except BaseException as exc:  # reported below
            errors.append(exc)

    with caplog.at_level(logging.INFO, logger="peftzoo_engine.cache.store"):
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == [] and len(computed) == 1 and np.array_equal(results[0], results[1])
    assert any("another process is writing" in r.getMessage() for r in caplog.records)
    assert len(entry_files(tmp_path)) == 2


def test_waiting_for_another_writer_stops_at_once_on_a_signal(tmp_path):
    """A run waiting on another process's entry lock is stopped within a second by a handler that raises."""
    import signal

    from peftzoo_engine.cache import store

    entry = store.Entry(tmp_path, f"eeg-{'a' * 32}", ".safetensors")
    held, done = threading.Event(), threading.Event()

    def other_writer():
        with entry.locked():
            held.set()
            done.wait(30)

    def stop(signum, frame):
        raise KeyboardInterrupt

    writer = threading.Thread(target=other_writer)
    writer.start()
    previous = signal.signal(signal.SIGALRM, stop)
    try:
        assert held.wait(30)
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt), entry.locked():
            pytest.fail("took a lock another writer holds")
        assert time.monotonic() - start < 10  # at once (0.3 s + one 0.1-s poll when idle), not after the other writer
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        done.set()
        writer.join(30)
    with entry.locked():  # the interrupted waiter left nothing held
        pass
