"""`--backend ray`: the same trials, sweep directory and sweep.json, run as Ray tasks (local instance)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_recipe


def test_ray_backend_runs_the_trials_of_a_sweep(tmp_path, capsys, monkeypatch):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'peftzoo[ray]')")
    from peftzoo_tools.sweep.cli import main

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(**{"data.n": 64, "train.epochs": 1})))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # a trial asking for more than the cluster has is refused before it waits forever
        assert (
            main(
                [
                    str(recipe),
                    "seed=[0,1]",
                    "--backend",
                    "ray",
                    "--trial-cpus",
                    "4",
                    "--output-dir",
                    str(tmp_path / "big"),
                    "-q",
                ]
            )
            == 2
        )
        assert "the Ray cluster has 2 CPUs" in capsys.readouterr().err and not (tmp_path / "big").exists()
        assert ray.available_resources().get("CPU") == 2
        code = main(
            [
                str(recipe),
                "seed=[0,1]",
                "--backend",
                "ray",
                "--trial-cpus",
                "1",
                "--output-dir",
                str(tmp_path / "sweeps"),
                "-q",
            ]
        )
    finally:
        ray.shutdown()
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    sweep = Path(out[-1].removeprefix("sweep: "))
    trials = json.loads((sweep / "sweep.json").read_text())["trials"]
    assert [t["status"] for t in trials] == ["completed", "completed"]
    for trial in trials:
        run = Path(trial["run"])
        assert run.parent == sweep / trial["id"] and (run / "trainable.safetensors").is_file()
        assert json.loads((run / "run.json").read_text())["status"] == "completed"
        assert trial["final_metrics"]["val/n"] == 16
