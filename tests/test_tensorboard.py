"""`train.loggers: [jsonl, tensorboard]`: metrics.jsonl mirrored into RUN/tensorboard/ with the recipe's hparams."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from peftzoo_tools.run import main
from recipes import schema
from recipes.errors import RecipeError
from tests.conftest import tiny_recipe


def test_tensorboard_gets_every_metric_under_its_metrics_jsonl_name_and_the_hparams(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(tiny_recipe(**{"data.n": 64, "train.log_every": 1, "train.loggers": ["jsonl", "tensorboard"]}))
    )
    assert main([str(recipe), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("run: "))
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected: dict[str, list[tuple[int, float]]] = {}
    for line in lines:
        for key, value in line.items():
            if (
                key not in ("type", "epoch", "step", "stage")
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
            ):
                expected.setdefault(key, []).append((line["step"], value))
    assert {"train/loss", "lr", "val/eeg_to_video/R@1", "val/loss", "data_wait_frac"} <= set(expected)

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for tag, points in expected.items():
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        # each point once: the hparams summaries add no second copy of the final metrics at the last step
        assert logged == [(s, pytest.approx(v, rel=1e-6)) for s, v in points], tag
    assert [p.name for p in (run / "tensorboard").iterdir() if p.is_dir()] == []  # one run, no hparams subfolder
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

    from peftzoo_engine.loggers.tensorboard import TensorBoardLogger

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
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
        (1, 11),
        (2, 12),
        (3, 13),
        (4, 24),
        (5, 25),
        (6, 26),
    ]


def test_two_resumes_keep_one_point_per_step_and_nested_hparams_become_readable_values(tmp_path):
    """Interrupted twice, then completed: every step once, the last attempt's values after each
    checkpoint; lists, None and nested sections of the recipe reach the HParams tab as values."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from peftzoo_engine.loggers.tensorboard import TensorBoardLogger

    for resume, steps, base in ((None, range(1, 6), 10.0), (3, range(4, 8), 20.0), (5, range(6, 9), 30.0)):
        logger = TensorBoardLogger(tmp_path / "tb", resume_step=resume)
        for step in steps:
            logger.log({"type": "train", "step": step, "train/loss": base + step})
        logger.log({"type": "eval", "epoch": 1, "step": steps[-1], "val/eeg_to_video/R@1": base / 100})
        if resume != 5:
            logger.writer.close()  # killed: no finish
    recipe = {"eeg": {"head": {"name": "mlp", "hidden": [32, 16], "dropout": None}}, "train": {"lr": 1e-3, "amp": True}}
    logger.finish(
        {"status": "completed", "final_metrics": {"val/eeg_to_video/R@1": 0.3, "val/n": float("nan")}}, recipe
    )
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
        (1, 11),
        (2, 12),
        (3, 13),
        (4, 24),
        (5, 25),
        (6, 36),
        (7, 37),
        (8, 38),
    ]
    assert [(e.step, e.value) for e in events.Scalars("val/eeg_to_video/R@1")] == [(8, pytest.approx(0.3))]
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["eeg.head.hidden"].string_value == "[32, 16]"
    assert start.hparams["eeg.head.dropout"].string_value == "None"
    assert (
        start.hparams["eeg.head.name"].string_value == "mlp" and start.hparams["train.amp"].number_value == 1
    )  # torch writes booleans as numbers
    assert start.hparams["train.lr"].number_value == pytest.approx(1e-3)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["val/eeg_to_video/R@1"]  # NaN left out
