"""Sweep inputs nobody had tried: repeated values, a mistyped selection metric, a shell-split list,
--random beyond the grid, and a rerun that ranks by another metric (issue #13 probes)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from peftzoo_tools.sweep import plan as plans
from peftzoo_tools.sweep import space as spaces
from peftzoo_tools.sweep.cli import main
from peftzoo_tools.sweep.record import SweepRecord
from recipes.errors import RecipeError
from tests.conftest import tiny_recipe


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(**{"data.n": 64, "train.epochs": 1})))
    return path


@pytest.mark.parametrize(
    "argument", ["train.lr=[1e-3,1e-3]", "train.lr=[1e-3,0.001]", "eeg.head=[linear,{name: mlp},linear]"]
)
def test_a_value_listed_twice_is_refused_and_nothing_is_made(recipe, tmp_path, capsys, argument):
    # Two trials of one configuration would be summarized as two "seeds" of it.
    assert main([str(recipe), argument, "--output-dir", str(tmp_path / "sweeps")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "is listed twice" in err and "seed=[0,1" in err
    assert not (tmp_path / "sweeps").exists()


def test_distinct_values_that_look_alike_are_kept():
    space = spaces.from_arguments(["train.lr=[1,2]", "train.amp=[true,false]", "eeg.head.hidden=[[32],[32,32]]"])
    assert space.axes == {"train.lr": [1, 2], "train.amp": [True, False], "eeg.head.hidden": [[32], [32, 32]]}
    assert spaces.from_arguments(["x=[1,true]"]).axes == {"x": [1, True]}  # equal in Python, not in a recipe


def test_a_sweep_file_repeating_a_value_or_a_choice_is_refused(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        yaml.safe_dump({"recipe": tiny_recipe(), "space": {"train.lr": {"choice": [1e-3, 2e-3, 1e-3]}}, "random": 2})
    )
    with pytest.raises(RecipeError, match=r"space.train.lr: choice: the value 0.001 is listed twice"):
        plans.from_command(str(path), [], None, None, None)


def test_a_mistyped_selection_metric_is_refused_before_anything_runs(recipe, tmp_path, capsys):
    assert (
        main([str(recipe), "train.lr=[1e-3]", "--metric", "val/eeg_to_video/R@1x", "--output-dir", str(tmp_path / "s")])
        == 2
    )
    err = capsys.readouterr().err
    assert (
        "select metric 'val/eeg_to_video/R@1x' is not a metric the evaluation logs; did you mean 'val/eeg_to_video/R@1'"
        in err
    )
    assert not (tmp_path / "s").exists()


def test_a_list_split_by_the_shell_says_to_quote_it(recipe, tmp_path, capsys):
    # `train.lr=[1e-3, 3e-3]` unquoted reaches the sweep as two arguments
    assert main([str(recipe), "train.lr=[1e-3,", "3e-3]", "--output-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "quote it, e.g. 'train.lr=[1e-3, 3e-4]'" in err


def test_random_beyond_the_grid_runs_every_combination_once_and_says_so(caplog):
    space = spaces.from_arguments(["train.lr=[1e-3,2e-3]", "seed=[0,1]"])
    with caplog.at_level(logging.WARNING, logger="peftzoo_tools.sweep"):
        drawn = spaces.trials(space, random=10, seed=0)
    assert len(drawn) == 4 and len({json.dumps(t, sort_keys=True) for t in drawn}) == 4
    assert "--random 10 is more than the 4 combinations" in caplog.text


def _eval(epoch: int, r1: float, loss: float) -> str:
    return json.dumps({"type": "eval", "epoch": epoch, "step": epoch, "val/eeg_to_video/R@1": r1, "val/loss": loss})


def test_a_rerun_with_another_selection_metric_reranks_the_finished_trials(tmp_path):
    """best_metrics is the eval line where the selection metric was best: another --metric must not
    keep the line chosen by the first one."""
    run = tmp_path / "sweep" / "trial-000" / "run"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("\n".join([_eval(1, 0.5, 3.0), _eval(2, 0.2, 2.0), _eval(3, 0.1, 2.5)]) + "\n")
    header = {"name": "t", "select": {"metric": "val/eeg_to_video/R@1", "mode": "max"}}
    record = SweepRecord.load_or_create(tmp_path / "sweep", header, [("trial-000", {"train.lr": 1e-3})])
    from peftzoo_tools.sweep.record import best_line

    record.update(
        "trial-000", status="completed", run=str(run), best_metrics=best_line(run, "val/eeg_to_video/R@1", "max")
    )
    assert record.trial("trial-000")["best_metrics"]["epoch"] == 1
    again = SweepRecord.load_or_create(
        tmp_path / "sweep",
        {**header, "select": {"metric": "val/loss", "mode": "min"}},
        [("trial-000", {"train.lr": 1e-3})],
    )
    assert (
        again.trial("trial-000")["best_metrics"]["epoch"] == 2
        and again.trial("trial-000")["best_metrics"]["val/loss"] == 2.0
    )
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["select"]["metric"] == "val/loss" and saved["trials"][0]["best_metrics"]["epoch"] == 2


def test_a_moved_sweep_records_the_runs_at_their_new_place(tmp_path):
    old = tmp_path / "old" / "sweep"
    (old / "trial-000" / "run").mkdir(parents=True)
    header = {"name": "t", "select": {"metric": "val/eeg_to_video/R@1", "mode": "max"}}
    record = SweepRecord.load_or_create(old, header, [("trial-000", {"train.lr": 1e-3})])
    record.update("trial-000", status="completed", run=str(old / "trial-000" / "run"))
    new = tmp_path / "new" / "sweep"
    new.parent.mkdir()
    old.rename(new)
    moved = SweepRecord.load_or_create(new, header, [("trial-000", {"train.lr": 1e-3})])
    assert moved.trial("trial-000")["run"] == str(new / "trial-000" / "run")


def test_the_rerun_command_printed_after_an_interruption_pastes_back_into_a_shell():
    import shlex

    from peftzoo_tools.sweep.cli import rerun_command

    argv = ["my recipe.yaml", "eeg.head=[linear, {name: mlp, hidden: [32]}]", "train.lr=[1e-3,3e-3]", "--workers", "2"]
    command = rerun_command(argv)
    assert shlex.split(command) == ["python", "-m", "recipes.sweep", *argv]
    assert "'train.lr=[1e-3,3e-3]'" in command  # brackets quoted: no glob


def test_random_draws_from_a_huge_grid_without_listing_it_and_choices_do_not_repeat():
    import itertools
    import time

    small = spaces.from_arguments(["a=[1,2,3]", "b=[x,y]", "c=[[1],[2],[3],[4]]"])
    listed = [dict(zip("abc", combo)) for combo in itertools.product(*small.axes.values())]
    drawn = spaces.trials(small, 24, seed=0)
    assert drawn == listed  # every combination once, in grid order
    assert all(t in listed for t in spaces.trials(small, 5, seed=1))

    huge = spaces.from_arguments(
        [f"k{i}=[{','.join(str(v) for v in range(10))}]" for i in range(10)]
    )  # 1e10 combinations
    start = time.perf_counter()
    picks = spaces.trials(huge, 5, seed=0)
    assert time.perf_counter() - start < 5 and len({json.dumps(t, sort_keys=True) for t in picks}) == 5

    mixed = spaces.from_mapping({"eeg.head.dropout": [0.0, 0.1], "train.lr": {"choice": [1e-3, 3e-3]}}, None, "f")
    drawn = spaces.trials(mixed, 10, seed=0)  # four combinations: each once, never a repeat counted as a "seed"
    assert len(drawn) == 4 and len({json.dumps(t, sort_keys=True) for t in drawn}) == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"seed": "abc"}, "seed (of the --random draws) must be an integer, got 'abc'"),
        ({"seed": 1.5}, "seed (of the --random draws) must be an integer, got 1.5"),
        ({"name": "a/b"}, "name 'a/b' names the sweep directory"),
        ({"name": ""}, "name '' names the sweep directory"),
    ],
)
def test_a_sweep_file_seed_or_name_that_cannot_be_used_is_refused(tmp_path, capsys, extra, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"recipe": tiny_recipe(), "space": {"train.lr": [1e-3]}, **extra}))
    assert main([str(path), "--output-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_an_output_dir_below_a_file_is_refused_before_anything_runs(recipe, tmp_path, capsys):
    assert main([str(recipe), "train.lr=[1e-3]", "--output-dir", str(recipe / "sweeps")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--output-dir" in err and "is a file, not a directory" in err


def test_a_seed_without_random_draws_is_the_same_grid_sweep(recipe):
    plain = plans.from_command(str(recipe), ["train.lr=[1e-3,2e-3]"], None, None, None)
    seeded = plans.from_command(str(recipe), ["train.lr=[1e-3,2e-3]"], None, 7, None)
    assert plain.digest() == seeded.digest() and [t.values for t in plain.trials] == [t.values for t in seeded.trials]
    assert (
        plans.from_command(str(recipe), ["train.lr=[1e-3,2e-3]"], 1, 7, None).digest()
        != plans.from_command(str(recipe), ["train.lr=[1e-3,2e-3]"], 1, 8, None).digest()
    )
