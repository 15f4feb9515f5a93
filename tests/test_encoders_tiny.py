"""Encoder contract on the tiny encoders: channels, input specs, preprocessing, checkpoints, adapters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import encoders
from encoders import channels
from encoders.base import InputSpecError
from encoders.checkpoint import CheckpointError
from encoders.video_preprocess import KINETICS_MEAN, KINETICS_STD, VideoPreprocess

NAMES = ["Fp1", "Fp2", "Cz", "O1"]


@pytest.mark.parametrize(
    "name, expected",
    [("Fp1", "FP1"), ("EEG FP1-REF", "FP1"), ("eeg fp2-le", "FP2"), (" Cz. ", "CZ"), ("FTT9h", "FTT9H"), ("T3", "T3")],
)
def test_channel_normalization(name, expected):
    assert channels.normalize(name) == expected
    assert channels.STANDARD_1020[channels.position(name)].upper() == expected


def test_channel_list_matches_labram():
    assert len(channels.STANDARD_1020) == 136 and channels.N_USABLE == 128
    assert channels.position("T7") == 37 and channels.position("T3") == 88 and channels.STANDARD_1020[127] == "P8-O2"
    with pytest.raises(channels.ChannelError, match="bipolar derivation"):  # within LaBraM's 128, still refused
        channels.position("P8-O2")


@pytest.mark.parametrize(
    "bad, message", [("XYZ", "unknown EEG channel"), ("C4-P4", "bipolar"), ("Fpz1", "did you mean")]
)
def test_bad_channels(bad, message):
    with pytest.raises(channels.ChannelError, match=message):
        channels.position(bad)


def test_duplicate_sites_refused():
    with pytest.raises(channels.ChannelError, match="same site"):
        channels.positions(["Fp1", "EEG FP1-REF"])


@pytest.fixture()
def eeg_encoder():
    torch.manual_seed(0)
    return encoders.build("tiny_eeg", dim=16, depth=2, heads=2).eval()


def test_eeg_encoder_contract(eeg_encoder):
    x = torch.randn(3, 4, 400) * 20
    out = eeg_encoder(x, channels=NAMES)
    assert out.shape == (3, 16)
    assert len(eeg_encoder.blocks) == 2 and len(eeg_encoder.attention_modules()) == 2
    assert any(n.endswith("qkv.bias") for n, _ in eeg_encoder.bias_parameters())
    # the channel names matter: another montage gives another output
    assert not torch.allclose(out, eeg_encoder(x, channels=["Fp1", "Fp2", "Cz", "O2"]))


@pytest.mark.parametrize(
    "shape, chans, message",
    [
        ((2, 4, 300), NAMES, "whole number"),
        ((2, 4, 3400), NAMES, "longer than"),
        ((2, 3, 400), NAMES, "4 channel names"),
        ((4, 400), NAMES, "shape"),
    ],
)
def test_eeg_input_errors(eeg_encoder, shape, chans, message):
    with pytest.raises(InputSpecError, match=message):
        eeg_encoder(torch.zeros(shape), channels=chans)


def test_video_preprocess_and_encoder():
    enc = encoders.build("tiny_video", dim=16, depth=1, heads=2, frames=4, size=16).eval()
    frames = torch.randint(0, 256, (2, 10, 24, 30, 3), dtype=torch.uint8)
    clip = enc.preprocess(frames)
    assert clip.shape == (2, 3, 4, 16, 16) and clip.dtype == torch.float32
    single = enc.preprocess(frames[0])
    assert torch.allclose(single, clip[0])
    assert enc(clip).shape == (2, 16)
    with pytest.raises(InputSpecError, match="preprocess"):
        enc(torch.zeros(2, 3, 4, 24, 24))


def test_video_preprocess_matches_torchvision_preset():
    """Same numbers as torchvision's VideoClassification transform with the swin3d weights' mean/std."""
    from torchvision.transforms._presets import VideoClassification

    frames = torch.randint(0, 256, (1, 3, 240, 320, 3), dtype=torch.uint8)
    ours = VideoPreprocess(frames=3, size=224, resize=256)(frames)
    reference = VideoClassification(crop_size=(224, 224), resize_size=(256,), mean=KINETICS_MEAN, std=KINETICS_STD)(
        frames.permute(0, 1, 4, 2, 3)
    )
    assert torch.allclose(ours, reference, atol=1e-5)


def test_checkpoint_roundtrip_and_safety(tmp_path, eeg_encoder):
    x = torch.randn(2, 4, 200)
    state = eeg_encoder.state_dict()
    torch.save({"model": state}, tmp_path / "w.pth")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    for name in ("w.pth", "w.safetensors"):
        fresh = encoders.build("tiny_eeg", checkpoint=tmp_path / name, dim=16, depth=2, heads=2).eval()
        assert fresh.load_report.missing == [] and fresh.load_report.unexpected == []
        assert torch.equal(fresh(x, channels=NAMES), eeg_encoder(x, channels=NAMES))
    torch.save({"model": state, "args": object.__new__(Opaque)}, tmp_path / "pickled.pth")
    with pytest.raises(CheckpointError, match="trust_checkpoint"):
        encoders.build("tiny_eeg", checkpoint=tmp_path / "pickled.pth", dim=16, depth=2, heads=2)
    trusted = encoders.build(
        "tiny_eeg", checkpoint=tmp_path / "pickled.pth", trust_checkpoint=True, dim=16, depth=2, heads=2
    )
    assert trusted.load_report.missing == []
    with pytest.raises(CheckpointError, match="does not fit this architecture"):
        encoders.build("tiny_eeg", checkpoint=tmp_path / "w.pth", dim=32, depth=2, heads=2)
    with pytest.raises(CheckpointError, match="does not exist"):
        encoders.build("tiny_eeg", checkpoint=tmp_path / "missing.pth")


class Opaque:
    """An object that torch.load(weights_only=True) refuses to unpickle."""


@pytest.mark.parametrize("name, kwargs", [("tiny_eeg", {}), ("tiny_video", {})])
def test_wrapping_adapters_reach_the_attention(name, kwargs):
    """Attention runs qkv/proj as module calls: a LoRA wrapped around qkv changes the output."""
    import loralib
    import peft

    enc = encoders.build(name, dim=16, depth=1, heads=2, **kwargs).eval()
    x = (torch.randn(2, 4, 200), {"channels": NAMES}) if name == "tiny_eeg" else (torch.randn(2, 3, 8, 32, 32), {})
    base = enc(x[0], **x[1])
    model = peft.inject_adapter_in_model(peft.LoraConfig(r=2, target_modules=["qkv"], init_lora_weights=False), enc)
    assert not torch.allclose(model(x[0], **x[1]), base)

    enc2 = encoders.build(name, dim=16, depth=1, heads=2, **kwargs).eval()
    enc2.load_state_dict({k: v for k, v in enc.state_dict().items() if "lora" not in k}, strict=False)
    attn = enc2.attention_modules()[0][1]
    old = attn.qkv
    attn.qkv = loralib.Linear(old.in_features, old.out_features, r=2)
    attn.qkv.load_state_dict(old.state_dict(), strict=False)
    nn.init.normal_(attn.qkv.lora_B)
    attn.qkv.train()  # unmerged: the update runs through forward()
    assert not torch.allclose(enc2(x[0], **x[1]), base)
