"""Damaged run directories and sweep.json: one message naming the file, the line and the fix, whichever
command reads them (recipes.load, the doctor, compare, sweep ranking, --resume), never a traceback.

The files are written by hand here, as a user's editor, a crash or a copy cut short would leave them.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import tiny_recipe

EVAL = {"type": "eval", "epoch": 1, "step": 4, "val/eeg_to_video/R@1": 0.5, "val/loss": 1.0}
TRAIN = {"type": "train", "epoch": 1, "step": 2, "train/loss": 2.0}


def make_run(
    root, metrics: str | None = None, run_json: str | None = None, recipe: str | None = None, status: str = "completed"
):
    """A completed-looking run directory with the given file texts (good ones where None)."""
    run = root / "tiny_test-20260101-000000-abcdef"
    (run / "checkpoints").mkdir(parents=True)
    info = {"run_id": run.name, "status": status, "final_metrics": {k: v for k, v in EVAL.items() if "/" in k}}
    (run / "run.json").write_text(run_json if run_json is not None else json.dumps(info))
    (run / "recipe.yaml").write_text(recipe if recipe is not None else yaml.safe_dump(tiny_recipe()))
    good = json.dumps(TRAIN) + "\n" + json.dumps(EVAL) + "\n"
    (run / "metrics.jsonl").write_text(good if metrics is None else metrics)
    return run


GOOD = json.dumps(TRAIN) + "\n"
DAMAGED_METRICS = [
    ("number_line", GOOD + "42\n" + json.dumps(EVAL) + "\n", ["metrics.jsonl, line 2: a JSON number, not an object"]),
    ("list_line", GOOD + "[1, 2]\n", ["metrics.jsonl, line 2: a JSON list, not an object"]),
    ("invalid_line", GOOD + "{oops\n" + json.dumps(EVAL) + "\n", ["metrics.jsonl, line 2: not valid JSON"]),
    ("cut_last_line", GOOD + json.dumps(EVAL)[:20], ["metrics.jsonl, line 2: cut short", "delete line 2", "--resume"]),
]
DAMAGED_RUN_JSON = [
    ("list", "[1, 2]", ["run.json, line 1: a JSON list, not an object"]),
    ("number", "7", ["run.json, line 1: a JSON number, not an object"]),
    ("invalid", '{\n"status": "comp', ["run.json, line 2: not valid JSON"]),
]


def readers():
    """Every reader of a run directory, each as a function of the run's path."""
    from peftzoo_engine import rundir
    from peftzoo_tools.compare.runs import collect
    from peftzoo_tools.doctor.run_reader import read_run
    from peftzoo_tools.sweep.record import best_line

    return {
        "rundir": lambda run: (rundir.read_info(run), rundir.read_metrics(run)),
        "doctor": read_run,
        "compare": lambda run: collect([str(run)]),
        "sweep_ranking": lambda run: best_line(run, "val/eeg_to_video/R@1", "max"),
    }


def check_message(exc, fragments):
    message = str(exc)
    assert "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("reader", ["rundir", "doctor", "compare", "sweep_ranking"])
@pytest.mark.parametrize("case_id, text, fragments", DAMAGED_METRICS, ids=[c[0] for c in DAMAGED_METRICS])
def test_damaged_metrics_is_one_message_naming_the_line(tmp_path, reader, case_id, text, fragments):
    from registry.errors import UserError

    run = make_run(tmp_path, metrics=text)
    with pytest.raises(UserError) as caught:
        readers()[reader](run)
    check_message(caught.value, [str(run / "metrics.jsonl"), *fragments])


@pytest.mark.parametrize("reader", ["rundir", "doctor", "compare"])
@pytest.mark.parametrize("case_id, text, fragments", DAMAGED_RUN_JSON, ids=[c[0] for c in DAMAGED_RUN_JSON])
def test_damaged_run_json_is_one_message_naming_the_line(tmp_path, reader, case_id, text, fragments):
    from registry.errors import UserError

    run = make_run(tmp_path, run_json=text)
    with pytest.raises(UserError) as caught:
        readers()[reader](run)
    check_message(caught.value, [str(run / "run.json"), *fragments, "the file is damaged"])


