"""Exact resume across the engine's seams: a run stopped by SIGTERM and resumed ends exactly as an
uninterrupted one, in a later training stage with the feature cache on, and with AdaLoRA's rank
allocator (mid-stage and across a stage boundary). Also: what a checkpoint may hold."""

from __future__ import annotations

import json
import signal

import torch
import yaml
from safetensors.torch import load_file

from peftzoo_model.losses.clip import ClipLoss
from peftzoo_tools.run import main
from tests.conftest import run_dir_in, tiny_recipe
from tests.interrupt import sigterm_during_step

LORA = {"name": "lora", "targets": ["q", "v"], "r": 2}
ADALORA = {
    "name": "adalora",
    "targets": ["q", "k", "v", "o", "mlp"],
    "init_r": 6,
    "target_r": 2,
    "tinit": 1,
    "tfinal": 0,
}


def lines(run_dir, kind):
    return [
        json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if json.loads(x)["type"] == kind
    ]


def staged(stages, **changes):
    recipe = tiny_recipe(**changes)
    del recipe["train"]["epochs"]
    recipe["train"]["stages"] = stages
    return recipe


def assert_resume_is_exact(tmp_path, monkeypatch, capsys, recipe, stop_at_step: int):
    """Run `recipe` straight, then again with SIGTERM during training step `stop_at_step` and resumed:
    every eval and train line and every saved tensor must be equal. Returns both run directories."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main([str(path), "--output-dir", str(tmp_path / "a"), "--quiet"]) == 0
    straight = run_dir_in(tmp_path / "a")

    real_forward = ClipLoss.forward
    monkeypatch.setattr(ClipLoss, "forward", sigterm_during_step(ClipLoss, stop_at_step))
    assert main([str(path), "--output-dir", str(tmp_path / "b"), "--quiet"]) == 128 + signal.SIGTERM
    stopped = run_dir_in(tmp_path / "b")
    monkeypatch.setattr(ClipLoss, "forward", real_forward)
    capsys.readouterr()
    assert main(["--resume", str(stopped), "--quiet"]) == 0
    assert lines(stopped, "eval") == lines(straight, "eval")
    assert [(r["step"], r["train/loss"]) for r in lines(stopped, "train")] == [
        (r["step"], r["train/loss"]) for r in lines(straight, "train")
    ]
    a, b = load_file(str(straight / "trainable.safetensors")), load_file(str(stopped / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the strategies' own state (AdaLoRA's allocator statistics) is equal too
    ends = [torch.load(run / "checkpoints" / "last.pt", weights_only=True)["strategies"] for run in (straight, stopped)]
    assert_equal_nested(*ends)
    return straight, stopped


def assert_equal_nested(a, b, where="strategies"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_equal_nested(a[k], b[k], f"{where}.{k}")
    else:
        assert a == b, where


def test_resume_in_a_later_stage_with_the_feature_cache_is_exact(tmp_path, monkeypatch, capsys):
    """#9.3: the frozen-feature cache of stage 2 depends on the LoRA trained in stage 1; on resume the
    checkpoint's weights must be in place before the cache is computed."""
    recipe = staged([{"epochs": 1}, {"epochs": 2, "eeg": {"strategy": "head_only"}}], **{"eeg.strategy": LORA})
    # 3 steps per epoch: step 5 is the second step of stage 2's first epoch
    straight, stopped = assert_resume_is_exact(tmp_path, monkeypatch, capsys, recipe, stop_at_step=5)
    assert json.loads((stopped / "run.json").read_text())["stages"][1]["cached_features"] == ["eeg", "video"]


def test_adalora_resume_mid_stage_is_exact(tmp_path, monkeypatch, capsys):
    """#9.5: the rank allocator's running statistics and step are in the checkpoint."""
    recipe = tiny_recipe(**{"eeg.strategy": ADALORA, "train.epochs": 3})
    straight, _ = assert_resume_is_exact(tmp_path, monkeypatch, capsys, recipe, stop_at_step=3)
    state = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)["strategies"]["eeg"]
    (adalora,) = [s for key, s in state.items() if '"adalora"' in key]
    assert adalora["steps"] == 9 and adalora["exp_avg_ipt"] and adalora["rank_pattern"]  # tfinal 0: still allocating


