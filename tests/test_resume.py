"""Exact resume: a run stopped by SIGTERM mid-epoch and resumed ends exactly like an uninterrupted one."""

from __future__ import annotations

import json
import signal

import pytest
import torch
import yaml
from safetensors.torch import load_file

from peftzoo_model.losses.clip import ClipLoss
from peftzoo_model.losses.protonce import ProtoNCELoss
from peftzoo_tools.run import main
from tests.conftest import run_dir_in, tiny_recipe
from tests.interrupt import sigterm_during_step

RECIPE = tiny_recipe(
    **{
        "eeg.strategy": {
            "name": "lora",
            "targets": ["q", "v"],
            "r": 2,
            "dropout": 0.2,
        },  # dropout: the RNG must resume too
        "train.epochs": 3,
    }
)


def lines(run_dir, kind):
    return [
        json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if json.loads(x)["type"] == kind
    ]


# protonce: its prototypes of epoch 2 (after a 1-epoch warm-up) must survive the interruption too.
@pytest.mark.parametrize("loss", [ClipLoss, ProtoNCELoss])
def test_sigterm_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path, capsys, monkeypatch, loss):
    path = tmp_path / "r.yaml"
    recipe = dict(
        RECIPE,
        loss={"name": "protonce", "num_clusters": [4, 6], "warmup_epochs": 1} if loss is ProtoNCELoss else "clip",
    )
    path.write_text(yaml.safe_dump(recipe))
    assert main([str(path), "--output-dir", str(tmp_path / "a"), "--quiet"]) == 0
    straight = run_dir_in(tmp_path / "a")

    real_forward = loss.forward
    monkeypatch.setattr(loss, "forward", sigterm_during_step(loss, 5))  # 3 steps per epoch: step 2 of epoch 2
    assert main([str(path), "--output-dir", str(tmp_path / "b"), "--quiet"]) == 128 + signal.SIGTERM
    stopped = run_dir_in(tmp_path / "b")
    info = json.loads((stopped / "run.json").read_text())
    assert info["status"] == "interrupted"
    saved = torch.load(stopped / "checkpoints" / "last.pt", weights_only=False)
    assert (
        saved["progress"]["step"] == 5 and saved["progress"]["epoch"] == 2 and saved["progress"]["batch_in_epoch"] == 2
    )
    monkeypatch.setattr(loss, "forward", real_forward)
    capsys.readouterr()

    assert main(["--resume", str(stopped), "--quiet"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"run: {stopped}"
    assert json.loads((stopped / "run.json").read_text())["status"] == "completed"
    assert lines(stopped, "eval") == lines(straight, "eval")
    assert [(r["step"], r["train/loss"]) for r in lines(stopped, "train")] == [
        (r["step"], r["train/loss"]) for r in lines(straight, "train")
    ]
    a, b = load_file(str(straight / "trainable.safetensors")), load_file(str(stopped / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_latest_and_errors(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(**{"train.epochs": 1})))
    assert main([str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    capsys.readouterr()
    assert main([str(path), "--resume", "latest", "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 2
    assert "no unfinished run of 'tiny_test'" in capsys.readouterr().err
    assert main(["--resume", str(run_dir_in(tmp_path / "runs")), "--quiet"]) == 2
    assert "has completed already" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path), "--quiet"]) == 2
    assert "is not a run directory with a checkpoint" in capsys.readouterr().err


def test_sigterm_to_a_real_process_stops_cleanly(tmp_path):
    """The CLI in its own process: SIGTERM gives a checkpoint, status 'interrupted', no traceback."""
    import subprocess
    import sys

    from tests.waiting import GENEROUS, wait_until

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(**{"train.epochs": 200, "train.feature_cache": False})))
    proc = subprocess.Popen(
        [sys.executable, "-m", "recipes.run", str(path), "--output-dir", str(tmp_path / "runs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: list((tmp_path / "runs").glob("*/checkpoints/last.pt")), "the run's first checkpoint", proc=proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=GENEROUS)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err and "--resume" in err
    run_dir = run_dir_in(tmp_path / "runs")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert out.strip().splitlines()[-1] == f"run: {run_dir}"
