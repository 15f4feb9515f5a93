"""Many heads at once (peftzoo_tools/sweep/batched): a batched trial equals its ordinary run, and every
trial ends in a complete run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import recipes
from peftzoo_engine import seed_everything, train
from peftzoo_engine.rundir import RunDir
from peftzoo_engine.weights import read_state
from peftzoo_tools.sweep.batched import batch_key, train_batched, unsupported_reason
from recipes import schema
from recipes.compose import compose
from recipes.errors import RecipeError
from tests.conftest import tiny_recipe

RUN_FILES = {"recipe.yaml", "run.json", "metrics.jsonl", "trainable.safetensors"}


def _recipe(reg, cache, **changes):
    return schema.validate(
        tiny_recipe(**{"train.epochs": 2, "train.log_every": 2, "train.cache_dir": str(cache), **changes}), reg
    )


def _ordinary(recipe, reg, out):
    """The trial run alone, as peftzoo_tools.run does it."""
    seed_everything(recipe.seed)
    data = reg.build("datasets", recipe.data, seed=recipe.seed)
    model = compose(recipe, data, reg)
    run = RunDir(out, recipe.name)
    train(recipe, model, data, run, torch.device("cpu"), reg)
    return run.path


def _lines(run_dir, kind):
    return [
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["type"] == kind
    ]


@pytest.mark.parametrize(
    "head",
    [
        "linear",
        {"name": "mlp", "hidden": [24]},
        {"name": "mlp", "hidden": [24, 16], "activation": "relu", "layer_norm": True},
    ],
)
def test_batched_trials_equal_their_ordinary_runs(tmp_path, reg, head):
    configs = [
        {"train.lr": 1e-3},
        {"train.lr": 3e-3, "train.weight_decay": 0.2, "train.warmup_steps": 2},
        {
            "train.lr": 2e-3,
            "loss": {"name": "clip", "temperature": 0.1, "max_logit_scale": 12.0},
            "train.grad_clip_norm": 0.3,
            "train.min_lr": 1e-4,
        },
    ]
    trial_recipes = [_recipe(reg, tmp_path / "cache", **{"eeg.head": head, "video.head": head, **c}) for c in configs]
    runs = train_batched(trial_recipes, [tmp_path / f"trial-{i}" for i in range(len(configs))], reg)
    assert len(runs) == 3 and len({r.parent for r in runs}) == 3
    for recipe, batched in zip(trial_recipes, runs):
        assert {p.name for p in batched.iterdir()} >= RUN_FILES
        info = json.loads((batched / "run.json").read_text())
        assert info["status"] == "completed" and info["batched_heads"] == {"trials": 3}
        ordinary = _ordinary(recipe, reg, tmp_path / "alone")
        alone = json.loads((ordinary / "run.json").read_text())
        assert info["steps"] == alone["steps"] > 0
        for key, value in alone["final_metrics"].items():
            assert info["final_metrics"][key] == pytest.approx(value, abs=1e-4), key
        # every evaluation and every logged training step, not only the last
        for kind in ("eval", "train"):
            got, want = _lines(batched, kind), _lines(ordinary, kind)
            assert len(got) == len(want) > 0
            for g, w in zip(got, want):
                for key in ("step", "val/loss", "val/eeg_to_video/R@1", "train/loss", "lr", "logit_scale"):
                    if key in w:
                        assert g[key] == pytest.approx(w[key], rel=1e-4, abs=1e-5), (kind, key, w["step"])
        got_w, want_w = read_state(batched / "trainable.safetensors"), read_state(ordinary / "trainable.safetensors")
        assert sorted(got_w) == sorted(want_w)
        for name in want_w:
            torch.testing.assert_close(got_w[name], want_w[name], atol=1e-4, rtol=1e-4)
        # the temperature clamp is per trial (trial 2 caps the logit scale at 12)
        assert max(line["logit_scale"] for line in _lines(batched, "train")) <= recipe.loss.max_logit_scale + 1e-4
        loaded = recipes.load(batched, device="cpu")  # loadable like any run
        assert loaded is not None


def test_eligibility_and_grouping(reg, tmp_path):
    base = _recipe(reg, tmp_path)
    assert unsupported_reason(base) is None
    assert "head_only" in unsupported_reason(_recipe(reg, tmp_path, **{"eeg.strategy": "full"}))
    assert "clip" in unsupported_reason(_recipe(reg, tmp_path, loss="siglip"))
    assert "adamw" in unsupported_reason(_recipe(reg, tmp_path, **{"train.optimizer": "sgd"}))
    assert "feature_cache" in unsupported_reason(_recipe(reg, tmp_path, **{"train.feature_cache": False}))
    # optimizer and temperature numbers share a batched model; architecture, dropout, seed and data do not
    assert batch_key(base) == batch_key(_recipe(reg, tmp_path, **{"train.lr": 5e-3, "train.weight_decay": 0.0}))
    for change in (
        {"eeg.head": {"name": "linear", "dropout": 0.1}},
        {"seed": 1},
        {"train.batch_size": 16},
        {"video.head": "mlp"},
    ):
        assert batch_key(base) != batch_key(_recipe(reg, tmp_path, **change)), change


def test_a_mixed_group_is_refused_before_anything_is_made(reg, tmp_path):
    mixed = [_recipe(reg, tmp_path), _recipe(reg, tmp_path, seed=3)]
    with pytest.raises(RecipeError, match="differ in more than"):
        train_batched(mixed, [tmp_path / "a", tmp_path / "b"], reg)
    with pytest.raises(RecipeError, match="cannot train batched: eeg.strategy"):
        train_batched([_recipe(reg, tmp_path, **{"eeg.strategy": "full"})], [tmp_path / "c"], reg)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_sweep_trains_eligible_trials_batched(tmp_path):
    import yaml

    from tests.conftest import run_python

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(**{"train.epochs": 2})))
    result = run_python(
        "-m",
        "recipes.sweep",
        str(recipe),
        "train.lr=[1e-3,3e-3]",
        "train.weight_decay=[0.0,0.1]",
        "--output-dir",
        str(tmp_path / "sweeps"),
    )
    assert result.returncode == 0, result.stderr
    assert "training 4 trials as one batched model" in result.stderr
    directory = tmp_path / "sweeps" / result.stdout.strip().splitlines()[-1].split("sweep: ", 1)[1].split("/")[-1]
    record = json.loads((directory / "sweep.json").read_text())
    assert [t["status"] for t in record["trials"]] == ["completed"] * 4
    lrs = set()
    for trial in record["trials"]:
        run_dir = Path(trial["run"])
        assert {p.name for p in run_dir.iterdir()} >= RUN_FILES and trial["final_metrics"]["val/n"] > 0
        assert json.loads((run_dir / "run.json").read_text())["batched_heads"] == {"trials": 4}
        lrs.add(yaml.safe_load((run_dir / "recipe.yaml").read_text())["train"]["lr"])
    assert lrs == {1e-3, 3e-3}


def test_an_interrupted_batched_group_resumes_from_its_checkpoint(tmp_path):
    """SIGTERM to a sweep training a batched group (sent while it is inside a training step:
    tests/batched_stop_worker.py) stops it after that step with one group checkpoint;
    the same command resumes the group from there (not from epoch 0) and every trial ends as the
    uninterrupted group ends: the same metrics and weights (dropout included: the random state is
    in the checkpoint)."""
    import os
    import signal
    import subprocess
    import sys

    import yaml

    import registry
    from tests.conftest import ROOT
    from tests.waiting import GENEROUS, wait_until

    epochs = 6
    head = {"name": "mlp", "hidden": [16], "dropout": 0.1}
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        yaml.safe_dump(
            tiny_recipe(
                **{"data.n": 64, "train.epochs": epochs, "train.batch_size": 8, "eeg.head": head, "video.head": head}
            )
        )
    )
    space = [str(recipe), "train.lr=[1e-3,3e-3]", "train.weight_decay=[0.0,0.1]"]

    arguments = [*space, "--output-dir", str(tmp_path / "stopped")]
    command = [sys.executable, "-m", "recipes.sweep", *arguments]
    ready = tmp_path / "in-step"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    # the group is held inside the first step of epoch 2 (after its first evaluation) until the signal comes
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.batched_stop_worker", *arguments],
        cwd=ROOT,
        env={**env, "PEFTZOO_TEST_READY": str(ready)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(ready.exists, "the batched group's first training step of epoch 2", proc=proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=GENEROUS)
    assert proc.returncode == 130, err
    sweep = Path(out.strip().splitlines()[-1].removeprefix("sweep: "))
    trials = json.loads((sweep / "sweep.json").read_text())["trials"]
    assert [t["status"] for t in trials] == ["interrupted"] * 4, err
    checkpoints = list((sweep / ".batched").glob("group-*.pt"))
    assert len(checkpoints) == 1  # one checkpoint for the whole group
    stopped_at = torch.load(checkpoints[0], weights_only=True)["position"]["step"]
    assert stopped_at == 7  # the first step of epoch 2 (6 steps an epoch), where the worker held it
    runs = [Path(t["run"]) for t in trials]

    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=GENEROUS)
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr and "training 4 trials" not in done.stderr
    resumed = json.loads((sweep / "sweep.json").read_text())["trials"]
    assert [t["status"] for t in resumed] == ["completed"] * 4 and [Path(t["run"]) for t in resumed] == runs
    assert not (sweep / ".batched").exists()  # removed once every trial finished

    # the same trials (their recipe.yaml, the sweep's feature cache) trained without interruption
    reg = registry.default()
    trial_recipes = [schema.validate(schema.read_yaml(run / "recipe.yaml"), reg) for run in runs]
    whole = train_batched(trial_recipes, [tmp_path / "whole" / f"trial-{i}" for i in range(len(runs))], reg)
    for reference, run in zip(whole, runs):
        info, want = json.loads((run / "run.json").read_text()), json.loads((reference / "run.json").read_text())
        assert info["resumed"][0]["from_step"] == stopped_at and info["steps"] == want["steps"] == epochs * 6
        for key, value in want["final_metrics"].items():
            assert info["final_metrics"][key] == pytest.approx(value, abs=1e-6), key
        got, expected = _lines(run, "eval"), _lines(reference, "eval")
        assert [line["epoch"] for line in got] == list(range(1, epochs + 1))
        assert [line["val/loss"] for line in got] == pytest.approx([line["val/loss"] for line in expected], abs=1e-6)
        got_w, want_w = read_state(run / "trainable.safetensors"), read_state(reference / "trainable.safetensors")
        assert sorted(got_w) == sorted(want_w)
        for name in want_w:
            torch.testing.assert_close(got_w[name], want_w[name], atol=1e-6, rtol=1e-6)


def test_a_rerun_plans_an_interrupted_group_as_one_resume(tmp_path, reg):
    """plan_job finds the group checkpoint an interrupted batched run names in its run.json, and
    split_jobs makes its trials one resumed group, also where fresh trials are not batched (--batched-heads
    off); without the checkpoint file the attempt is set aside and the trial starts again."""
    from peftzoo_tools.sweep import trials as trial_runs
    from peftzoo_tools.sweep.batched.sweep_groups import split_jobs
    from peftzoo_tools.sweep.record import SweepRecord

    record = SweepRecord.load_or_create(
        tmp_path, {"name": "s"}, [("trial-000", {}), ("trial-001", {}), ("trial-002", {})]
    )
    checkpoint = tmp_path / ".batched" / "group-abc.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"x")
    for trial_id in ("trial-000", "trial-001"):
        run = tmp_path / trial_id / "tiny-run"
        run.mkdir(parents=True)
        (run / "run.json").write_text(
            json.dumps(
                {"status": "interrupted", "batched_heads": {"trials": 2, "checkpoint": "../../.batched/group-abc.pt"}}
            )
        )
    jobs = [trial_runs.plan_job(record, t, tmp_path / "base.yaml", [], []) for t in record.data["trials"]]
    assert [j.batched_checkpoint for j in jobs] == [checkpoint.resolve(), checkpoint.resolve(), None]
    assert all(j.resume and not j.command for j in jobs[:2]) and jobs[2].command
    recipes_by_id = {t: _recipe(reg, tmp_path) for t in ("trial-000", "trial-001", "trial-002")}
    groups, ordinary = split_jobs(jobs, recipes_by_id, fresh=False)
    assert [(g.checkpoint, [j.trial_id for j in g.jobs]) for g in groups] == [
        (checkpoint.resolve(), ["trial-000", "trial-001"])
    ]
    assert [j.trial_id for j in ordinary] == ["trial-002"]

    checkpoint.unlink()  # stopped before its first checkpoint: nothing to resume
    job = trial_runs.plan_job(record, record.data["trials"][0], tmp_path / "base.yaml", [], [])
    assert job.batched_checkpoint is None and job.command and (tmp_path / "trial-000" / ".failed" / "tiny-run").is_dir()


@pytest.mark.parametrize("smoothing, mask", [(0.0, True), (0.0, False), (0.1, True), (0.2, False)])
def test_the_stacked_clip_loss_is_each_trials_clip_loss(smoothing, mask):
    """stacked_clip_loss for T trials equals peftzoo_model.losses.clip.ClipLoss on each trial, with and
    without label smoothing and same-group masking, and so do its gradients."""
    import torch.nn.functional as F

    from peftzoo_model.losses.clip import ClipLoss, ClipLossConfig
    from peftzoo_tools.sweep.batched.stacked import stacked_clip_loss

    torch.manual_seed(0)
    trials, n, dim = 3, 12, 8
    eeg = F.normalize(torch.randn(trials, n, dim), dim=-1).requires_grad_()
    video = F.normalize(torch.randn(trials, n, dim), dim=-1).requires_grad_()
    groups = torch.arange(n) // 3
    config = ClipLossConfig(label_smoothing=smoothing, mask_same_group=mask)
    scales = torch.tensor([5.0, 10.0, 20.0])
    stacked = stacked_clip_loss(scales, eeg, video, groups, config)
    stacked.sum().backward()
    for t in range(trials):
        loss = ClipLoss(config)
        with torch.no_grad():
            loss.logit_scale.fill_(float(scales[t].log()))
        e, v = eeg.detach()[t].clone().requires_grad_(), video.detach()[t].clone().requires_grad_()
        expected = loss(e, v, groups)
        expected.backward()
        torch.testing.assert_close(stacked[t], expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(eeg.grad[t], e.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(video.grad[t], v.grad, rtol=1e-4, atol=1e-6)
