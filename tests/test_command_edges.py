"""Edges every command shares: a sweep too large to run is refused before it starts, and a reader that
stops early (`| head`) ends a command quietly."""

from __future__ import annotations

import importlib
import io
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT, tiny_recipe

HUGE = [
    f"{key}=[{','.join(str(v) for v in values)}]"
    for key, values in {
        "train.lr": [1e-3 * (i + 1) for i in range(10)],
        "train.weight_decay": [0.01 * i for i in range(10)],
        "train.batch_size": [8 * (i + 1) for i in range(10)],
        "train.epochs": list(range(1, 11)),
        "seed": list(range(10)),
        "embed_dim": [16 * (i + 1) for i in range(10)],
        "train.warmup_fraction": [0.01 * i for i in range(10)],
        "train.grad_clip": [0.5 * (i + 1) for i in range(10)],
        "eeg.head.name": ["linear", "mlp", "a", "b", "c", "d", "e", "f", "g", "h"],
        "video.head.name": ["linear", "mlp", "a", "b", "c", "d", "e", "f", "g", "h"],
    }.items()
]


def test_a_1e10_point_grid_is_refused_at_once_with_its_size_and_the_fix(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe()))
    # A deadline on the child: listing 1e10 trials would run until killed, and the test fails clearly.
    proc = subprocess.run(
        [sys.executable, "-m", "recipes.sweep", str(recipe), *HUGE, "--output-dir", str(tmp_path / "s")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "the grid has 10,000,000,000 trials" in err[0] and "--random N" in err[0] and "--max-trials" in err[0], err
    assert not (tmp_path / "s").exists()


def test_max_trials_sets_the_limit_and_random_draws_count_against_it(tmp_path):
    from peftzoo_tools.sweep import plan as plans
    from recipes.errors import RecipeError

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe()))
    grid = ["train.lr=[1e-3,2e-3,3e-3]", "seed=[0,1]"]
    assert len(plans.from_command(str(recipe), grid, None, None, None, max_trials=6).trials) == 6
    with pytest.raises(
        RecipeError, match=r"the grid has 6 trials \(3 \(train.lr\) x 2 \(seed\)\), more than the limit of 5"
    ):
        plans.from_command(str(recipe), grid, None, None, None, max_trials=5)
    with pytest.raises(RecipeError, match="--random 50 trials is more than the limit of 20"):
        plans.from_command(str(recipe), HUGE, 50, 0, None, max_trials=20)
    assert (
        len(plans.from_command(str(recipe), HUGE, 20, 0, None, max_trials=20).trials) == 20
    )  # a sample of the huge grid


# -- a reader that stops early -------------------------------------------------------------------------
COMMANDS = [
    "peftzoo_tools.run",
    "peftzoo_tools.evaluate",
    "peftzoo_tools.embed",
    "peftzoo_tools.retrieve",
    "peftzoo_tools.sweep.cli",
    "peftzoo_tools.compare.cli",
    "peftzoo_tools.doctor.cli",
    "peftzoo_trained.export",
    "peftzoo_data.ingest.cli",
    "peftzoo_engine.cache.cli",
    "registry.cli",
    "recipes.schema",
    "peftzoo_tools.cli",
    "peftzoo_conformance.__main__",
]


class ClosedPipe(io.TextIOBase):
    """stdout whose reader has gone: every write raises, as a pipe to `head` does after it exits."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise io.UnsupportedOperation("no file descriptor")


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_wears_the_broken_pipe_guard(module):
    main = importlib.import_module(module).main
    assert getattr(main, "quiet_on_broken_pipe", False), (
        f"{module}.main is not wrapped by registry.pipes.quiet_on_broken_pipe"
    )


def test_the_guard_ends_a_command_quietly_when_its_reader_stops(monkeypatch):
    from registry.pipes import quiet_on_broken_pipe

    done = []

    @quiet_on_broken_pipe
    def main(argv):
        print("row 1")  # buffered or not, the closed pipe breaks on this write or on the guard's flush
        done.append(argv)
        return 3

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["x"]) == 0  # quietly: no exception, the reader having gone is not the command's error
    assert done == []


def test_list_registry_piped_into_head_prints_no_traceback():
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # the reader is gone before the command writes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=180) == 0 and "Traceback" not in err and "BrokenPipeError" not in err, err
