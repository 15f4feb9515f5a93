"""#9.11: Ctrl-C and SIGTERM outside the optimizer steps (here: evaluation) stop the run within
seconds with a message, and the run resumes from its last checkpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import yaml

from peftzoo_tools.run import main
from tests.conftest import ROOT, run_dir_in, tiny_recipe


def test_ctrl_c_during_evaluation_stops_at_once_and_the_run_resumes(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(**{"train.epochs": 3, "train.feature_cache": False})))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.slow_eval_worker", str(path), "--output-dir", str(tmp_path / "runs")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "evaluating"  # epoch 2's evaluation, which sleeps 300 s
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    assert stopped_in < 120  # at once, not after the evaluation's 300 s (a loaded machine may take tens of seconds)
    assert "SIGINT during evaluation: stopping now" in err and "--resume" in err and "Traceback" not in err
    run_dir = run_dir_in(tmp_path / "runs")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert not list(run_dir.rglob("*.tmp"))  # nothing half-written

    capsys.readouterr()
    assert main(["--resume", str(run_dir), "--quiet"]) == 0  # from epoch 1's checkpoint
    evals = [json.loads(x)["epoch"] for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert evals == [1, 2, 3] and json.loads((run_dir / "run.json").read_text())["status"] == "completed"
