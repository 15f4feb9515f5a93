"""Data-parallel training: 2 gloo processes on CPU give the single-process loss and update."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml

from peftzoo_engine import Precision, accumulated_backward
from peftzoo_tools.run import main
from tests.conftest import ROOT, run_dir_in, run_python, tiny_recipe
from tests.distributed_case import global_batches, model_and_data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two(*args: str) -> list[tuple[int, str]]:
    """(exit status, output) of `python -m ARGS` in 2 processes of a gloo group, as torchrun starts them."""
    port = free_port()
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", *args],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    return [(p.returncode, out) for p, out in zip(procs, outputs)]


ACCUM_FREQS = (1, 2)


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory) -> dict[int, list[dict]]:
    """accum_freq -> both processes' loss and gradients, all from one launch of the two workers."""
    out_dir = tmp_path_factory.mktemp("two_workers")
    results = launch_two("tests.distributed_worker", str(out_dir), ",".join(map(str, ACCUM_FREQS)))
    assert all(code == 0 for code, _ in results), results
    return {a: [torch.load(out_dir / f"rank{r}-accum{a}.pt") for r in range(2)] for a in ACCUM_FREQS}


@pytest.mark.parametrize("accum_freq", ACCUM_FREQS)
def test_two_processes_equal_one_process_on_the_concatenated_batch(two_process_results, accum_freq):
    results = two_process_results[accum_freq]

    model, data = model_and_data()
    device = torch.device("cpu")
    loss = accumulated_backward(model, global_batches(data, accum_freq), device, Precision("fp32", device))
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    assert any(n.startswith("eeg.encoder.") for n in grads) and any(n.startswith("video.encoder.") for n in grads)
    for r in results:
        torch.testing.assert_close(r["loss"], loss.detach(), rtol=1e-5, atol=1e-6)
        assert r["grads"].keys() == grads.keys()
        for name, g in grads.items():
            torch.testing.assert_close(r["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_torchrun_trains_like_one_process(tmp_path):
    """`torchrun --nproc_per_node=2 -m recipes.run` writes one run directory and ends where one process ends."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        yaml.safe_dump(tiny_recipe(**{"eeg.strategy": "full", "train.epochs": 2, "train.batch_size": 16}))
    )
    assert (
        main([str(recipe), "--output-dir", str(tmp_path / "one"), "-q"]) == 0
    )  # in this process: one interpreter start less
    two = run_python(
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "recipes.run",
        str(recipe),
        "--output-dir",
        str(tmp_path / "two"),
        "-q",
        env={"OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("run: ") == 1

    def finals(root):
        run = run_dir_in(root)
        info = json.loads((run / "run.json").read_text())
        evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return info, [e for e in evals if e["type"] == "eval"]

    info_one, evals_one = finals(tmp_path / "one")
    info_two, evals_two = finals(tmp_path / "two")
    assert (info_one["processes"], info_two["processes"]) == (1, 2)
    assert info_two["status"] == "completed" and info_two["steps"] == info_one["steps"]
    assert len(evals_two) == len(evals_one) == 2
    for a, b in zip(evals_one, evals_two):
        assert a["val/loss"] == pytest.approx(b["val/loss"], rel=1e-4)
        assert a["val/eeg_to_video/R@1"] == pytest.approx(b["val/eeg_to_video/R@1"], abs=1.0 / a["val/n"] + 1e-9)


def test_sigterm_to_one_process_stops_both_and_the_resume_is_exact(tmp_path):
    """SIGTERM reaching rank 1 alone mid-epoch: both processes stop after the same step with one
    checkpoint (both processes' random states); resumed with 2 processes, the run ends exactly as an
    uninterrupted 2-process run."""
    import signal

    from safetensors.torch import load_file

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            tiny_recipe(
                **{
                    "eeg.strategy": {"name": "lora", "targets": ["q", "v"], "r": 2, "dropout": 0.2},
                    "train.epochs": 3,
                    "train.log_every": 1,
                }
            )
        )
    )

    def run(at_step: int, *args: str) -> list[tuple[int, str]]:
        return launch_two("tests.distributed_run_worker", str(at_step), *args)

    straight = run(0, str(recipe), "--output-dir", str(tmp_path / "a"), "-q")
    assert [code for code, _ in straight] == [0, 0], straight
    stopped = run(5, str(recipe), "--output-dir", str(tmp_path / "b"), "-q")  # 3 steps an epoch: step 2 of epoch 2
    assert [code for code, _ in stopped] == [128 + signal.SIGTERM] * 2, stopped
    run_b = run_dir_in(tmp_path / "b")
    saved = torch.load(run_b / "checkpoints" / "last.pt", weights_only=False)
    assert saved["progress"]["step"] == 5 and len(saved["rng"]) == 2
    resumed = run(0, "--resume", str(run_b), "-q")
    assert [code for code, _ in resumed] == [0, 0], resumed

    run_a = run_dir_in(tmp_path / "a")
    lines = {r: [json.loads(x) for x in (r / "metrics.jsonl").read_text().splitlines()] for r in (run_a, run_b)}
    for kind in ("eval", "train"):
        picked = {
            r: [{k: v for k, v in x.items() if k != "time"} for x in lines[r] if x["type"] == kind] for r in lines
        }
        assert picked[run_a] and picked[run_a] == picked[run_b], kind
    a, b = load_file(str(run_a / "trainable.safetensors")), load_file(str(run_b / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
