"""LaBraM and Video Swin: parity with the official code, parameter counts, inputs, adapters.

Parity fixtures come from ../shared/fixtures/parity (outputs of the official model code); the rest
uses small architecture overrides of the real encoders so the suite stays fast.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import encoders
from encoders.base import InputSpecError
from encoders.channels import ChannelError
from tests.conftest import shared_path

FIXTURE_CHANNELS = [
    "FP1",
    "FP2",
    "F7",
    "F3",
    "FZ",
    "F4",
    "F8",
    "T3",
    "C3",
    "CZ",
    "C4",
    "T4",
    "T5",
    "P3",
    "PZ",
    "P4",
    "T6",
    "O1",
    "O2",
]
SMALL_LABRAM = {"depth": 2, "embed_dim": 100, "conv_channels": 4, "num_heads": 4}
SMALL_SWIN = {"embed_dim": 16, "depths": [1, 1], "num_heads": [2, 4], "window_size": [2, 4, 4], "frames": 4, "size": 32}


def test_labram_reproduces_the_official_features():
    checkpoint = shared_path("fixtures", "parity", "labram_base_official.pth")
    io = torch.load(shared_path("fixtures", "parity", "labram_base_io.pt"), weights_only=True)
    model = encoders.build("labram_base", checkpoint=checkpoint).eval()
    # the pretraining-only keys are ignored, fc_norm starts fresh, nothing else is off
    assert model.load_report.unexpected == [] and model.load_report.missing == ["fc_norm.weight", "fc_norm.bias"]
    assert {"mask_token", "lm_head.weight", "logit_scale", "norm.weight"} <= set(model.load_report.ignored)
    with torch.no_grad():
        out = model(io["x_microvolts"], channels=io["channels"])
    assert out.shape == io["expected_features"].shape == (2, 200)
    assert (out - io["expected_features"]).abs().max() < 1e-4


@pytest.mark.parametrize("final_norm", ["norm", "norm3"])
def test_video_swin_reproduces_the_official_features(tmp_path, final_norm):
    """mmaction2 0.x (backbone.norm) and 1.x (backbone.norm3) layouts of the same weights."""
    checkpoint = shared_path("fixtures", "parity", "video_swin_official.pth")
    spec = json.loads(shared_path("fixtures", "parity", "fixtures.json").read_text())["video_swin"]
    io = torch.load(shared_path("fixtures", "parity", "video_swin_io.pt"), weights_only=True)
    if final_norm == "norm3":
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
        ckpt["state_dict"] = {k.replace("backbone.norm.", "backbone.norm3."): v for k, v in ckpt["state_dict"].items()}
        checkpoint = tmp_path / "mmaction1x.pth"
        torch.save(ckpt, checkpoint)
    model = encoders.build("video_swin", checkpoint=checkpoint, **spec["arch"]).eval()
    assert model.load_report.missing == [] and model.load_report.unexpected == []
    with torch.no_grad():
        out = model(io["clip"])
    assert out.shape == (2, spec["feature_dim"])
    assert (out - io["expected_features"]).abs().max() < 1e-4


@pytest.mark.parametrize(
    "name, expected",
    [
        ("labram_base", 5_819_936),
        ("labram_large", 46_258_720),
        ("labram_huge", 369_235_712),
        ("swin3d_t", 27_850_470),
        ("swin3d_s", 49_509_078),
        ("swin3d_b", 87_638_984),
    ],
)
def test_parameter_counts_match_the_papers(name, expected):
    with torch.device("meta"):  # count without allocating 1.5 GB for labram_huge
        model = encoders.build(name)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_torchvision_state_dict_and_safetensors_load(tmp_path):
    torch.manual_seed(0)
    source = encoders.build("video_swin", **SMALL_SWIN).eval()
    state = {**source.state_dict(), "head.weight": torch.zeros(400, 32), "head.bias": torch.zeros(400)}
    torch.save(state, tmp_path / "tv.pth")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "tv.safetensors")
    clip = torch.randn(1, 3, 4, 32, 32)
    for name in ("tv.pth", "tv.safetensors"):
        model = encoders.build("video_swin", checkpoint=tmp_path / name, **SMALL_SWIN).eval()
        assert model.load_report.missing == [] and model.load_report.unexpected == []
        assert set(model.load_report.ignored) == {"head.weight", "head.bias"}
        assert torch.equal(model(clip), source(clip))


def test_video_swin_matches_torchvision_forward():
    """Our module-call attention computes what torchvision's functional attention computes."""
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    torch.manual_seed(0)
    ours = encoders.build("video_swin", **SMALL_SWIN).eval()
    reference = SwinTransformer3d(
        patch_size=[2, 4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 4], window_size=[2, 4, 4], num_classes=5
    )
    reference.head = nn.Identity()
    reference.load_state_dict(ours.state_dict())
    clip = torch.randn(2, 3, 6, 40, 36)  # padding and shifted windows both exercised
    assert torch.allclose(ours(clip), reference.eval()(clip), atol=1e-5)


