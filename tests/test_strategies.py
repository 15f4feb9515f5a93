"""Every registered strategy (plugins included), on both real encoder families at small sizes.

(a) the trainable set is what the strategy reports; (b) perturbing its trainable parameters changes
the encoder output; (c) one optimizer step changes only trainable parameters; (d) saved trainable
weights loaded onto a freshly built encoder give identical outputs. Closed-form counts, compositions
and LoRA merging follow.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import registry
from adapters.strategies.base import StrategyError, apply_strategies, trainable_names
from peftzoo_engine.weights import load_trainable, save_trainable

ENCODERS = {
    "labram_base": {"depth": 2, "embed_dim": 100, "conv_channels": 4, "num_heads": 4, "drop_path": 0.0},
    "video_swin": {
        "embed_dim": 16,
        "depths": [1, 1],
        "num_heads": [2, 4],
        "window_size": [2, 4, 4],
        "frames": 4,
        "size": 32,
        "drop_path": 0.0,
    },
}
# Options that make a strategy train something on these small encoders (defaults otherwise).
OPTIONS = {"last_k": {"k": 1}}
# Combinations a strategy refuses by design, with the message it must give.
REFUSED = {("video_swin", "prompt"): "takes no prompt tokens \\(Video Swin attends within shifted local windows"}


def strategy_names() -> list[str]:
    return registry.names("strategies")


def example_input(name: str):
    g = torch.Generator().manual_seed(1)
    if name == "labram_base":
        return (torch.randn(2, 4, 400, generator=g) * 20,), {"channels": ["Fp1", "Fp2", "Cz", "Oz"]}
    return (torch.randn(2, 3, 4, 32, 32, generator=g),), {}


def build(encoder: str, strategy: str, checkpoint=None):
    """(encoder, report), or (None, None) after checking the refusal of a combination in REFUSED."""
    torch.manual_seed(0)
    enc = registry.build(
        "encoders", {"name": encoder, "checkpoint": checkpoint and str(checkpoint), **ENCODERS[encoder]}
    )
    strat = registry.build("strategies", {"name": strategy, **OPTIONS.get(strategy, {})})
    if (encoder, strategy) in REFUSED:
        with pytest.raises(StrategyError, match=REFUSED[(encoder, strategy)]):
            apply_strategies(enc, [strat])
        return None, None
    report = apply_strategies(enc, [strat])
    return enc.eval(), report


@pytest.fixture(params=list(ENCODERS))
def encoder_name(request):
    return request.param


@pytest.mark.parametrize("strategy", strategy_names())
def test_trainable_set_is_reported(encoder_name, strategy):
    enc, report = build(encoder_name, strategy)
    if enc is None:
        return
    assert sorted(report.trainable) == sorted(trainable_names(enc))
    assert report.num_trainable == sum(p.numel() for p in enc.parameters() if p.requires_grad)
    assert report.trains_encoder == bool(report.trainable)


@pytest.mark.parametrize("strategy", strategy_names())
def test_trainable_parameters_change_the_output(encoder_name, strategy):
    enc, report = build(encoder_name, strategy)
    if enc is None:
        return
    if not report.trains_encoder:
        assert strategy == "head_only" or OPTIONS.get(strategy, {}).get("k") == 0
        return
    args, kwargs = example_input(encoder_name)
    with torch.no_grad():
        base = enc(*args, **kwargs)
        for name in report.trainable:
            enc.get_parameter(name).add_(torch.randn_like(enc.get_parameter(name)) * 0.1)
        assert not torch.allclose(enc(*args, **kwargs), base, atol=1e-6), f"{strategy} is a silent no-op"


@pytest.mark.parametrize("strategy", strategy_names())
def test_one_step_changes_only_trainable_parameters(encoder_name, strategy):
    enc, report = build(encoder_name, strategy)
    if enc is None or not report.trains_encoder:
        return
    # LoRA B starts at zero, so A gets no gradient on the first step; start from a trained state.
    with torch.no_grad():
        for name in report.trainable:
            enc.get_parameter(name).add_(torch.randn_like(enc.get_parameter(name)) * 0.01)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    enc.train()
    optimizer = torch.optim.AdamW([p for p in enc.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    args, kwargs = example_input(encoder_name)
    enc(*args, **kwargs).pow(2).sum().backward()
    optimizer.step()
    after = enc.state_dict()
    trainable = set(report.trainable)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed <= trainable, f"frozen tensors changed: {sorted(changed - trainable)[:5]}"
    assert changed, "nothing trained"


@pytest.mark.parametrize("strategy", strategy_names())
def test_saved_weights_reproduce_outputs_on_a_fresh_encoder(encoder_name, strategy, tmp_path):
    torch.manual_seed(0)
    base = registry.build("encoders", {"name": encoder_name, **ENCODERS[encoder_name]})
    checkpoint = tmp_path / "base.pth"
    torch.save(base.state_dict(), checkpoint)
    enc, report = build(encoder_name, strategy, checkpoint)
    if enc is None:
        return
    with torch.no_grad():
        for name in report.trainable:
            enc.get_parameter(name).add_(torch.randn_like(enc.get_parameter(name)) * 0.1)
    save_trainable(enc, tmp_path / "trainable.safetensors", {"strategy": strategy})
    torch.manual_seed(123)  # a different random state: nothing may depend on it
    fresh, _ = build(encoder_name, strategy, checkpoint)
    loaded = load_trainable(fresh, tmp_path / "trainable.safetensors")
    assert loaded == sorted(report.trainable)
    args, kwargs = example_input(encoder_name)
    with torch.no_grad():
        assert torch.equal(fresh(*args, **kwargs), enc(*args, **kwargs))


@pytest.mark.parametrize(
    "encoder, spec, expected",
    [
        ("labram_base", {"name": "lora", "targets": ["q", "v"], "r": 8}, 76_800),
        ("swin3d_t", {"name": "lora", "targets": ["q", "v"], "r": 8}, 141_312),
        ("labram_base", {"name": "lora", "targets": ["q", "k", "v"], "r": 4}, 12 * 4 * (200 + 600)),
        ("labram_base", {"name": "lora", "targets": ["o", "mlp"], "r": 2, "layers": [-1]}, 2 * (400 + 1000 + 1000)),
        ("swin3d_t", {"name": "bitfit"}, 52_224),
        ("swin3d_t", {"name": "bitfit", "relative_position_bias": True}, 52_224 + 349_830),
        ("labram_base", {"name": "bitfit", "qv_bias": False}, 24_728 - 12 * 400),
        # one LaBraM-Base block: norm1, qkv (no bias), q/k norms, proj, norm2, fc1, fc2, two layer scales
        (
            "labram_base",
            {"name": "last_k", "k": 1, "final_norm": False},
            400 + 3 * 200 * 200 + 2 * 40 + (200 * 200 + 200) + 400 + (200 * 800 + 800) + (800 * 200 + 200) + 400,
        ),
        ("labram_base", {"name": "last_k", "k": 2}, 2 * 482_480 + 400),
    ],
)
def test_closed_form_counts(encoder, spec, expected):
    enc = registry.build("encoders", encoder)
    report = apply_strategies(enc, [registry.build("strategies", spec)])
    assert report.num_trainable == expected


def test_lora_qv_adapts_only_q_and_v_rows():
    enc, report = build("labram_base", "lora")
    qkv = enc.blocks[0].attn.qkv
    assert type(qkv).__name__ == "MergedLinear" and qkv.enable_lora == [True, False, True]
    with torch.no_grad():
        qkv.lora_B.normal_()
    delta = qkv.merge_AB()
    d = qkv.in_features
    assert delta[d : 2 * d].abs().sum() == 0 and delta[:d].abs().sum() > 0 and delta[2 * d :].abs().sum() > 0


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "lora"},
        {"name": "lora", "targets": ["q", "k", "v", "o"], "use_dora": True},
        {"name": "lora", "targets": ["mlp"], "use_rslora": True},
    ],
)
def test_lora_merge_gives_equal_outputs_and_plain_layers(encoder_name, spec):
    from adapters.strategies.lora import merge

    torch.manual_seed(0)
    enc = registry.build("encoders", {"name": encoder_name, **ENCODERS[encoder_name]}).eval()
    report = apply_strategies(enc, [registry.build("strategies", spec)])
    with torch.no_grad():
        for name in report.trainable:
            enc.get_parameter(name).add_(torch.randn_like(enc.get_parameter(name)) * 0.05)
    args, kwargs = example_input(encoder_name)
    with torch.no_grad():
        adapted = enc(*args, **kwargs)
        assert merge(enc) > 0
        merged = enc(*args, **kwargs)
    assert (merged - adapted).abs().max() < 1e-5
    assert not [n for n, _ in enc.named_parameters() if "lora" in n or "base_layer" in n]
    assert all(type(m) is nn.Linear for _, attn in enc.attention_modules() for m in (attn.qkv, attn.proj))


@pytest.mark.parametrize(
    "specs, message",
    [
        (["head_only", "lora"], "head_only trains nothing"),
        (["full", "bitfit"], "full already trains every encoder parameter"),
        (["lora", {"name": "lora", "targets": ["o"]}], "lora is listed twice"),
    ],
)
def test_compositions_that_cannot_work_are_refused(specs, message):
    enc = registry.build("encoders", {"name": "labram_base", **ENCODERS["labram_base"]})
    with pytest.raises(StrategyError, match=message):
        apply_strategies(enc, [registry.build("strategies", s) for s in specs])


def test_compositions_train_the_union(encoder_name):
    torch.manual_seed(0)
    enc = registry.build("encoders", {"name": encoder_name, **ENCODERS[encoder_name]})
    report = apply_strategies(
        enc, [registry.build("strategies", s) for s in ("lora", "bitfit", {"name": "last_k", "k": 1})]
    )
    names = set(report.trainable)
    assert any(".lora_" in n for n in names) and any(n.endswith("bias") for n in names)
    last = list(enc.blocks)[-1]
    assert all(p.requires_grad for p in last.parameters())
    assert sorted(names) == sorted(trainable_names(enc))


def test_last_k_bounds():
    enc = registry.build("encoders", {"name": "labram_base", **ENCODERS["labram_base"]})
    with pytest.raises(StrategyError, match="k=3 but labram_base has 2 blocks"):
        apply_strategies(enc, [registry.build("strategies", {"name": "last_k", "k": 3})])
    with pytest.raises(StrategyError, match="last_k trains nothing in this encoder with these options .*use head_only"):
        apply_strategies(enc, [registry.build("strategies", {"name": "last_k", "k": 0})])


def test_layer_decay_scales(encoder_name):
    enc = registry.build("encoders", {"name": encoder_name, **ENCODERS[encoder_name]})
    report = apply_strategies(
        enc, [registry.build("strategies", {"name": "full", "layer_decay": 0.5, "lr_scale": 0.1})]
    )
    ids = enc.layer_ids()
    top = len(enc.blocks) + 1
    for name, scale in report.lr_scale.items():
        assert scale == pytest.approx(0.1 * 0.5 ** (top - ids[name]))
    assert max(report.lr_scale.values()) == pytest.approx(0.1)


def test_ia3_closed_form_and_feedforward_rule():
    enc = registry.build("encoders", "labram_base")
    report = apply_strategies(enc, [registry.build("strategies", "ia3")])
    assert report.num_trainable == 12 * (600 + 800)  # qkv output scaling + fc2 input (FFN activation) scaling
    assert enc.blocks[0].mlp.fc2.is_feedforward and not enc.blocks[0].attn.qkv.is_feedforward


def test_peft_tuners_refuse_a_split_qkv():
    with pytest.raises(registry.ComponentConfigError, match="split the fused qkv"):
        registry.build("strategies", {"name": "loha", "targets": ["q", "v"]})


def test_adalora_penalty_and_budget_are_wired_into_training(tmp_path, capsys):
    """A real run: the orthogonality penalty is in the loss and the rank budget ends at target_r."""
    import yaml
    from safetensors.torch import load_file

    from peftzoo_tools.run import main
    from tests.conftest import run_dir_in, tiny_recipe

    recipe = tiny_recipe(
        **{
            "eeg.strategy": {"name": "adalora", "init_r": 4, "target_r": 2, "targets": ["q", "k", "v", "o"]},
            "train.epochs": 3,
        }
    )
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main([str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    run_dir = run_dir_in(tmp_path / "runs")
    state = load_file(str(run_dir / "trainable.safetensors"))
    e = [v for k, v in state.items() if "lora_E" in k]
    assert len(e) == 2  # one block: qkv and proj
    assert int(sum((t != 0).sum() for t in e)) <= 2 * len(e)  # budget pruned from 4 to target 2 per module
    strategy = registry.build("strategies", {"name": "adalora", "init_r": 4, "target_r": 2})
    enc = registry.build("encoders", {"name": "tiny_eeg", "dim": 16, "heads": 2, "depth": 1})
    apply_strategies(enc, [strategy])
    penalty = strategy.regularization()
    assert penalty is not None and penalty.item() > 0 and penalty.requires_grad


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"name": "prefix", "length": 10}, 12 * 2 * 10 * 200),
        (
            {"name": "prefix", "length": 10, "layers": [-1], "reparam_hidden": 64},
            10 * 200 + (200 * 64 + 64) + (64 * 400 + 400),
        ),
        ({"name": "prompt", "tokens": 50, "deep": True}, 12 * 50 * 200),
        ({"name": "prompt", "tokens": 5}, 5 * 200),
    ],
)
def test_prefix_and_prompt_counts_on_labram_base(spec, expected):
    enc = registry.build("encoders", "labram_base")
    report = apply_strategies(enc, [registry.build("strategies", spec)])
    assert report.num_trainable == expected


def test_deep_prompts_get_gradients_at_every_layer_and_leave_pooling_alone():
    torch.manual_seed(0)
    enc = registry.build("encoders", {"name": "labram_base", **ENCODERS["labram_base"]})
    apply_strategies(enc, [registry.build("strategies", {"name": "prompt", "tokens": 3, "deep": True})])
    args, kwargs = example_input("labram_base")
    seen = []  # hooks registered after the strategy's run after them
    enc.blocks[0].register_forward_pre_hook(lambda m, a: seen.append(("in", a[0].shape[1])))
    enc.blocks[-1].register_forward_hook(lambda m, a, out: seen.append(("out", out.shape[1])))
    enc(*args, **kwargs).pow(2).sum().backward()
    assert enc.prompt.tokens.grad is not None and (enc.prompt.tokens.grad.abs().sum(dim=(1, 2)) > 0).all()
    # CLS + 4 channels x 2 patches, plus 3 prompts inside the blocks; pooling gets the 9 tokens back
    assert seen == [("in", 1 + 8 + 3), ("out", 1 + 8)]


def test_prefix_on_shifted_padded_swin_windows():
    torch.manual_seed(0)
    enc = registry.build("encoders", {"name": "video_swin", **ENCODERS["video_swin"]}).eval()
    clip = torch.randn(1, 3, 6, 40, 36)  # padding and shifted windows
    base = enc(clip)
    apply_strategies(enc, [registry.build("strategies", {"name": "prefix", "length": 3})])
    out = enc(clip)
    assert out.shape == base.shape and not torch.allclose(out, base)
    out.sum().backward()
    grads = [p.grad for n, p in enc.named_parameters() if ".prefix." in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_prompt_on_tiny_eeg_and_tiny_video_and_refused_with_the_encoders_reason():
    enc = registry.build("encoders", {"name": "tiny_eeg", "dim": 16, "heads": 2, "depth": 2})
    report = apply_strategies(enc, [registry.build("strategies", {"name": "prompt", "tokens": 2})])
    assert report.num_trainable == 2 * 16
    assert enc(torch.randn(2, 3, 200), channels=["Cz", "Pz", "Oz"]).shape == (2, 16)
    # tiny_video is a plain token sequence: prompts go in front and pooling drops them again
    video = registry.build(
        "encoders", {"name": "tiny_video", "dim": 16, "heads": 2, "depth": 2, "frames": 4, "size": 16}
    )
    clip = torch.randn(2, 3, 4, 16, 16)
    before = video.eval()(clip)
    report = apply_strategies(video, [registry.build("strategies", {"name": "prompt", "tokens": 3, "deep": True})])
    assert report.num_trainable == 2 * 3 * 16
    out = video(clip)
    assert out.shape == before.shape and not torch.allclose(out, before)
    out.sum().backward()
    assert video.prompt.tokens.grad.abs().sum(dim=(1, 2)).gt(0).all()

    class NoSlot(torch.nn.Module):
        name, blocks = "plugin_encoder", torch.nn.ModuleList([torch.nn.Identity()])

    with pytest.raises(
        StrategyError, match=r"plugin_encoder takes no prompt tokens \(it does not declare where .*use prefix, lora"
    ):
        apply_strategies(NoSlot(), [registry.build("strategies", "prompt")])