def test_load_reads_run_json_and_recipe_through_the_one_reader(tmp_path):
    """recipes.load: a damaged run.json (asked when the weights are missing) and a recipe.yaml that is a list."""
    import recipes
    from registry.errors import UserError

    run = make_run(tmp_path / "a", run_json="[]")
    with pytest.raises(UserError) as caught:
        recipes.load(run)
    check_message(caught.value, ["run.json, line 1: a JSON list, not an object"])

    run = make_run(tmp_path / "b", recipe="- 1\n- 2\n")
    (run / "trainable.safetensors").write_bytes(b"")
    with pytest.raises(UserError) as caught:
        recipes.load(run)
    check_message(caught.value, ["recipe.yaml, line 1: a YAML list, not a mapping"])


def test_a_half_written_last_line_of_a_running_run_is_left_out(tmp_path):
    """The run writes whole lines; while it trains the last may be half written: readers skip it, not fail."""
    from peftzoo_tools.compare.runs import collect
    from peftzoo_tools.doctor.run_reader import read_run

    run = make_run(tmp_path, metrics=GOOD + json.dumps(EVAL)[:20], status="running")
    assert read_run(run).lines == [TRAIN]
    assert collect([str(run)])[0][0].lines == [TRAIN]


@pytest.mark.parametrize(
    "case_id, text", [("number", GOOD + "3\n"), ("cut", GOOD + '{"type": "ev')], ids=["number", "cut"]
)
def test_the_compare_command_prints_one_line(tmp_path, capsys, case_id, text):
    from peftzoo_tools.compare.cli import main

    run = make_run(tmp_path, metrics=text)
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "metrics.jsonl, line 2" in err, err


def test_the_doctor_command_prints_one_line(tmp_path, capsys):
    from peftzoo_tools.doctor.cli import main

    run = make_run(tmp_path, run_json="[]")
    assert main([str(run), "--no-model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "run.json, line 1: a JSON list" in err, err


# -- sweep.json ------------------------------------------------------------------------------------------
TRIAL = {"id": "trial-000", "overrides": {"train.lr": 0.001}, "status": "completed", "run": None}
DAMAGED_SWEEP = [
    ("list", json.dumps([TRIAL]), ["a JSON list, not the sweep's object"]),
    ("no_trials", json.dumps({"name": "x"}), ["has no trials"]),
    ("trials_not_a_list", json.dumps({"trials": {"a": 1}}), ["trials that are a dict, not a list"]),
    (
        "bad_status",
        json.dumps({"trials": [{**TRIAL, "status": "done"}]}),
        ["trials[0]: trial-000: status 'done' is not one of pending, running, completed"],
    ),
    ("trial_not_an_object", json.dumps({"trials": [3]}), ["trials[0]: a int, not a trial object"]),
    ("invalid", '{"trials": [', ["line 1: not valid JSON"]),
]


@pytest.mark.parametrize("case_id, text, fragments", DAMAGED_SWEEP, ids=[c[0] for c in DAMAGED_SWEEP])
def test_damaged_sweep_json_is_one_message(tmp_path, capsys, case_id, text, fragments):
    from peftzoo_tools.compare.cli import main
    from peftzoo_tools.sweep.record import DamagedSweepFile, SweepRecord, read

    sweep = tmp_path / "s-sweep-0123456789"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(text)
    for attempt in (
        lambda: read(sweep),
        lambda: SweepRecord.load_or_create(sweep, {}, [("trial-000", {"train.lr": 0.001})]),
    ):
        with pytest.raises(DamagedSweepFile) as caught:
            attempt()
        check_message(caught.value, [str(sweep / "sweep.json"), *fragments, "move it away"])
    assert main([str(sweep)]) == 2  # compare reads it through the same reader
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and fragments[0] in err, err
