"""Progress a person can watch (peftzoo_engine/display.py): bars on a terminal, plain lines elsewhere, the
training loss at least once per epoch, and the epoch line's samples/s after a mid-epoch resume."""

from __future__ import annotations

import io
import json
import logging
import signal

import pytest
import yaml

import peftzoo_engine.epoch
from peftzoo_engine import display
from peftzoo_engine.epoch import loss_line_due
from peftzoo_model.losses.clip import ClipLoss
from peftzoo_tools.run import main
from tests.conftest import run_dir_in, tiny_recipe
from tests.interrupt import sigterm_during_step


def lines(run_dir, kind):
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["type"] == kind]


def write(tmp_path, recipe) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def test_the_training_loss_is_logged_once_per_epoch_whatever_log_every_is(tmp_path, capsys):
    # 120 training pairs in batches of 32: 3 steps an epoch, so log_every 10 falls in no epoch but the fourth
    code = main(
        [
            write(tmp_path, tiny_recipe(**{"train.epochs": 4, "train.log_every": 10})),
            "--output-dir",
            str(tmp_path / "runs"),
            "--quiet",
        ]
    )
    assert code == 0
    train = lines(run_dir_in(tmp_path / "runs"), "train")
    assert [(r["epoch"], r["step"]) for r in train] == [(1, 3), (2, 6), (3, 9), (4, 10)]
    assert all(r["train/loss"] > 0 and "lr" in r for r in train)


def test_the_epoch_line_rule_is_decided_by_step_numbers():
    assert loss_line_due(step=3, log_every=10, first_step=1)
    assert not loss_line_due(step=12, log_every=10, first_step=10)  # step 10 had its line
    assert loss_line_due(step=12, log_every=5, first_step=11)
    assert not loss_line_due(step=6, log_every=2, first_step=4)


class Clock:
    """perf_counter for peftzoo_engine.epoch: one second per reading, so every timed step takes two."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


def test_samples_per_second_after_a_mid_epoch_resume_counts_the_steps_it_trained(tmp_path, capsys, monkeypatch):
    """Every step reads the clock twice (2 s a step on this clock), so an epoch of 32-pair steps runs at 16
    pairs/s, whole or resumed after its first step; counting the whole epoch's pairs over the resumed part's
    time said 24 (3 steps' pairs over 2 steps' time)."""
    monkeypatch.setattr(peftzoo_engine.epoch, "time", Clock())
    recipe = write(tmp_path, tiny_recipe(**{"train.epochs": 2}))
    monkeypatch.setattr(ClipLoss, "forward", sigterm_during_step(ClipLoss, 4))  # the first step of epoch 2
    assert main([recipe, "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 128 + signal.SIGTERM
    run = run_dir_in(tmp_path / "runs")
    monkeypatch.undo()
    monkeypatch.setattr(peftzoo_engine.epoch, "time", Clock())
    assert main(["--resume", str(run), "--quiet"]) == 0
    epochs = lines(run, "epoch")
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert [r["samples_per_s"] for r in epochs] == [pytest.approx(16.0), pytest.approx(16.0)]


class Ctx:
    """What ProgressDisplay reads of a training context."""

    def __init__(self, steps=4, batch=8, accum=1, done=0):
        self.run = type("Run", (), {"writes": True})()
        self.recipe = type(
            "R", (), {"train": type("T", (), {"batch_size": batch, "accum_freq": accum, "epochs": 3})()}
        )()
        self.steps_per_epoch = steps
        self.progress = type("P", (), {"epoch": 2, "step": 0, "batch_in_epoch": done * accum})()


class Loss:
    def __init__(self, value):
        self.value = value

    def detach(self):
        return self

    def __float__(self):
        return self.value


def test_off_a_terminal_progress_is_plain_log_lines(caplog):
    shown = display.ProgressDisplay(terminal=False, interval_s=0.0)
    ctx = Ctx(steps=4, batch=8, done=1)  # resumed after the epoch's first step
    with caplog.at_level(logging.INFO, logger="peftzoo_engine.display"):
        shown.on_run_start(ctx)
        shown.on_epoch_start(ctx)
        for step in (2, 3, 4):
            ctx.progress.step = step
            shown.on_step_end(ctx, Loss(1.5 / step), True)
        shown.on_epoch_end(ctx, {"samples_per_s": 123.0})
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("epoch 2/3: step 2/4 (50%), loss 0.7500, ") and "samples/s, ETA" in messages[0]
    assert messages[2].startswith("epoch 2/3: step 4/4 (100%), loss 0.3750, ")
    assert messages[-1].startswith("epoch 2/3 done in ") and messages[-1].endswith(": 123 samples/s")


def test_on_a_terminal_each_epoch_has_a_bar_with_loss_rate_and_eta(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    shown = display.ProgressDisplay(terminal=True, refresh_s=0.0)
    ctx = Ctx(steps=4, batch=8)
    shown.on_run_start(ctx)
    shown.on_epoch_start(ctx)
    bar = shown.bar
    assert bar.total == 32 and bar.n == 0 and bar.desc == "epoch 2/3"
    for _step in (1, 2):
        shown.on_step_end(ctx, Loss(0.25), True)
    assert bar.n == 16 and bar.postfix == "loss 0.2500"
    bar.refresh()
    text = out.getvalue()
    assert "epoch 2/3" in text and "16.0/32.0" in text and "loss 0.2500" in text and "samples/s" in text and "<" in text
    shown.on_epoch_end(ctx, {})
    assert shown.bar is None


def test_caching_progress_is_a_bar_on_a_terminal_and_lines_elsewhere(caplog):
    from tqdm.auto import tqdm

    bar = display.progress(range(3), "caching eeg features", terminal=True)
    assert isinstance(bar, tqdm) and bar.total == 3 and list(bar) == [0, 1, 2]
    with caplog.at_level(logging.INFO, logger="peftzoo_engine.display"):
        assert list(display.progress(range(3), "caching eeg features", terminal=False, interval_s=0.0)) == [0, 1, 2]
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:3] == [m for m in messages[:3] if m.startswith("caching eeg features: ")]
    assert messages[0].startswith("caching eeg features: 1/3 batches, ") and "batch/s" in messages[0]