def test_video_swin_exposes_blocks_attention_biases():
    model = encoders.build("video_swin", **SMALL_SWIN)
    assert len(model.blocks) == 2 and len(model.attention_modules()) == 2
    names = {n for n, _ in model.bias_parameters()}
    assert "features.0.0.attn.qkv.bias" in names
    assert not any("relative_position_bias_table" in n for n in names)


def test_video_preprocess_follows_the_recipe_options():
    model = encoders.build("swin3d_t", frames=8, size=112, resize=128)
    frames = torch.randint(0, 256, (2, 20, 120, 160, 3), dtype=torch.uint8)
    assert model.preprocess(frames).shape == (2, 3, 8, 112, 112)


@pytest.fixture(scope="module")
def small_labram():
    torch.manual_seed(0)
    return encoders.build("labram_base", **SMALL_LABRAM).eval()


def test_labram_input_contract(small_labram):
    x = torch.randn(2, 19, 800) * 30
    out = small_labram(x, channels=[f"EEG {c}-REF" for c in FIXTURE_CHANNELS])
    assert torch.equal(out, small_labram(x, channels=FIXTURE_CHANNELS))
    assert torch.equal(out, small_labram(x, channels=[c.lower() for c in FIXTURE_CHANNELS]))
    with pytest.raises(ChannelError, match="unknown EEG channel 'XX1'"):
        small_labram(x, channels=FIXTURE_CHANNELS[:-1] + ["XX1"])
    with pytest.raises(ChannelError, match="bipolar"):
        small_labram(x, channels=FIXTURE_CHANNELS[:-1] + ["FP1-F3"])
    with pytest.raises(InputSpecError, match="longer than labram_base allows"):
        small_labram(torch.zeros(1, 19, 17 * 200), channels=FIXTURE_CHANNELS)


def test_labram_refuses_wrong_rate_and_nan_before_training(reg, tmp_path):
    from peftzoo_data.base import DataError, PairTorchDataset
    from recipes.compose import check_data

    model = encoders.build("labram_base", **SMALL_LABRAM)
    data = reg.build("datasets", {"name": "synthetic", "n": 8, "sfreq": 250, "seconds": 4})
    with pytest.raises(InputSpecError, match="250 Hz but labram_base expects 200 Hz; resample"):
        check_data(model, data, "eeg")
    data = reg.build("datasets", {"name": "synthetic", "n": 8, "seconds": 17})
    with pytest.raises(InputSpecError, match="17 s are longer than labram_base allows \\(16 s at most\\)"):
        check_data(model, data, "eeg")
    data = reg.build("datasets", {"name": "synthetic", "n": 8, "seconds": 2})
    data.eeg[3, 0, 5] = float("nan")
    with pytest.raises(DataError, match="pair 3 holds NaN"):
        PairTorchDataset(data, [3])[0]


def _inputs(name):
    if name == "labram_base":
        return (
            encoders.build(name, **SMALL_LABRAM).eval(),
            (torch.randn(2, 4, 400) * 20,),
            {"channels": ["Fp1", "Fp2", "Cz", "Oz"]},
        )
    return encoders.build(name, **SMALL_SWIN).eval(), (torch.randn(2, 3, 4, 32, 32),), {}


@pytest.mark.parametrize("name", ["labram_base", "video_swin"])
def test_peft_lora_changes_the_output(name):
    import peft

    torch.manual_seed(0)
    model, args, kwargs = _inputs(name)
    base = model(*args, **kwargs)
    cfg = peft.LoraConfig(r=4, target_modules=r".*attn\.(qkv|proj)", init_lora_weights=False)
    adapted = peft.get_peft_model(model, cfg)
    out = adapted(*args, **kwargs)
    assert not torch.allclose(out, base)
    out.sum().backward()
    grads = [p.grad for n, p in adapted.named_parameters() if "lora_" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ["labram_base", "video_swin"])
def test_loralib_changes_the_output(name):
    import loralib

    torch.manual_seed(0)
    model, args, kwargs = _inputs(name)
    base = model(*args, **kwargs)
    for _, attn in model.attention_modules():
        old = attn.qkv
        attn.qkv = loralib.MergedLinear(
            old.in_features, old.out_features, r=4, enable_lora=[True, False, True], bias=old.bias is not None
        )
        attn.qkv.load_state_dict(old.state_dict(), strict=False)
        nn.init.normal_(attn.qkv.lora_B)
    model.train()  # loralib keeps the update unmerged (it runs in forward) in train mode
    for m in model.modules():
        if isinstance(m, nn.Dropout) or type(m).__name__ == "DropPath":
            m.eval()
    assert not torch.allclose(model(*args, **kwargs), base, atol=1e-6)


def test_torchvision_attention_would_be_a_silent_no_op():
    """Why the attention is replaced: LoRA on torchvision's own qkv changes nothing."""
    import peft
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    torch.manual_seed(0)
    reference = SwinTransformer3d(
        patch_size=[2, 4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 4], window_size=[2, 4, 4], num_classes=5
    ).eval()
    clip = torch.randn(1, 3, 4, 32, 32)
    base = reference(clip)
    adapted = peft.get_peft_model(
        reference, peft.LoraConfig(r=4, target_modules=r".*attn\.qkv", init_lora_weights=False)
    )
    assert torch.equal(adapted(clip), base)
