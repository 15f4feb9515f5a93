"""Training loop safeguards: mixed precision on CPU, the non-finite guard, the siglip loss end to end."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import registry
from peftzoo_engine import NonFiniteError, train
from peftzoo_engine.rundir import RunDir
from peftzoo_tools.run import main
from recipes import schema
from recipes.compose import compose
from tests.conftest import run_dir_in, tiny_recipe


def run(tmp_path, recipe, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code = main([str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err
    return code, err, run_dir_in(tmp_path / "runs")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_on_cpu(tmp_path, capsys, precision):
    code, err, run_dir = run(tmp_path, tiny_recipe(**{"train.precision": precision}), capsys)
    assert code == 0, err
    info = json.loads((run_dir / "run.json").read_text())
    assert info["precision"] == {"bf16": "torch.bfloat16", "fp16": "torch.float16"}[precision]
    evals = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert all(torch.isfinite(torch.tensor(e["val/loss"])) for e in evals)


@pytest.mark.parametrize("loss", registry.default().names("losses"))
def test_every_registered_loss_learns(tmp_path, capsys, loss):
    """Each loss, with its defaults, trains the demo recipe to 5x chance (protonce: past its warm-up)."""
    code = main(
        ["head_only_tiny.yaml", f"loss={loss}", "train.epochs=8", "--output-dir", str(tmp_path / "runs"), "--quiet"]
    )
    assert code == 0, capsys.readouterr().err
    run_dir = run_dir_in(tmp_path / "runs")
    evals = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert evals[-1]["val/eeg_to_video/R@1"] >= 5 * evals[-1]["val/chance_R@1"], evals[-1]


def test_non_finite_steps_are_skipped_then_the_run_stops(tmp_path):
    """NaN losses from epoch 2 on: those steps are skipped and counted, the run stops after
    max_nonfinite_steps in a row, and the checkpoint of epoch 1 is kept."""
    reg = registry.default()
    recipe = schema.validate(tiny_recipe(**{"train.epochs": 3, "train.max_nonfinite_steps": 3}), reg)
    data = reg.build("datasets", recipe.data, seed=0)
    model = compose(recipe, data, reg)
    real_forward = model.loss.forward
    calls = {"n": 0}

    def poisoned(eeg, video, groups=None, index=None):
        calls["n"] += 1
        out = real_forward(eeg, video, groups, index)
        return out * float("nan") if calls["n"] > 3 else out  # 3 good steps = epoch 1 (120 pairs / 32)

    model.loss.forward = poisoned
    rd = RunDir(tmp_path / "runs", recipe.name)
    before = {n: p.detach().clone() for n, p in model.trainable_parameters().items()}
    with pytest.raises(NonFiniteError, match="3 steps in a row had a NaN or inf loss or gradient"):
        train(recipe, model, data, rd, torch.device("cpu"))
    saved = torch.load(rd.checkpoint_path, weights_only=False)
    assert saved["progress"]["epoch"] == 1 and saved["progress"]["batch_in_epoch"] == 0
    for name, value in saved["trained"].items():
        assert torch.equal(value, model.get_parameter(name).detach())  # skipped steps changed nothing
        assert torch.isfinite(value).all()
    assert any(not torch.equal(before[n], saved["trained"][n]) for n in before)


def test_accumulation_gives_the_gradient_of_the_whole_batch():
    """accum_freq: 2 micro-batches of 16 give the gradient of one batch of 32 (all 32 pairs as negatives)."""
    from peftzoo_engine import Precision, accumulated_backward

    reg = registry.default()
    recipe = schema.validate(tiny_recipe(**{"eeg.strategy": "full", "video.strategy": "bitfit"}), reg)
    data = reg.build("datasets", recipe.data, seed=0)
    torch.manual_seed(0)
    model = compose(recipe, data, reg).train()
    idx = torch.arange(32)
    whole = {
        "eeg": torch.from_numpy(data.eeg[:32]),
        "video": torch.from_numpy(data.video[:32]),
        "group": idx,
        "index": idx,
    }
    halves = [{k: v[:16] for k, v in whole.items()}, {k: v[16:] for k, v in whole.items()}]
    cpu, fp32 = torch.device("cpu"), Precision("fp32", torch.device("cpu"))
    full_loss = accumulated_backward(model, [whole], cpu, fp32)
    expected = {n: p.grad.clone() for n, p in model.trainable_parameters().items()}
    model.zero_grad(set_to_none=True)
    accum_loss = accumulated_backward(model, halves, cpu, fp32)
    assert torch.allclose(accum_loss, full_loss, atol=1e-6)
    for name, p in model.trainable_parameters().items():
        assert torch.allclose(p.grad, expected[name], atol=1e-6, rtol=1e-4), name


def test_accumulating_run_counts_optimizer_steps(tmp_path, capsys):
    code, err, run_dir = run(
        tmp_path, tiny_recipe(**{"train.batch_size": 16, "train.accum_freq": 2, "train.log_every": 1}), capsys
    )
    assert code == 0, err
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"train"' in x]
    assert steps == list(range(1, 7))  # 120 training pairs: 7 micro-batches of 16, 3 steps of 2, per epoch


def test_logged_lr_is_the_schedules_whatever_the_multipliers(tmp_path, capsys):
    recipe = tiny_recipe(
        **{
            "train.lr_scales": {"head": 0.5, "loss": 0.25},
            "train.warmup_steps": 0,
            "train.log_every": 1,
            "train.epochs": 1,
        }
    )
    code, err, run_dir = run(tmp_path, recipe, capsys)
    assert code == 0, err
    first = next(json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"train"' in x)
    assert first["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("clip", [None, 1.0])
def test_a_non_finite_gradient_under_a_finite_loss_is_skipped(tmp_path, clip):
    """A NaN in one parameter's gradient (the loss itself finite) skips the step, with or without clipping:
    all_finite checks every gradient in one kernel, the clipping norm does it where it is computed anyway."""
    reg = registry.default()
    recipe = schema.validate(
        tiny_recipe(**{"train.epochs": 2, "train.max_nonfinite_steps": 2, "train.grad_clip_norm": clip}), reg
    )
    data = reg.build("datasets", recipe.data, seed=0)
    model = compose(recipe, data, reg)
    name, target = next(iter(model.trainable_parameters().items()))
    calls = {"n": 0}

    def poison(grad):
        calls["n"] += 1
        if calls["n"] <= 3:  # epoch 1's 3 steps are clean
            return grad
        grad = grad.clone()
        grad.view(-1)[0] = float("nan")
        return grad

    target.register_hook(poison)
    rd = RunDir(tmp_path / "runs", recipe.name)
    with pytest.raises(NonFiniteError, match="2 steps in a row had a NaN or inf loss or gradient"):
        train(recipe, model, data, rd, torch.device("cpu"))
    saved = torch.load(rd.checkpoint_path, weights_only=False)
    assert saved["progress"]["epoch"] == 1
    assert torch.equal(saved["trained"][name], target.detach())  # the poisoned steps changed nothing
    assert torch.isfinite(target).all()


def test_the_optimizer_runs_torchs_fused_kernel_where_there_is_one():
    """adamw, adam and sgd take torch's fused kernel; a timm optimizer without one is built as before. The
    fused AdamW's steps equal the per-tensor loop's to float rounding."""
    from peftzoo_engine.optim import make_optimizer

    reg = registry.default()
    optimizers = {}
    for name in ("adamw", "adam", "sgd", "lamb"):
        recipe = schema.validate(tiny_recipe(**{"train.optimizer": name}), reg)
        model = compose(recipe, reg.build("datasets", recipe.data, seed=0), reg)
        optimizers[name] = make_optimizer(recipe, model, 1e-3)
    assert {n: bool(o.defaults.get("fused")) for n, o in optimizers.items()} == {
        "adamw": True,
        "adam": True,
        "sgd": True,
        "lamb": False,
    }

    torch.manual_seed(0)
    weights = [torch.randn(64, 32), torch.randn(64)]
    grads = [[torch.randn_like(w) for w in weights] for _ in range(5)]
    after = {}
    for fused in (True, False):
        params = [torch.nn.Parameter(w.clone()) for w in weights]
        opt = torch.optim.AdamW(
            [{"params": params[:1], "weight_decay": 0.05}, {"params": params[1:], "weight_decay": 0.0}],
            lr=1e-2,
            fused=fused or None,
        )
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g.clone()
            opt.step()
        after[fused] = params
    for a, b in zip(after[True], after[False]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
