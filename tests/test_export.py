"""Export of a trained run: PEFT adapters that peft loads with equal outputs, and merged encoders."""

from __future__ import annotations

import json
from pathlib import Path

import peft
import pytest
import torch
import yaml

import registry
from peftzoo_data.synthetic import DEFAULT_CHANNELS
from peftzoo_engine.weights import read_metadata
from peftzoo_tools.run import main as run_main
from peftzoo_trained.export import main as export_main
from recipes import schema
from tests.conftest import load_run, run_dir_in, run_python, tiny_recipe

LABRAM = {"name": "labram_base", "depth": 2, "embed_dim": 100, "conv_channels": 4, "num_heads": 4}
SWIN = {
    "name": "video_swin",
    "embed_dim": 16,
    "depths": [1, 1],
    "num_heads": [2, 4],
    "window_size": [2, 4, 4],
    "frames": 4,
    "size": 32,
}


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


def test_peft_export_refuses_a_side_that_peft_cannot_carry(trained_run, tmp_path, capsys):
    """The EEG side also trained BitFit biases, which peft cannot load back: refused, not exported
    without them (its outputs would differ from the run's)."""
    assert export_main([str(trained_run), "--peft", str(tmp_path / "peft")]) == 2
    err = capsys.readouterr().err
    assert "eeg: strategy bitfit" in err and "--bundle" in err and "--merged" in err
    assert not (tmp_path / "peft").exists() and not list(tmp_path.iterdir())


def fake_run(root: Path, **changes) -> Path:
    """A run directory as training leaves it (recipe.yaml, trainable.safetensors), with every trained
    tensor set to random values instead of trained ones: LaBraM from a base file on the EEG side."""
    from adapters.strategies.base import Strategy  # noqa: F401  (registry components)
    from peftzoo_engine.weights import save_trainable
    from peftzoo_trained.loading import seed_everything
    from recipes.compose import compose, stage_plan, switch_stage

    root.mkdir(parents=True, exist_ok=True)
    if not (root / "labram.pth").is_file():
        torch.manual_seed(0)
        torch.save(registry.build("encoders", LABRAM).state_dict(), root / "labram.pth")
    raw = tiny_recipe(
        **{"data.seconds": 2, "eeg.encoder": {**LABRAM, "checkpoint": str(root / "labram.pth")}, **changes}
    )
    reg = registry.default()
    recipe = schema.validate(raw, reg)
    seed_everything(recipe.seed)
    model = compose(recipe, None, reg)
    for stage in stage_plan(recipe):
        switch_stage(model, stage, reg, None)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in model.ever_trainable:
                p.add_(torch.randn_like(p) * 0.1)
    run = root / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text(schema.dump(recipe))
    data = {"channels": list(DEFAULT_CHANNELS), "sfreq": 200.0, "n_samples": 400, "frame_shape": [4, 20, 20, 3]}
    (run / "run.json").write_text(json.dumps({"status": "completed", "data": data}))  # as the engine records it
    save_trainable(model, run / "trainable.safetensors", {})
    return run


PEFT_STRATEGIES = {
    "lora": {"name": "lora", "targets": ["q", "v"], "r": 4},
    "dora": {"name": "lora", "targets": ["q", "k", "v", "o"], "r": 2, "use_dora": True},
    "adalora": {"name": "adalora", "init_r": 4, "target_r": 2},
    "ia3": {"name": "ia3"},
    "loha": {"name": "loha", "r": 2},
    "lokr": {"name": "lokr", "r": 2},
}


@pytest.mark.parametrize("kind", list(PEFT_STRATEGIES))
def test_peft_export_loads_in_peft_with_the_runs_outputs(kind, tmp_path):
    """#9.6: AdaLoRA crashed, IA3/LoHa/LoKr were refused. PeftModel.from_pretrained on the plain base
    encoder gives the run's encoder outputs for each."""
    run = fake_run(tmp_path, **{"eeg.strategy": [PEFT_STRATEGIES[kind]]})
    assert export_main([str(run), "--peft", str(tmp_path / "peft")]) == 0
    assert (tmp_path / "peft" / "eeg" / "adapter_model.safetensors").is_file()
    manifest = json.loads((tmp_path / "peft" / "manifest.json").read_text())  # the same hooks as --native, flat layout
    assert manifest["layout"] == "peft" and manifest["sides"]["eeg"]["adapters"][0]["directory"] == "eeg"
    assert not (tmp_path / "peft" / "video").exists()  # head_only: nothing to export there
    recipe, model = load_run(run)
    base = registry.build("encoders", recipe.eeg.encoder).eval()
    args, kwargs = inputs("eeg")
    with torch.no_grad():
        plain = base(*args, **kwargs)
        loaded = peft.PeftModel.from_pretrained(base, tmp_path / "peft" / "eeg").eval()
        ours, theirs = model.eeg.encoder(*args, **kwargs), loaded(*args, **kwargs)
    assert (ours - plain).abs().max() > 1e-3  # the adapter matters
    assert (ours - theirs).abs().max() < 1e-5