def test_adalora_listed_again_continues_its_schedule_and_resumes_exactly(tmp_path, monkeypatch, capsys):
    """#9.5: adalora in stages 1 and 3 (head_only between): its budget schedule continues in stage 3
    instead of restarting, and a resume inside stage 3 is exact."""
    recipe = staged(
        [{"epochs": 1}, {"epochs": 1, "eeg": {"strategy": "head_only"}}, {"epochs": 1, "eeg": {"strategy": ADALORA}}],
        **{"eeg.strategy": ADALORA},
    )
    straight, _ = assert_resume_is_exact(tmp_path, monkeypatch, capsys, recipe, stop_at_step=8)
    states = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)["strategies"]["eeg"]
    (adalora,) = [state for key, state in states.items() if '"adalora"' in key]
    assert adalora["steps"] == 6  # 3 budget updates in stage 1, 3 more in stage 3


def test_a_damaged_checkpoint_is_refused_and_the_run_is_left_as_it_was(tmp_path, monkeypatch, capsys):
    """#9.13/#15: --resume reads checkpoints with weights_only=True; a truncated one, or one holding
    arbitrary objects, gives one message (exit 2) and run.json keeps its status."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(**{"train.epochs": 2})))
    real_forward = ClipLoss.forward
    monkeypatch.setattr(ClipLoss, "forward", sigterm_during_step(ClipLoss, 1))
    assert main([str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 128 + signal.SIGTERM
    monkeypatch.setattr(ClipLoss, "forward", real_forward)
    run_dir = run_dir_in(tmp_path / "runs")
    last = run_dir / "checkpoints" / "last.pt"
    good, info = last.read_bytes(), (run_dir / "run.json").read_text()
    capsys.readouterr()

    last.write_bytes(good[: len(good) // 2])
    assert main(["--resume", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and "truncated or damaged" in err and "Traceback" not in err
    assert (run_dir / "run.json").read_text() == info  # still "interrupted", not "failed"

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"format": 3, "x": Payload()}, last)
    assert main(["--resume", str(run_dir), "--quiet"]) == 2
    out = capsys.readouterr()
    assert "holds objects other than tensors and plain values" in out.err and "unpickled!" not in out.out
    assert (run_dir / "run.json").read_text() == info

    last.write_bytes(good)
    assert main(["--resume", str(run_dir), "--quiet"]) == 0
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"


def test_a_loaded_run_has_its_strategies_final_state(tmp_path, capsys):
    """A run keeps its strategies' state beside its weights (trainable.strategies.pt): recipes.load
    gives AdaLoRA the allocator state and step it ended with, not a fresh one."""
    from peftzoo_trained.loading import rebuild_run

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(**{"eeg.strategy": ADALORA, "train.epochs": 1})))
    assert main([str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    run = run_dir_in(tmp_path / "runs")
    assert (run / "trainable.strategies.pt").is_file()
    ended = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["strategies"]["eeg"]
    _, model, _, _ = rebuild_run(run)
    loaded = {key: strategy.state_dict() for key, (strategy, _) in model.eeg.applied.items()}
    (key,) = [k for k in loaded if '"adalora"' in k]
    assert loaded[key]["steps"] == ended[key]["steps"] == 3 and loaded[key]["exp_avg_ipt"]
    assert_equal_nested(loaded[key], ended[key])
    # a head_only run keeps no such file
    path.write_text(yaml.safe_dump(tiny_recipe(**{"train.epochs": 1})))
    assert main([str(path), "--output-dir", str(tmp_path / "plain"), "--quiet"]) == 0
    assert not (run_dir_in(tmp_path / "plain") / "trainable.strategies.pt").exists()
