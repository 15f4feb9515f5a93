"""End to end: `python -m recipes.run` trains, evaluates and writes the run directory
(docs/reference/run-directory.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from safetensors import safe_open

from peftzoo_tools.run import main
from recipes import schema
from tests.conftest import run_python, tiny_recipe


def run_in_process(tmp_path: Path, recipe, *overrides: str, capsys) -> Path:
    source = recipe
    if isinstance(recipe, dict):
        source = tmp_path / "recipe.yaml"
        source.write_text(yaml.safe_dump(recipe))
    code = main([str(source), *overrides, "--output-dir", str(tmp_path / "runs"), "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    last = out.out.strip().splitlines()[-1]
    assert last.startswith("run: ")
    return Path(last.removeprefix("run: "))


def final_eval(run_dir: Path) -> dict:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in lines if r["type"] == "eval"]
    assert evals, "no eval line"
    return evals[-1]


def test_bundled_head_only_recipe_learns_the_planted_signal(tmp_path, capsys, reg):
    """The issue's bar: head_only on the tiny encoders reaches at least 5x chance R@1 on synthetic."""
    run_dir = run_in_process(tmp_path, "head_only_tiny.yaml", capsys=capsys)
    metrics = final_eval(run_dir)
    chance = metrics["val/chance_R@1"]
    assert metrics["val/n"] == 120
    assert metrics["val/eeg_to_video/R@1"] >= 5 * chance, metrics
    assert metrics["val/video_to_eeg/R@1"] >= 5 * chance, metrics
    assert metrics["val/eeg_to_video/R@10"] >= metrics["val/eeg_to_video/R@5"] >= metrics["val/eeg_to_video/R@1"]
    assert metrics["val/eeg_to_video/median_rank"] <= 2

    # the run directory of docs/reference/run-directory.md
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["end_time"] and info["run_id"] == run_dir.name
    assert set(info["git"]) == {"commit", "dirty"} and info["versions"]["torch"]
    resolved = schema.read_yaml(run_dir / "recipe.yaml")
    assert resolved["train"]["epochs"] == 15 and resolved["eeg"]["head"]["hidden"] == [256]  # defaults written out
    assert schema.validate(resolved, reg).model_dump() == schema.validate(resolved, reg).model_dump()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["type"] for r in lines} == {"stage", "train", "epoch", "eval"}
    assert all(0 <= r["data_wait_frac"] <= 1 for r in lines if r["type"] == "epoch")
    assert [r["epoch"] for r in lines if r["type"] == "eval"] == list(range(1, 16))
    with safe_open(str(run_dir / "trainable.safetensors"), "pt") as f:
        keys = set(f.keys())
        meta = f.metadata()
    assert keys and all(k.startswith(("eeg.head.", "video.head.", "loss.")) for k in keys)
    assert "head_only_tiny" in meta["recipe"] and json.loads(meta["base_checkpoints"])["eeg"]["sha256"] is None
    assert (run_dir / "checkpoints" / "last.pt").is_file()


def test_zero_learning_rate_stays_at_chance(tmp_path, capsys):
    """The planted bug (nothing learns) must not pass the bar the previous test uses."""
    run_dir = run_in_process(tmp_path, "head_only_tiny.yaml", "train.lr=0", "train.epochs=2", capsys=capsys)
    metrics = final_eval(run_dir)
    assert metrics["val/eeg_to_video/R@1"] < 5 * metrics["val/chance_R@1"], metrics


def test_full_strategy_on_arrays_data(tmp_path, capsys, reg):
    """arrays format with groups, full fine-tuning on one side: learns and never splits a group."""
    data = reg.build(
        "datasets", {"name": "synthetic", "n": 200, "seconds": 1, "frames": 4, "height": 20, "width": 20}, seed=1
    )
    root = tmp_path / "pairs"
    root.mkdir()
    np.save(root / "eeg.npy", data.eeg)
    np.save(root / "video.npy", data.video)
    np.save(root / "groups.npy", np.arange(200) // 4)
    (root / "meta.json").write_text(json.dumps({"sfreq": 200, "channels": data.channels, "fps": 8}))
    recipe = tiny_recipe(
        **{
            "data": {"name": "arrays", "path": str(root), "val_fraction": 0.2},
            "eeg.strategy": {"name": "full", "lr_scale": 0.5},
        }
    )
    recipe["train"] = {"epochs": 6, "batch_size": 32, "lr": 2e-3}
    run_dir = run_in_process(tmp_path, recipe, capsys=capsys)
    metrics = final_eval(run_dir)
    assert metrics["val/n"] == 40
    assert metrics["val/eeg_to_video/R@1"] >= 3 * metrics["val/chance_R@1"], metrics
    info = json.loads((run_dir / "run.json").read_text())
    assert info["splits"] == {"train": 160, "val": 40}
    with safe_open(str(run_dir / "trainable.safetensors"), "pt") as f:
        assert any(k.startswith("eeg.encoder.") for k in f.keys())  # noqa: SIM118 - safetensors' safe_open has keys() but no __contains__/__iter__
        assert not any(k.startswith("video.encoder.") for k in f.keys())  # noqa: SIM118 - safetensors' safe_open has keys() but no __contains__/__iter__


def test_cli_process_prints_the_run_line_last(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe()))
    out = run_python("-m", "recipes.run", str(path), "train.epochs=1", "--output-dir", str(tmp_path / "runs"))
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("run: ") and Path(last[5:]).is_dir()
    assert "INFO peftzoo_engine.trainer" in out.stderr


def test_json_schema_cli():
    out = run_python("-m", "recipes.schema")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc["properties"]) >= {"name", "seed", "data", "eeg", "video", "embed_dim", "loss", "train", "eval"}
    text = json.dumps(doc)
    for name in ("head_only", "full", "tiny_eeg", "tiny_video", "synthetic", "arrays", "mlp", "linear", "clip"):
        assert f'"{name}"' in text
