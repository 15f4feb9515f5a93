"""Issue #13's "done when", end to end on a bundled recipe: one command sweeps lr x dropout x seed,
computes the frozen encoders' features once per data set before any trial, survives a SIGTERM and a
rerun, and leaves the table, the HTML index and TensorBoard logs."""

from __future__ import annotations

import calendar
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from peftzoo_tools.compare.cli import main as compare
from tests.conftest import ROOT
from tests.waiting import GENEROUS, wait_until

SWEEP = [
    "head_only_tiny",
    "train.lr=[1e-3,3e-3]",
    "eeg.head.dropout=[0.0,0.2]",
    "seed=[0,1]",
    "train.epochs=3",
    "data.n=160",
    "train.loggers=[[jsonl,tensorboard]]",
]


def sweep_process(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "recipes.sweep", *SWEEP, "--output-dir", str(out), "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def completed(sweep_json: Path) -> list[str]:
    try:
        return [t["id"] for t in json.loads(sweep_json.read_text())["trials"] if t["status"] == "completed"]
    except (OSError, ValueError, KeyError):
        return []  # not written yet (it is replaced atomically, so never half-read)


def test_a_sweep_of_lr_dropout_and_seed_runs_resumes_and_reports(tmp_path, capsys):
    out = tmp_path / "sweeps"
    first = sweep_process(out)

    def one_completed() -> list[Path]:
        found = list(out.glob("*/sweep.json"))
        return found if found and completed(found[0]) else []

    found = wait_until(one_completed, "the sweep's first completed trial", proc=first, interval=0.1)
    done_before = completed(found[0])
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=GENEROUS)
    assert first.returncode != 0, stderr[-2000:]
    sweep = found[0].parent
    stamps = {t: (sweep / t).stat().st_mtime for t in done_before}
    assert len(done_before) < 8

    again = sweep_process(out)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    assert stdout.strip().splitlines()[-1] == f"sweep: {sweep}"
    data = json.loads((sweep / "sweep.json").read_text())
    assert len(data["trials"]) == 8 and all(t["status"] == "completed" for t in data["trials"])
    assert {t: (sweep / t).stat().st_mtime for t in done_before} == stamps  # finished trials are not rerun

    # features: one entry per side and seed (the seed draws the synthetic data and the tiny encoders),
    # all written by the pre-pass before the first trial started
    cached = sorted((sweep / ".cache" / "features").glob("*.safetensors"))
    assert sorted(p.name.split("-")[0] for p in cached) == ["eeg", "eeg", "video", "video"]
    runs = [Path(t["run"]) for t in data["trials"]]
    starts = [json.loads((run / "run.json").read_text())["start_time"] for run in runs]  # UTC, to the second
    first_start = min(calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) for s in starts)
    assert all(p.stat().st_mtime <= first_start + 1 for p in cached)

    # the table: differing keys, seeds aggregated as mean ± std per configuration
    table = stdout
    assert "train.lr" in table and "eeg.head.dropout" in table and "mean ± std over seeds" in table
    assert len(re.findall(r"\d\.\d{4} ± \d\.\d{4}", table)) >= 4

    # TensorBoard logs in every trial, the HTML index over the sweep
    for run in runs:
        assert list((run / "tensorboard").glob("events.out.tfevents.*")), run
    page = tmp_path / "page"
    assert compare([str(sweep), "--html", str(page)]) == 0
    html = (page / "index.html").read_text()
    for source in re.findall(r'<img src="([^"]+)"', html):
        assert (page / source).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", source
    assert all(run.name in html for run in runs) and len(set(re.findall(r'id="(run-\d+)"', html))) == len(runs)
