"""A run directory is locked while a process trains into it: `--resume` from a second process is refused
with one message instead of two writers interleaving one run's files."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.conftest import ROOT
from tests.test_hostile_cli import check_refused, fake_run_dir, run_cli

HOLDER = """
import sys
from pathlib import Path
from peftzoo_engine.rundir import RunDir

run = RunDir.open(Path(sys.argv[1]))   # what `recipes.run --resume` does before it trains
Path(sys.argv[2]).write_text("held")
sys.stdin.read()                       # hold the lock until the test closes our stdin
run.release()
"""


def wait_for(condition, what: str, deadline_s: float = 120.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, f"gave up after {deadline_s:.0f} s waiting for {what}"
        time.sleep(0.05)


def test_resume_of_a_run_another_process_trains_is_refused(tmp_path, capsys):
    from peftzoo_engine.rundir import RunDir

    run = fake_run_dir(tmp_path / "runs", json.dumps({"status": "running"}))
    held = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run), str(held)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: held.exists() or holder.poll() is not None, "the second process to take the run's lock")
        assert held.exists(), holder.stderr.read()
        before = (run / "run.json").read_text()
        code, out, created = run_cli(tmp_path, capsys, ["--resume", str(run)])
        check_refused(
            code, out, created, [f"{run} is being trained by another process", "wait until that process ends"]
        )
        assert (run / "run.json").read_text() == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=120)
    assert holder.returncode == 0, holder.stderr.read()
    RunDir.open(run).release()  # the lock went with the process that held it


def test_a_new_run_holds_its_lock_until_it_finishes(tmp_path):
    from peftzoo_engine.rundir import RunDir, RunLocked

    run = RunDir(tmp_path, "tiny")
    run.start("name: tiny\n", {})
    try:
        RunDir.refuse_if_locked(run.path)
    except RunLocked as exc:
        assert "is being trained by another process" in str(exc)
    else:
        raise AssertionError("a run that is training did not hold its lock")
    run.finish("completed")
    RunDir.refuse_if_locked(run.path)  # released at the end
