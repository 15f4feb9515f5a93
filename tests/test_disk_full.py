"""A full disk (ENOSPC) while `run`, `embed` or `export` writes: one message naming the path, what was
finished is kept, and no partial file is left. The disk is "filled" by making the write of one file
raise OSError(ENOSPC), as the kernel does."""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest
import yaml

from tests.conftest import run_dir_in, tiny_recipe


@pytest.fixture
def disk_full_for(monkeypatch):
    """disk_full_for(NAME): every later write of a file named NAME through peftzoo_engine.rundir fails with ENOSPC."""
    from peftzoo_engine import rundir

    real_fdopen = rundir.os.fdopen

    class FullFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])  # part of it lands, as on a real disk filling up
            self.f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

    def arm(name: str):
        def fdopen(fd, *args, **kwargs):
            f = real_fdopen(fd, *args, **kwargs)
            target = os.readlink(f"/proc/self/fd/{fd}")
            return FullFile(f) if os.path.basename(target).startswith(f".{name}.") else f

        monkeypatch.setattr(rundir.os, "fdopen", fdopen)

    return arm


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and not any("Traceback" in line for line in err), err
    return errors[0]


def leftovers(root) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.tmp"))


def train(root, quiet=True):
    from peftzoo_tools.run import main

    (root / "recipe.yaml").write_text(yaml.safe_dump(tiny_recipe(**{"train.epochs": 1})))
    return main([str(root / "recipe.yaml"), "--output-dir", str(root / "runs"), *(["--quiet"] if quiet else [])])


def test_run_on_a_full_disk_keeps_its_checkpoint_and_says_how_to_resume(tmp_path, capsys, disk_full_for):
    disk_full_for("trainable.safetensors")
    assert train(tmp_path) == 2
    line = one_error_line(capsys)
    run = run_dir_in(tmp_path / "runs")
    assert f"no space left on the disk to write {run / 'trainable.safetensors'}" in line, line
    assert f"--resume {run}" in line, line
    assert not (run / "trainable.safetensors").exists() and leftovers(tmp_path) == []
    assert (run / "checkpoints" / "last.pt").is_file()  # what was finished: the epoch's checkpoint
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and "no space left" in info["error"]
    assert all(json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines())


def test_a_metrics_line_that_does_not_fit_leaves_no_cut_line(tmp_path, monkeypatch):
    from peftzoo_engine import rundir

    run = rundir.RunDir(tmp_path, "tiny")
    run.start("name: tiny\n", {})
    run.log({"type": "train", "step": 1, "train/loss": 1.0})
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(bytes(data[:7]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr("builtins.open", lambda *a, **k: Full(real_open(*a, **k)))
    with pytest.raises(rundir.DiskFull, match="metrics.jsonl"):
        run.log({"type": "train", "step": 2, "train/loss": 0.5})
    monkeypatch.undo()
    assert rundir.read_metrics(run.path) == [{"type": "train", "step": 1, "train/loss": 1.0}]
    run.finish("failed")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    assert train(root) == 0
    return run_dir_in(root / "runs")


def test_embed_on_a_full_disk_leaves_no_file(finished_run, tmp_path, capsys, disk_full_for):
    from peftzoo_tools.embed import main

    disk_full_for("e.npz")
    assert main([str(finished_run), "--out", str(tmp_path / "e.npz"), "--split", "val", "-q"]) == 2
    assert f"no space left on the disk to write {tmp_path / 'e.npz'}" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_export_on_a_full_disk_leaves_no_bundle(finished_run, tmp_path, capsys, disk_full_for):
    from peftzoo_trained.export import main

    disk_full_for("heads.safetensors")
    assert main([str(finished_run), "--bundle", str(tmp_path / "bundle")]) == 2
    assert f"no space left on the disk to write {tmp_path / 'bundle' / 'heads.safetensors'}" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its staging directory


def test_a_tensorboard_file_where_its_directory_goes_is_one_message_on_resume(tmp_path):
    from peftzoo_engine import rundir

    run = rundir.RunDir(tmp_path, "tiny")
    run.start("name: tiny\ntrain: {loggers: [jsonl, tensorboard]}\n", {})
    run.finish("interrupted")
    shutil.rmtree(run.path / "tensorboard", ignore_errors=True)  # TensorBoard is a callback: start() made none
    (run.path / "tensorboard").write_text("not a directory")
    again = rundir.RunDir.open(run.path)
    with pytest.raises(rundir.UserError, match="tensorboard is a file, but the recipe's train.loggers has tensorboard"):
        again.resume(step=0)
    again.release()
