"""Hostile command lines for `python -m recipes.run`: one message, exit 2, and nothing left behind.

Covers --resume with extra arguments, run directories without (or with a damaged) run.json, output
and cache paths that are files or unwritable, and data that cannot train, found before any run
directory is made.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.arrays_factory import write_arrays
from tests.conftest import run_python, tiny_recipe


def fake_run_dir(root, run_json: str | None):
    """A directory shaped like an interrupted run (checkpoint, recipe) with the given run.json text."""
    run = root / "tiny_test-20260101-000000-abcdef"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"not read before run.json is checked")
    (run / "recipe.yaml").write_text(yaml.safe_dump(tiny_recipe()))
    if run_json is not None:
        (run / "run.json").write_text(run_json)
    return run


def run_cli(tmp_path, capsys, argv):
    from peftzoo_tools.run import main

    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = main([*argv, "--quiet"])
    out = capsys.readouterr()
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    return code, out, set(after) - set(before)


def check_refused(code, out, created, fragments):
    assert code == 2, out.out + out.err
    assert "Traceback" not in out.err, out.err
    assert out.err.startswith("error: ") and out.err.count("error: ") == 1, out.err
    for fragment in fragments:
        assert fragment in out.err, f"{fragment!r} not in:\n{out.err}"
    assert not created, f"a refused run left {sorted(map(str, created))}"


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe()))
    return path


RESUME_ARGUMENTS = [
    ("run_and_override", lambda r, run: ["--resume", str(run), "train.lr=1"], ["takes no overrides (train.lr=1)"]),
    (
        "override_before_resume",
        lambda r, run: ["train.lr=1", "--resume", str(run)],
        ["takes no overrides (train.lr=1)"],
    ),
    ("other_recipe", lambda r, run: [str(r), "--resume", str(run)], ["takes no RECIPE or overrides", "recipe.yaml"]),
    (
        "other_recipe_and_override",
        lambda r, run: [str(r), "--resume", str(run), "seed=3"],
        ["takes no RECIPE or overrides", "seed=3"],
    ),
    (
        "latest_with_override",
        lambda r, run: [str(r), "--resume", "latest", "train.lr=1"],
        ["takes no overrides (train.lr=1)"],
    ),
]


@pytest.mark.parametrize("case_id, argv, fragments", RESUME_ARGUMENTS, ids=[c[0] for c in RESUME_ARGUMENTS])
def test_resume_refuses_recipe_and_overrides(tmp_path, capsys, recipe_file, case_id, argv, fragments):
    run = fake_run_dir(tmp_path / "runs", json.dumps({"status": "interrupted"}))
    code, out, created = run_cli(tmp_path, capsys, [*argv(recipe_file, run), "--output-dir", str(tmp_path / "runs")])
    check_refused(code, out, created, [*fragments, "start a new run (without --resume)"])


RUN_JSON = [
    ("missing", None, ["has no run.json", "give the directory that `run:` printed"]),
    (
        "corrupt",
        '{"status": "interr',
        ["run.json, line 1: not valid JSON", "the file is damaged", "train the run again"],
    ),
    ("not_an_object", "[1, 2]", ["run.json, line 1: a JSON list, not an object", "train the run again"]),
    ("empty", "", ["run.json, line 1: not valid JSON", "the file is damaged"]),
]


@pytest.mark.parametrize("case_id, text, fragments", RUN_JSON, ids=[c[0] for c in RUN_JSON])
def test_resume_of_a_run_directory_without_a_readable_run_json(tmp_path, capsys, case_id, text, fragments):
    run = fake_run_dir(tmp_path / "runs", text)
    code, out, created = run_cli(tmp_path, capsys, ["--resume", str(run)])
    check_refused(code, out, created, fragments)


def test_resume_latest_skips_a_damaged_run_json(tmp_path, capsys, recipe_file):
    fake_run_dir(tmp_path / "runs", "{broken")
    code, out, created = run_cli(
        tmp_path, capsys, [str(recipe_file), "--resume", "latest", "--output-dir", str(tmp_path / "runs")]
    )
    check_refused(code, out, created, ["no unfinished run of 'tiny_test' with a checkpoint"])


def test_resume_of_a_path_that_does_not_exist(tmp_path, capsys):
    code, out, created = run_cli(tmp_path, capsys, ["--resume", str(tmp_path / "nowhere")])
    check_refused(code, out, created, ["does not exist; give the run directory"])


def _a_file(tmp_path):
    (tmp_path / "taken").write_text("a file")
    return tmp_path / "taken"


OUTPUT_PATHS = [
    (
        "output_dir_is_a_file",
        lambda t: ["--output-dir", str(_a_file(t))],
        ["--output-dir", "it is a file, not a directory"],
    ),
    (
        "output_dir_below_a_file",
        lambda t: ["--output-dir", str(_a_file(t) / "runs")],
        ["--output-dir", "on its way is a file"],
    ),
    (
        "output_dir_unwritable",
        lambda t: ["--output-dir", "/proc/peftzoo-runs"],
        ["--output-dir '/proc/peftzoo-runs' is not writable"],
    ),
    (
        "cache_dir_is_a_file",
        lambda t: [f"train.cache_dir={_a_file(t)}", "--output-dir", str(t / "runs")],
        ["train.cache_dir", "it is a file, not a directory"],
    ),
    (
        "cache_dir_unwritable",
        lambda t: ["train.cache_dir=/proc/peftzoo-cache", "--output-dir", str(t / "runs")],
        ["train.cache_dir '/proc/peftzoo-cache' is not writable"],
    ),
]


@pytest.mark.parametrize("case_id, args, fragments", OUTPUT_PATHS, ids=[c[0] for c in OUTPUT_PATHS])
def test_output_and_cache_paths_that_cannot_be_written(tmp_path, capsys, recipe_file, case_id, args, fragments):
    argv = args(tmp_path)
    code, out, created = run_cli(tmp_path, capsys, [str(recipe_file), *argv])
    check_refused(code, out, created, fragments)


def _arrays_recipe(tmp_path, **kwargs):
    data = write_arrays(tmp_path / "pairs", **kwargs)
    path = tmp_path / "arrays.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(data={"name": "arrays", "path": str(data)})))
    return path


UNTRAINABLE = [
    ("one_pair", dict(n=1), ["the train split has", "the data set holds 1 pair", "at least 2"]),
    (
        "all_val",
        dict(n=6, split=["val"] * 6),
        ["the train split has 0 pairs (splits: val 6)", "every pair is held out"],
    ),
    (
        "all_test",
        dict(n=6, split=["test"] * 6),
        ["the train split has 0 pairs (splits: test 6)", "label some pairs 'train'"],
    ),
    ("one_train_pair", dict(n=6, split=["train"] + ["val"] * 5), ["the train split has 1 pairs", "put more pairs"]),
    (
        "too_few_groups_for_a_batch",
        dict(n=12, groups=[0, 1, 2] * 4, split=["train"] * 12),
        [
            "no batch of 12 pairs of 12 different stimuli can be formed: the train split has 3 distinct stimulus ids",
            "at most 3",
        ],
    ),
]
OVERRIDES = {"too_few_groups_for_a_batch": ["train.sampler=group_disjoint"]}


@pytest.mark.parametrize("case_id, arrays, fragments", UNTRAINABLE, ids=[c[0] for c in UNTRAINABLE])
def test_data_that_cannot_train_leaves_no_run_directory(tmp_path, capsys, case_id, arrays, fragments):
    recipe = _arrays_recipe(tmp_path, **arrays)
    code, out, created = run_cli(
        tmp_path, capsys, [str(recipe), *OVERRIDES.get(case_id, []), "--output-dir", str(tmp_path / "runs")]
    )
    check_refused(code, out, created, fragments)


def test_a_fresh_process_refuses_resume_with_overrides(tmp_path):
    result = run_python("-m", "recipes.run", "--resume", str(tmp_path), "train.lr=1")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: --resume continues a run with its own recipe.yaml"), result.stderr
    assert "Traceback" not in result.stderr
