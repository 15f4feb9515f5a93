"""Training stages: strategies switched at stage boundaries, optimizer rebuilt, weights of all stages kept."""

from __future__ import annotations

import json

import torch
import yaml
from safetensors.torch import load_file

from peftzoo_tools.run import main
from tests.conftest import load_run, run_dir_in, tiny_recipe


def staged_recipe(**changes):
    recipe = tiny_recipe(**changes)
    del recipe["train"]["epochs"]
    recipe["train"]["stages"] = [
        {"epochs": 1},  # heads first (both sides head_only, as the sides say)
        {"epochs": 1, "lr": 5e-4, "eeg": {"strategy": {"name": "lora", "targets": ["q", "v"], "r": 2}}},
        {
            "epochs": 1,
            "eeg": {"strategy": [{"name": "lora", "targets": ["q", "v"], "r": 2}, {"name": "last_k", "k": 1}]},
        },
    ]
    return recipe


def test_stages_switch_strategies_and_keep_every_stage_weights(tmp_path, capsys):
    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump(staged_recipe()))
    assert main([str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    run_dir = run_dir_in(tmp_path / "runs")
    info = json.loads((run_dir / "run.json").read_text())
    stages = info["stages"]
    assert [s["epochs"] for s in stages] == [1, 1, 1] and [s["lr"] for s in stages] == [
        1e-3,
        5e-4,
        1e-3,
    ]  # a stage without lr uses train.lr
    counts = [s["trainable_parameters"] for s in stages]
    assert counts[0] < counts[1] < counts[2]
    assert stages[0]["strategies"]["eeg"].startswith("head_only") and stages[1]["strategies"]["eeg"].startswith("lora")
    assert stages[2]["strategies"]["eeg"].startswith("lora+last_k")
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in lines if r["type"] == "stage"] == [0, 1, 2]
    assert [r["epoch"] for r in lines if r["type"] == "eval"] == [1, 2, 3]

    state = load_file(str(run_dir / "trainable.safetensors"))
    assert any(".lora_" in k for k in state) and any(k.startswith("eeg.encoder.blocks.0.mlp") for k in state)
    # the model rebuilt from the run replays the stages and takes every saved tensor
    _, model = load_run(run_dir)
    for name, value in state.items():
        assert torch.equal(model.get_parameter(name).detach(), value)
    lora_b = [v for k, v in state.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # LoRA trained in stages 1 and 2


def test_stage_errors_are_located(tmp_path, capsys):
    recipe = staged_recipe()
    recipe["train"]["stages"][1]["eeg"]["strategy"] = ["head_only", "lora"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main([str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "train.stages: eeg.strategy: head_only trains nothing" in err and "Traceback" not in err

    recipe = staged_recipe()
    recipe["train"]["epochs"] = 5
    path.write_text(yaml.safe_dump(recipe))
    assert main([str(path), "--output-dir", str(tmp_path / "runs2"), "--quiet"]) == 2
    assert "epochs is 5 but the stages add up to 3" in capsys.readouterr().err


def test_reapplying_an_adapter_with_other_options_is_refused(tmp_path, capsys):
    recipe = staged_recipe()
    recipe["train"]["stages"][2]["eeg"]["strategy"] = {"name": "lora", "targets": ["q", "v"], "r": 4}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main([str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "already carries an adapter from an earlier strategy" in err
    # refused before the run directory exists, not after the earlier stages trained (recipes.preflight.check_stages)
    assert not (tmp_path / "runs").exists()
