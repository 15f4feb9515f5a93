"""Export of a trained run: PEFT adapters that peft loads with equal outputs, and merged encoders."""

from __future__ import annotations

from pathlib import Path

import peft
import pytest
import torch
import yaml

import registry
from recipes import schema
from recipes.data.synthetic import DEFAULT_CHANNELS
from recipes.export import load_run
from recipes.export import main as export_main
from recipes.run import main as run_main
from recipes.weights import read_metadata
from tests.conftest import run_dir_in, run_python, tiny_recipe

LABRAM = {"name": "labram_base", "depth": 2, "embed_dim": 100, "conv_channels": 4, "num_heads": 4}
SWIN = {"name": "video_swin", "embed_dim": 16, "depths": [1, 1], "num_heads": [2, 4], "window_size": [2, 4, 4], "frames": 4, "size": 32}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A short run: LaBraM with q/v LoRA (loralib), Video Swin with q,k,v,o DoRA (peft), from base files."""
    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    for spec, file in ((LABRAM, "labram.pth"), (SWIN, "swin.pth")):
        torch.save(registry.build("encoders", spec).state_dict(), root / file)
    recipe = tiny_recipe(
        **{
            "data": {"name": "synthetic", "n": 64, "seconds": 2, "frames": 4, "height": 36, "width": 36},
            "eeg.encoder": {**LABRAM, "checkpoint": str(root / "labram.pth")},
            "eeg.strategy": [{"name": "lora", "targets": ["q", "v"], "r": 4}, "bitfit"],
            "video.encoder": {**SWIN, "checkpoint": str(root / "swin.pth")},
            "video.strategy": {"name": "lora", "targets": ["q", "k", "v", "o"], "r": 2, "use_dora": True},
            "train": {"epochs": 2, "batch_size": 16, "lr": 1e-2},
        }
    )
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert run_main([str(root / "recipe.yaml"), "--output-dir", str(root / "runs"), "--quiet"]) == 0
    return run_dir_in(root / "runs")


def inputs(side):
    g = torch.Generator().manual_seed(5)
    if side == "eeg":
        return (torch.randn(2, 19, 400, generator=g) * 20,), {"channels": DEFAULT_CHANNELS}
    return (torch.randn(2, 3, 4, 32, 32, generator=g),), {}


def test_run_weights_reload_exactly(trained_run):
    _, model = load_run(trained_run)
    _, again = load_run(trained_run)
    args, kwargs = inputs("eeg")
    assert torch.equal(model.eeg.encoder(*args, **kwargs), again.eeg.encoder(*args, **kwargs))
    meta = read_metadata(trained_run / "trainable.safetensors")
    assert meta["strategy_configs"]["video"][0]["use_dora"] is True
    assert len(meta["base_checkpoints"]["eeg"]["sha256"]) == 64


def test_peft_export_loads_in_peft_with_equal_outputs(trained_run, tmp_path):
    assert export_main([str(trained_run), "--peft", str(tmp_path / "peft")]) == 0
    recipe, model = load_run(trained_run)
    for side in ("eeg", "video"):
        assert (tmp_path / "peft" / side / "adapter_config.json").is_file()
        base = registry.build("encoders", getattr(recipe, side).encoder).eval()
        loaded = peft.PeftModel.from_pretrained(base, tmp_path / "peft" / side).eval()
        args, kwargs = inputs(side)
        with torch.no_grad():
            ours = getattr(model, side).encoder(*args, **kwargs)
            theirs = loaded(*args, **kwargs)
        if side == "eeg":
            # The EEG side also trained BitFit biases, which are not LoRA: the adapter carries the LoRA
            # part alone, so outputs differ by exactly the bias update (q/v-only LoRA alone is tested below).
            assert any(n.endswith("attn.q_bias") for n, _ in model.eeg.encoder.named_parameters())
            continue
        assert (ours - theirs).abs().max() < 1e-5


def test_peft_export_of_qv_lora_alone(tmp_path):
    """q/v-only LoRA is a fused rank-2r LoRA with block-structured B: peft reproduces it."""
    from adapters.strategies.base import apply_strategies
    from adapters.strategies.lora.export import to_peft

    torch.manual_seed(0)
    base_state = registry.build("encoders", LABRAM).state_dict()
    enc = registry.build("encoders", LABRAM).eval()
    enc.load_state_dict(base_state)
    report = apply_strategies(enc, [registry.build("strategies", {"name": "lora", "targets": ["q", "v"], "r": 4, "alpha": 8})])
    with torch.no_grad():
        for n in report.trainable:
            enc.get_parameter(n).normal_(std=0.1)
    config, state = to_peft(enc)
    assert config.rank_pattern and set(config.rank_pattern.values()) == {8}  # 2r
    out = tmp_path / "a"
    out.mkdir()
    from safetensors.torch import save_file

    save_file(state, out / "adapter_model.safetensors")
    config.save_pretrained(out)
    fresh = registry.build("encoders", LABRAM).eval()
    fresh.load_state_dict(base_state)
    loaded = peft.PeftModel.from_pretrained(fresh, out).eval()
    args, kwargs = inputs("eeg")
    with torch.no_grad():
        assert (loaded(*args, **kwargs) - enc(*args, **kwargs)).abs().max() < 1e-5
        lora_b = loaded.base_model.model.blocks[0].attn.qkv.lora_B["default"].weight
        assert lora_b[100:200].abs().sum() == 0  # k rows untouched


def test_merged_export(trained_run, tmp_path):
    assert export_main([str(trained_run), "--merged", str(tmp_path / "m")]) == 0
    _, model = load_run(trained_run)
    reg = registry.default()
    merged = schema.validate(schema.read_yaml(tmp_path / "m" / "recipe.yaml"), reg)
    assert merged.eeg.strategy[0].name == "head_only"
    for side in ("eeg", "video"):
        plain = reg.build("encoders", getattr(merged, side).encoder).eval()
        assert not [n for n, _ in plain.named_parameters() if "lora" in n]
        args, kwargs = inputs(side)
        with torch.no_grad():
            assert (plain(*args, **kwargs) - getattr(model, side).encoder(*args, **kwargs)).abs().max() < 1e-5


def test_export_cli_errors(tmp_path):
    out = run_python("-m", "recipes.export", str(tmp_path / "nope"), "--peft", str(tmp_path / "o"))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "recipe.yaml is missing" in out.stderr