@pytest.mark.parametrize("strategy", ["prefix", "prompt", "bitfit", {"name": "last_k", "k": 1}, "full"])
def test_peft_export_refuses_what_peft_cannot_load(strategy):
    from types import SimpleNamespace

    from peftzoo_trained.export import exporting_strategies
    from registry.errors import UserError

    built = registry.build("strategies", strategy)
    model = SimpleNamespace(eeg=SimpleNamespace(applied={"x": (built, None)}), video=SimpleNamespace(applied={}))
    with pytest.raises(
        UserError, match=f"eeg: strategy {built.name} cannot be exported in peft's format.*--bundle.*--merged"
    ):
        exporting_strategies(model, peft_only=True)
    with pytest.raises(UserError, match=f"eeg: strategy {built.name} offers no export\\(\\) hook.*--bundle.*--merged"):
        exporting_strategies(model)


def test_export_plan_names_every_strategy_it_refuses_and_numbers_repeated_names():
    """One message for all: both sides' strategies without the hook; peft's one-adapter-per-directory rule;
    a name a side carries twice (training stages) gets its own numbered directory."""
    from types import SimpleNamespace

    from peftzoo_trained.export import adapter_directories, exporting_strategies
    from registry.errors import UserError

    def model(eeg, video=()):
        def built(specs):
            return {str(i): (registry.build("strategies", s), None) for i, s in enumerate(specs)}

        return SimpleNamespace(eeg=SimpleNamespace(applied=built(eeg)), video=SimpleNamespace(applied=built(video)))

    with pytest.raises(
        UserError, match=r"eeg: strategy bitfit offers no export.*; video: strategy prefix offers no export"
    ):
        exporting_strategies(model(["lora", "bitfit"], ["prefix"]))
    with pytest.raises(UserError, match=r"eeg: strategies lora, ia3 are two adapters.*--native"):
        exporting_strategies(model(["lora", {"name": "ia3", "targets": ["mlp"]}]), peft_only=True)
    with pytest.raises(UserError, match="trained no adapter on either side"):
        exporting_strategies(model(["head_only"], ["head_only"]))
    plan = exporting_strategies(model([{"name": "lora", "r": 2}, {"name": "lora", "r": 4}], ["head_only"]))
    assert list(plan) == ["eeg"]  # head_only has nothing to write
    assert [d for _, _, d in adapter_directories(plan, flat=False)] == ["eeg/lora", "eeg/lora-2"]


