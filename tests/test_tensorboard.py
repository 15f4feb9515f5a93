"""`train.loggers: [jsonl, tensorboard]`: metrics.jsonl mirrored into RUN/tensorboard/ with the recipe's hparams."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from recipes import schema
from recipes.errors import RecipeError
from recipes.run import main
from tests.conftest import tiny_recipe


def test_tensorboard_gets_every_metric_under_its_metrics_jsonl_name_and_the_hparams(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(**{"data.n": 64, "train.log_every": 1, "train.loggers": ["jsonl", "tensorboard"]})))
    assert main([str(recipe), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run: "))
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected: dict[str, list[tuple[int, float]]] = {}
    for line in lines:
        for key, value in line.items():
            if key not in ("type", "epoch", "step", "stage") and isinstance(value, (int, float)) and not isinstance(value, bool):
                expected.setdefault(key, []).append((line["step"], value))
    assert {"train/loss", "lr", "val/eeg_to_video/R@1", "val/loss", "data_wait_frac"} <= set(expected)

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for tag, points in expected.items():
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        # add_hparams logs each final metric once more at the last step: the same value
        assert logged[: len(points)] == [(s, pytest.approx(v, rel=1e-6)) for s, v in points], tag
    content = events.PluginTagToContent("hparams")
    assert set(content) >= {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["train.lr"].number_value == pytest.approx(1e-3)
    assert start.hparams["eeg.encoder.name"].string_value == "tiny_eeg"
    assert start.hparams["train.loggers"].string_value == "['jsonl', 'tensorboard']"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} >= {"val/eeg_to_video/R@1", "val/video_to_eeg/R@1"}


def test_loggers_are_checked_when_the_recipe_is_validated(reg, monkeypatch):
    with pytest.raises(RecipeError, match=r"train.loggers: metrics.jsonl is part of every run directory .* keep jsonl"):
        schema.validate(tiny_recipe(**{"train.loggers": ["tensorboard"]}), reg)
    with pytest.raises(RecipeError, match=r"train.loggers.0: Input should be 'jsonl' or 'tensorboard'"):
        schema.validate(tiny_recipe(**{"train.loggers": ["wandb"]}), reg)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(RecipeError, match=r"pip install 'peftzoo\[tensorboard\]'"):
        schema.validate(tiny_recipe(**{"train.loggers": ["jsonl", "tensorboard"]}), reg)
    assert schema.validate(tiny_recipe(), reg).train.loggers == ["jsonl"]


def test_a_resumed_run_replaces_the_events_after_its_checkpoint(tmp_path):
    """As metrics.jsonl drops its lines after the checkpoint's step, TensorBoard purges those events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from recipes.loggers.tensorboard import TensorBoardLogger

    first = TensorBoardLogger(tmp_path / "tb")
    for step in range(1, 6):  # interrupted after step 5, last checkpoint at step 3
        first.log({"type": "train", "epoch": 1, "step": step, "train/loss": 10.0 + step})
    first.writer.close()
    resumed = TensorBoardLogger(tmp_path / "tb", resume_step=3)
    for step in range(4, 7):
        resumed.log({"type": "train", "epoch": 1, "step": step, "train/loss": 20.0 + step})
    resumed.finish({"status": "interrupted"}, {})
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, 11), (2, 12), (3, 13), (4, 24), (5, 25), (6, 26)]
