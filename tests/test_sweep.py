"""`python -m recipes.sweep`: trials as run directories, sweep.json, validation, shared features, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from peftzoo_tools.sweep import plan as plans
from peftzoo_tools.sweep import space as spaces
from peftzoo_tools.sweep import summary
from peftzoo_tools.sweep.cli import main
from recipes.errors import RecipeError
from tests.conftest import ROOT, tiny_recipe
from tests.waiting import GENEROUS, wait_until


def small_recipe(tmp_path: Path, **changes) -> Path:
    recipe = tiny_recipe(**{"data.n": 64, "train.epochs": 1, **changes})
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


# -- the space and the plan (no training) ----------------------------------------------------------
def test_grid_fixed_values_and_lists_as_values():
    space = spaces.from_arguments(
        ["train.lr=[1e-3,3e-4]", "seed=[0,1,2]", "train.epochs=3", "eeg.head.hidden=[[64,64]]"]
    )
    assert space.axes == {"train.lr": [1e-3, 3e-4], "seed": [0, 1, 2], "eeg.head.hidden": [[64, 64]]}
    assert space.fixed == {"train.epochs": 3}
    grid = spaces.trials(space, None, 0)
    assert len(grid) == 6 and grid[0] == {"train.lr": 1e-3, "seed": 0, "eeg.head.hidden": [64, 64]}
    # the override strings round-trip through recipes.overrides exactly
    from recipes import overrides

    assert overrides.apply({}, spaces.as_override_args(grid[5])) == {
        "train": {"lr": 3e-4},
        "seed": 2,
        "eeg": {"head": {"hidden": [64, 64]}},
    }


def test_random_draws_are_seeded_and_without_replacement():
    space = spaces.from_arguments(["train.lr=[1,2,3,4,5]", "seed=[0,1,2,3]"])
    a, b = spaces.trials(space, 7, seed=3), spaces.trials(space, 7, seed=3)
    assert a == b and len(a) == 7 and len({json.dumps(t, sort_keys=True) for t in a}) == 7
    assert spaces.trials(space, 7, seed=4) != a
    assert len(spaces.trials(space, 100, seed=0)) == 20  # never more than the grid holds
    dist = spaces.from_mapping(
        {"train.lr": {"loguniform": [1e-5, 1e-2]}, "train.batch_size": {"randint": [8, 16]}}, None, "f"
    )
    drawn = spaces.trials(dist, 50, seed=0)
    assert all(1e-5 <= t["train.lr"] <= 1e-2 and 8 <= t["train.batch_size"] <= 16 for t in drawn)
    with pytest.raises(RecipeError, match="add --random N"):
        spaces.trials(dist, None, 0)
    with pytest.raises(RecipeError, match=r"space.train.lr: loguniform needs a positive low bound"):
        spaces.from_mapping({"train.lr": {"loguniform": [0, 1]}}, None, "f")


def test_sweep_file_names_the_base_recipe_and_its_space(tmp_path, reg):
    base = small_recipe(tmp_path)
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {
                "recipe": "recipe.yaml",
                "overrides": {"train.epochs": 2},
                "space": {"train.lr": [1e-3, 2e-3], "loss.temperature": [0.07]},
                "select": {"metric": "val/loss", "mode": "min"},
            }
        )
    )
    plan = plans.from_command(str(sweep_file), ["seed=[0,1]"], None, None, None)
    assert plan.base["train"]["epochs"] == 2 and plan.name == "tiny_test"
    assert len(plan.trials) == 4 and plan.select == {"metric": "val/loss", "mode": "min"}
    plans.validate(plan, reg, [])
    assert all(t.recipe.train.epochs == 2 for t in plan.trials)
    # same definition, same directory (so a rerun continues it); another space, another directory
    again = plans.from_command(str(sweep_file), ["seed=[0,1]"], None, None, None)
    other = plans.from_command(str(sweep_file), ["seed=[0,2]"], None, None, None)
    assert again.directory(tmp_path) == plan.directory(tmp_path) != other.directory(tmp_path)
    del base


@pytest.mark.parametrize(
    "argument, message",
    [
        ("train.lrr=[1e-3,1e-4]", "train.lrr: unknown key; did you mean 'lr'?"),
        ("train.lr=[1e-3,-1]", "train.lr: Input should be greater than or equal to 0 (got -1)  [trial train.lr=-1]"),
        ("eeg.strategy.name=[head_only,lora_q]", "eeg.strategy.name: 'lora_q' is not a strategy; did you mean 'lora'?"),
        ("train.lr=[]", "the list of values is empty"),
    ],
)
def test_a_bad_key_or_value_is_refused_before_anything_runs(tmp_path, capsys, argument, message):
    recipe = small_recipe(tmp_path)
    code = main([str(recipe), argument, "--output-dir", str(tmp_path / "sweeps"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "sweeps").exists()  # nothing was created


def test_summary_aggregates_seeds_and_sorts_by_the_selection_metric():
    def trial(i, lr, seed, r1):
        return {
            "id": f"trial-{i}",
            "overrides": {"train.lr": lr, "seed": seed},
            "status": "completed",
            "final_metrics": {"val/eeg_to_video/R@1": r1 - 0.01},
            "best_metrics": {"val/eeg_to_video/R@1": r1},
        }

    data = {
        "select": {"metric": "val/eeg_to_video/R@1", "mode": "max"},
        "trials": [
            trial(0, 0.1, 0, 0.2),
            trial(1, 0.1, 1, 0.4),
            trial(2, 0.2, 0, 0.5),
            trial(3, 0.2, 1, 0.7),
            {"id": "trial-4", "overrides": {"train.lr": 0.3, "seed": 0}, "status": "failed"},
        ],
    }
    rows = summary.configurations(data)
    assert [r["config"] for r in rows] == [{"train.lr": 0.2}, {"train.lr": 0.1}, {"train.lr": 0.3}]
    assert rows[0]["best_mean"] == pytest.approx(0.6) and rows[0]["best_std"] == pytest.approx(0.1414, abs=1e-4)
    assert rows[0]["seeds"] == [0, 1] and rows[2]["best_mean"] is None
    text = summary.table(data)
    assert "0.6000 ± 0.1414" in text and "mean ± std over seeds" in text and "failed" in text
    data["select"]["mode"] = "min"
    assert [r["config"] for r in summary.configurations(data)][0] == {"train.lr": 0.1}


# -- end to end ------------------------------------------------------------------------------------
def test_sweep_runs_trials_shares_features_and_a_rerun_skips_finished_ones(tmp_path, capsys):
    recipe = small_recipe(tmp_path)
    args = [str(recipe), "train.lr=[1e-3,3e-3]", "--workers", "2", "--output-dir", str(tmp_path / "sweeps"), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("sweep: ")
    sweep = Path(out[-1].removeprefix("sweep: "))
    data = json.loads((sweep / "sweep.json").read_text())
    assert [t["overrides"] for t in data["trials"]] == [{"train.lr": 1e-3}, {"train.lr": 3e-3}]
    starts = []
    for trial in data["trials"]:
        run = Path(trial["run"])
        assert trial["status"] == "completed" and run.parent == sweep / trial["id"]
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "completed" and (run / "trainable.safetensors").is_file()
        resolved = yaml.safe_load((run / "recipe.yaml").read_text())
        assert resolved["train"]["lr"] == trial["overrides"]["train.lr"]
        assert trial["final_metrics"] == info["final_metrics"]
        assert trial["best_metrics"]["val/eeg_to_video/R@1"] >= 0 and trial["best_metrics"]["epoch"] == 1
        starts.append(info["start_time"])
    # the features of both frozen encoders were computed once, by the pre-pass, before any trial
    cached = sorted((sweep / ".cache" / "features").glob("*.safetensors"))
    assert [p.name.split("-")[0] for p in cached] == ["eeg", "video"]
    first_start = min(time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone for s in starts)
    assert all(p.stat().st_mtime <= first_start + 1 for p in cached)
    table = "\n".join(out)
    assert "train.lr" in table and "best val/eeg_to_video/R@1" in table

    # a rerun of the same command runs nothing and prints the same directory
    stamp = (sweep / "trial-000").stat().st_mtime
    assert main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"sweep: {sweep}"
    assert len(list((sweep / "trial-000").iterdir())) == 2 and (sweep / "trial-000").stat().st_mtime == stamp


def test_an_interrupted_sweep_resumes_its_trials_from_their_checkpoints(tmp_path):
    """SIGTERM to the sweep stops its running trial at a checkpoint; the same command resumes it."""
    # Enough epochs that the trial is still training when the signal arrives, on an idle machine too.
    epochs = 60
    recipe = small_recipe(tmp_path, **{"train.epochs": epochs, "train.batch_size": 8})
    command = [
        sys.executable,
        "-m",
        "recipes.sweep",
        str(recipe),
        "seed=[0]",
        "--output-dir",
        str(tmp_path / "sweeps"),
        "--quiet",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sweep_proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found = wait_until(
        lambda: list((tmp_path / "sweeps").glob("*/trial-000/*/checkpoints/last.pt")),
        "the trial's first checkpoint",
        proc=sweep_proc,
        interval=0.2,
    )
    metrics = found[0].parent.parent / "metrics.jsonl"
    sweep_proc.send_signal(signal.SIGTERM)
    out, err = sweep_proc.communicate(timeout=GENEROUS)
    assert sweep_proc.returncode == 130, err
    sweep = Path(out.strip().splitlines()[-1].removeprefix("sweep: "))
    trial = json.loads((sweep / "sweep.json").read_text())["trials"][0]
    assert trial["status"] == "interrupted" and "rerun the same command" in err
    run = Path(trial["run"])
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"

    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    trial = json.loads((sweep / "sweep.json").read_text())["trials"][0]
    info = json.loads((run / "run.json").read_text())
    assert trial["status"] == "completed" and trial["run"] == str(run)  # the same run, continued
    assert info["status"] == "completed" and info["resumed"] and info["steps"] == epochs * 6
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines() if '"eval"' in line] == list(
        range(1, epochs + 1)
    )


def test_parallel_workers_split_the_cores_between_their_trials():
    """--workers K gives each trial process cores // K torch threads (OMP_NUM_THREADS, read by torch at start-up)."""
    from peftzoo_tools.sweep.local import LocalBackend
    from peftzoo_tools.sweep.trials import child_environment

    backend = LocalBackend(workers=2)
    assert backend.threads == max(1, len(os.sched_getaffinity(0)) // 2)
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        env=child_environment(1),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.stdout.strip() == "1", probe.stderr


def test_a_failing_trial_fails_alone_and_a_rerun_retries_it(tmp_path, capsys):
    """A trial that passes the schema but fails at run time (too few training pairs) is recorded as failed
    with its message; the other trial completes; the sweep exits 1; a rerun retries only the failed one."""
    recipe = small_recipe(tmp_path)
    args = [str(recipe), "data.val_fraction=[0.25,0.99]", "--output-dir", str(tmp_path / "sweeps"), "--quiet"]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "1 trial(s) failed (trial-001)" in captured.err
    sweep = Path(captured.out.strip().splitlines()[-1].removeprefix("sweep: "))
    ok, bad = json.loads((sweep / "sweep.json").read_text())["trials"]
    assert ok["status"] == "completed"
    assert bad["status"] == "failed" and bad["exit_code"] == 2 and "train split" in bad["error"]
    assert main(args) == 1
    ok_again, bad_again = json.loads((sweep / "sweep.json").read_text())["trials"]
    assert ok_again["run"] == ok["run"] and bad_again["status"] == "failed"
    # The run command refuses too few training pairs before it makes a run directory, so the failed
    # trial left none to set aside; the rerun ran it again (its log holds both refusals).
    assert bad_again["run"] is None and bad_again["attempts"] == []
    log = (sweep / "trial-001" / "trial.log").read_text()
    assert log.count("error:") == 2 and "train split" in log


def test_the_prepass_shares_the_first_stage_features_of_staged_recipes(tmp_path, reg):
    """A staged recipe whose first stage freezes both encoders: the pre-pass caches both sides as the
    trial's first stage will key them, and the trial then computes none itself; its second stage
    (LoRA on the EEG side) leaves the video side unchanged and frozen, so it reads the same entry."""
    from peftzoo_tools.run import main as run_main
    from peftzoo_tools.sweep import prepass
    from recipes import schema

    raw = tiny_recipe(**{"data.n": 64, "train.cache_dir": str(tmp_path / "cache")})
    del raw["train"]["epochs"]
    raw["train"]["stages"] = [
        {"epochs": 1},
        {"epochs": 1, "eeg": {"strategy": {"name": "lora", "targets": ["q", "v"], "r": 2}}},
    ]
    recipe = schema.validate(raw, reg)
    assert prepass.signature(recipe) is not None
    assert prepass.fill([recipe, recipe], tmp_path / "cache", reg) == {"groups": 1, "sides": 2}
    entries = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*.safetensors")}
    assert sorted(p.name.split("-")[0] for p in entries) == ["eeg", "video"]

    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert run_main([str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*.safetensors")}
    assert after == entries  # nothing recomputed, nothing added: the trial read the pre-pass's features
    run = next(p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))
    stages = json.loads((run / "run.json").read_text())["stages"]
    assert [s["cached_features"] for s in stages] == [["eeg", "video"], ["video"]]

    # a first stage that trains the EEG encoder leaves only the video side to share
    raw["train"]["stages"] = [{"epochs": 1, "eeg": {"strategy": "full"}}, {"epochs": 1}]
    assert prepass.fill([schema.validate(raw, reg)], tmp_path / "other", reg) == {"groups": 1, "sides": 1}
    assert [p.name.split("-")[0] for p in (tmp_path / "other").glob("*.safetensors")] == ["video"]
