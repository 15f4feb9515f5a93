"""The engine's checks and records around a run: the plan checked before training (#15), best
weights and early stopping (#12.4), run.json["data"], the adapter/encoder wording and the resume log."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

import peftzoo_engine.stages
from peftzoo_engine.weights import read_metadata
from peftzoo_tools.run import main
from tests.conftest import run_dir_in, tiny_recipe


def run(tmp_path, capsys, recipe, *args):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code = main([str(path), "--output-dir", str(tmp_path / "runs"), "--quiet", *args])
    return code, capsys.readouterr(), run_dir_in(tmp_path / "runs")


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"train.accum_freq": 1000},
            "train.accum_freq: 1000 micro-batches of 32 pairs make one optimizer step of 32000 pairs, "
            "but the train split has 120 pairs, so an epoch would take 0 steps",
        ),
        (
            {"train.warmup_steps": 50},
            "train.warmup_steps: 50 warmup steps, but the run has only 6 optimizer steps (3 per epoch x 2 epochs)",
        ),
        (
            {"train.select": {"metric": "val/loss"}, "data.val_fraction": 0.0},
            "train.select ranks epochs by their validation metrics",
        ),
    ],
)
def test_a_plan_that_trains_nothing_is_refused(tmp_path, capsys, changes, message):
    code, out, run_dir = run(tmp_path, capsys, tiny_recipe(**changes))
    assert code == 2 and message in out.err and "Traceback" not in out.err
    assert run_dir is None  # refused before a run directory was made


def test_select_names_a_metric_the_evaluation_logs(tmp_path, capsys):
    code, out, _ = run(tmp_path, capsys, tiny_recipe(**{"train.select": {"metric": "val/R@1"}}))
    assert code == 2 and "train.select.metric" in out.err and "'val/R@1' is not a metric the evaluation logs" in out.err


def test_evaluation_logs_every_selectable_metric(tmp_path, capsys):
    from recipes.schema import SELECTABLE_METRICS

    code, _, run_dir = run(tmp_path, capsys, tiny_recipe(**{"train.epochs": 1}))
    assert code == 0
    evals = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert set(SELECTABLE_METRICS) <= set(evals[-1])


def planted(monkeypatch, values):
    """Evaluation reports `values[epoch - 1]` as val/loss (the rest as evaluated)."""
    real = peftzoo_engine.stages.evaluate_epoch

    def evaluate_epoch(ctx):
        metrics = real(ctx)
        metrics["val/loss"] = values[ctx.progress.epoch - 1]
        return metrics

    monkeypatch.setattr(peftzoo_engine.stages, "evaluate_epoch", evaluate_epoch)


def test_best_weights_are_those_of_the_best_epoch(tmp_path, capsys, monkeypatch):
    planted(monkeypatch, [3.0, 2.0, 1.0, 1.5, 2.5])  # best at epoch 3
    snapshots = {}
    real_after = peftzoo_engine.stages.after_evaluation

    def after_evaluation(recipe, model, run, progress, metrics):
        snapshots[progress.epoch] = {n: p.detach().clone() for n, p in model.trainable_parameters().items()}
        return real_after(recipe, model, run, progress, metrics)

    monkeypatch.setattr(peftzoo_engine.stages, "after_evaluation", after_evaluation)
    code, out, run_dir = run(
        tmp_path, capsys, tiny_recipe(**{"train.epochs": 5, "train.select": {"metric": "val/loss"}})
    )
    assert code == 0, out.err
    info = json.loads((run_dir / "run.json").read_text())
    assert info["best"] == {"epoch": 3, "step": 9, "metric": "val/loss", "mode": "min", "value": 1.0}
    assert info["status"] == "completed" and "stopped_early" not in info
    best = load_file(str(run_dir / "best.safetensors"))
    assert best.keys() == load_file(str(run_dir / "trainable.safetensors")).keys()
    assert all(torch.equal(best[n], snapshots[3][n]) for n in snapshots[3])
    assert not all(torch.equal(best[n], snapshots[5][n]) for n in snapshots[5])
    meta = read_metadata(run_dir / "best.safetensors")
    assert meta["epoch"] == 3 and meta["metric"] == "val/loss" and meta["value"] == 1.0 and "recipe" in meta


def test_early_stopping_ends_at_the_right_epoch(tmp_path, capsys, monkeypatch):
    # R@1 improves until epoch 2; epochs 3 and 4 improve by less than min_delta: patience 2 stops after epoch 4
    real = peftzoo_engine.stages.evaluate_epoch
    values = [0.1, 0.3, 0.305, 0.31, 0.9, 0.9]

    def evaluate_epoch(ctx):
        metrics = real(ctx)
        metrics["val/eeg_to_video/R@1"] = values[ctx.progress.epoch - 1]
        return metrics

    monkeypatch.setattr(peftzoo_engine.stages, "evaluate_epoch", evaluate_epoch)
    recipe = tiny_recipe(
        **{
            "train.epochs": 6,
            "train.select": {"metric": "val/eeg_to_video/R@1"},
            "train.early_stopping": {"patience": 2, "min_delta": 0.05},
        }
    )
    code, out, run_dir = run(tmp_path, capsys, recipe)
    assert code == 0, out.err
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["stopped_early"]["epoch"] == 4
    assert "did not improve" in info["stopped_early"]["reason"]
    assert info["best"]["epoch"] == 4  # selection counts any improvement; stopping wants more than min_delta
    epochs = [json.loads(x)["epoch"] for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert epochs == [1, 2, 3, 4] and info["steps"] == 12


def test_run_json_records_the_training_data_and_adapter_wording(tmp_path, capsys):
    recipe = tiny_recipe(**{"train.epochs": 1, "eeg.strategy": {"name": "lora", "targets": ["q", "v"], "r": 2}})
    code, out, run_dir = run(tmp_path, capsys, recipe)
    assert code == 0, out.err
    info = json.loads((run_dir / "run.json").read_text())
    assert info["data"] == {
        "channels": info["data"]["channels"],
        "sfreq": 200.0,
        "n_samples": 200,
        "frame_shape": [4, 20, 20, 3],
    }
    assert len(info["data"]["channels"]) > 0 and all(isinstance(c, str) for c in info["data"]["channels"])
    assert "adapter parameters" in info["strategies"]["eeg"] and "encoder parameters" not in info["strategies"]["eeg"]