@pytest.mark.parametrize("kind", ["lora", "loha"])
def test_native_export_writes_each_strategys_own_format_with_a_manifest(kind, tmp_path):
    """--native calls each strategy's export() hook: lora (loralib q/v) and loha (a peft tuner) write peft's
    format into OUT/<side>/<strategy>/, which peft loads back onto the plain base encoder with the run's outputs."""
    from peftzoo_trained.bundle import sha256_file

    run = fake_run(tmp_path, **{"eeg.strategy": [PEFT_STRATEGIES[kind]]})
    out = tmp_path / "native"
    assert export_main([str(run), "--native", str(out)]) == 0
    name = PEFT_STRATEGIES[kind]["name"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["layout"] == "native" and list(manifest["sides"]) == ["eeg"]  # video: head_only, nothing to write
    (adapter,) = manifest["sides"]["eeg"]["adapters"]
    assert adapter["strategy"] == name and adapter["format"] == "peft" and adapter["directory"] == f"eeg/{name}"
    assert adapter["options"]["r"] == PEFT_STRATEGIES[kind]["r"]
    assert set(adapter["files"]) == {f"eeg/{name}/adapter_config.json", f"eeg/{name}/adapter_model.safetensors"}
    assert all(sha256_file(out / f) == e["sha256"] for f, e in adapter["files"].items())
    assert manifest["sides"]["eeg"]["encoder"]["name"] == "labram_base"
    recipe, model = load_run(run)
    base = registry.build("encoders", recipe.eeg.encoder).eval()
    args, kwargs = inputs("eeg")
    with torch.no_grad():
        plain = base(*args, **kwargs)
        loaded = peft.PeftModel.from_pretrained(base, out / "eeg" / name).eval()
        ours, theirs = model.eeg.encoder(*args, **kwargs), loaded(*args, **kwargs)
    assert (ours - plain).abs().max() > 1e-3
    assert (ours - theirs).abs().max() < 1e-5


def test_native_export_refuses_a_strategy_without_the_hook_and_leaves_nothing(tmp_path, capsys):
    run = fake_run(tmp_path, **{"eeg.strategy": [{"name": "lora", "r": 2}, "bitfit"]})
    assert export_main([str(run), "--native", str(tmp_path / "n")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: eeg: strategy bitfit offers no export() hook")
        and "--bundle" in err
        and "Traceback" not in err
    )
    assert not (tmp_path / "n").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_peft_export_refusal_leaves_nothing(tmp_path, capsys):
    run = fake_run(tmp_path, **{"eeg.strategy": [{"name": "prefix", "length": 2}]})
    assert export_main([str(run), "--peft", str(tmp_path / "peft")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: eeg: strategy prefix cannot be exported") and "Traceback" not in err
    assert not (tmp_path / "peft").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_peft_export_of_qv_lora_alone(tmp_path):
    """q/v-only LoRA is a fused rank-2r LoRA with block-structured B: peft reproduces it."""
    from adapters.strategies.base import apply_strategies
    from adapters.strategies.lora.export import to_peft

    torch.manual_seed(0)
    base_state = registry.build("encoders", LABRAM).state_dict()
    enc = registry.build("encoders", LABRAM).eval()
    enc.load_state_dict(base_state)
    report = apply_strategies(
        enc, [registry.build("strategies", {"name": "lora", "targets": ["q", "v"], "r": 4, "alpha": 8})]
    )
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


def test_merged_export_loads_back_with_the_runs_outputs(trained_run, tmp_path):
    """#9.12: the merged directory loads (recipes.load) into a model with the run's embeddings, and its
    recipe trains on from the merged encoders."""
    import recipes

    assert export_main([str(trained_run), "--merged", str(tmp_path / "m")]) == 0
    run_model = recipes.load(trained_run, device="cpu")
    model = run_model.model
    reg = registry.default()
    merged = schema.validate(schema.read_yaml(tmp_path / "m" / "recipe.yaml"), reg)
    assert merged.eeg.strategy[0].name == "head_only" and merged.train.stages is None
    for side in ("eeg", "video"):
        plain = reg.build("encoders", getattr(merged, side).encoder).eval()
        assert not [n for n, _ in plain.named_parameters() if "lora" in n]
        args, kwargs = inputs(side)
        with torch.no_grad():
            assert (plain(*args, **kwargs) - getattr(model, side).encoder(*args, **kwargs)).abs().max() < 1e-5
    loaded = recipes.load(tmp_path / "m", device="cpu")
    g = torch.Generator().manual_seed(0)
    eeg, frames = (
        torch.randn(3, 19, 400, generator=g) * 20,
        torch.randint(0, 255, (3, 4, 36, 36, 3), dtype=torch.uint8, generator=g),
    )
    assert (loaded.embed_eeg(eeg) - run_model.embed_eeg(eeg)).abs().max() < 1e-5
    assert (loaded.embed_video(frames) - run_model.embed_video(frames)).abs().max() < 1e-5


def test_merged_export_drops_stages_and_refuses_what_cannot_merge(tmp_path, capsys):
    import recipes

    run = fake_run(
        tmp_path / "staged",
        **{
            "eeg.strategy": [{"name": "lora", "r": 2}],
            "train": {
                "batch_size": 32,
                "lr": 1e-3,
                "stages": [{"epochs": 1}, {"epochs": 1, "eeg": {"strategy": ["bitfit"]}}],
            },
        },
    )
    assert export_main([str(run), "--merged", str(tmp_path / "m")]) == 0
    merged = schema.read_yaml(tmp_path / "m" / "recipe.yaml")
    assert (
        merged["train"].get("stages") is None
        and merged["train"]["epochs"] == 2
        and merged["eeg"]["strategy"] == [{"name": "head_only"}]
    )
    g = torch.Generator().manual_seed(0)
    eeg = torch.randn(2, 19, 400, generator=g) * 20
    assert (recipes.load(tmp_path / "m").embed_eeg(eeg) - recipes.load(run).embed_eeg(eeg)).abs().max() < 1e-5
    prefix = fake_run(tmp_path / "prefix", **{"eeg.strategy": [{"name": "prefix", "length": 2}]})
    assert export_main([str(prefix), "--merged", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "prefix" in err and "--bundle" in err
    assert not (tmp_path / "p").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    (tmp_path / "file").write_text("x")
    for flag in ("--merged", "--peft", "--native", "--bundle"):
        assert export_main([str(run), flag, str(tmp_path / "file")]) == 2
        assert "existing file" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "x"


def test_export_cli_errors(tmp_path):
    out = run_python("-m", "recipes.export", str(tmp_path / "nope"), "--peft", str(tmp_path / "o"))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "does not exist" in out.stderr
