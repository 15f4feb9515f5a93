"""Hostile checkpoint files: wrapped keys, another model's weights, partial, NaN, and files that are not weights.

Each refusal is one CheckpointError (a UserError: exit 2 from the CLI) naming the file, what is wrong
and the fix; wrapper prefixes are stripped when that makes the keys fit; `strict: false` is the only
way to accept a partial load.
"""

from __future__ import annotations

import logging

import pytest
import torch
import yaml
from safetensors.torch import save_file

import encoders
from encoders.checkpoint import CheckpointError
from tests.conftest import tiny_recipe

ARCH = dict(dim=16, depth=2, heads=2)
NAMES = ["FP1", "FP2", "C3", "C4"]


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(0)
    return encoders.build("tiny_eeg", **ARCH).eval()


def _same_output(model, source) -> bool:
    x = torch.randn(2, len(NAMES), 200, generator=torch.Generator().manual_seed(1))
    return torch.equal(model.eval()(x, channels=NAMES), source(x, channels=NAMES))


def _prefixed(state, prefix):
    return {prefix + k: v for k, v in state.items()}


WRAPPED = [
    ("ddp_module", lambda s: _prefixed(s, "module."), "module."),
    ("lightning_model", lambda s: {"state_dict": _prefixed(s, "model.")}, "model."),
    ("ddp_and_encoder", lambda s: {"model": _prefixed(s, "module.encoder.")}, "module.encoder."),
    ("backbone", lambda s: _prefixed(s, "backbone."), "backbone."),
    ("deepspeed_container", lambda s: {"module": dict(s), "global_steps": 10}, ""),  # DeepSpeed's layout: no key prefix
    ("plain", lambda s: dict(s), ""),
]


@pytest.mark.parametrize("case_id, wrap, prefix", WRAPPED, ids=[c[0] for c in WRAPPED])
def test_wrapper_prefixes_are_stripped_and_logged(tmp_path, caplog, source, case_id, wrap, prefix):
    path = tmp_path / "w.pth"
    torch.save(wrap(source.state_dict()), path)
    with caplog.at_level(logging.INFO, logger="encoders.base"):
        model = encoders.build("tiny_eeg", checkpoint=path, **ARCH)
    assert model.load_report.missing == [] and model.load_report.stripped_prefix == prefix
    assert _same_output(model, source)
    assert (f"stripped the wrapper prefix {prefix!r}" in caplog.text) == bool(prefix)


def _other_model_state():
    """Weights of an unrelated network (keys `0.weight`, `2.bias`, ... of a small MLP)."""
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).state_dict()


def _video_state():
    return encoders.build("tiny_video", dim=16, depth=1, heads=2, frames=4, size=16).state_dict()


REFUSED = [
    (
        "another_model",
        lambda s: _other_model_state(),
        {},
        [
            "leaves",
            "at their random initialization",
            "none of its keys fit",
            "likely the weights of another model",
            "`strict: false`",
        ],
    ),
    ("video_encoder_weights", lambda s: _video_state(), {}, ["does not fit this architecture", "patch_embed"]),
    ("unknown_prefix", lambda s: _prefixed(s, "net."), {}, ["none of its keys fit (the file has e.g. net."]),
    (
        "partial",
        lambda s: {k: v for k, v in s.items() if not k.startswith("blocks.1.")},
        {},
        ["blocks.1.", "another variant or a partial save", "`strict: false`"],
    ),
    (
        "nan_weights",
        lambda s: {**s, "blocks.0.attn.qkv.weight": torch.full_like(s["blocks.0.attn.qkv.weight"], float("nan"))},
        {},
        ["holds NaN or inf weights in blocks.0.attn.qkv.weight"],
    ),
    (
        "inf_weights_partial_allowed",
        lambda s: {"patch_embed.bias": torch.full_like(s["patch_embed.bias"], float("inf"))},
        {"strict": False},
        ["holds NaN or inf weights in patch_embed.bias"],
    ),
    (
        "wrong_shape",
        lambda s: {**s, "blocks.0.attn.qkv.weight": torch.zeros(3, 3)},
        {},
        ["does not fit this architecture"],
    ),
    ("not_a_state_dict", lambda s: [1, 2, 3], {}, ["holds a list, not a state dict"]),
]


@pytest.mark.parametrize("case_id, make, options, fragments", REFUSED, ids=[c[0] for c in REFUSED])
def test_checkpoints_that_do_not_fit_are_refused(tmp_path, source, case_id, make, options, fragments):
    path = tmp_path / "w.pth"
    torch.save(make(source.state_dict()), path)
    with pytest.raises(CheckpointError) as err:
        encoders.build("tiny_eeg", checkpoint=path, **ARCH, **options)
    message = str(err.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_strict_false_accepts_a_partial_load_with_a_warning(tmp_path, caplog, source):
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("blocks.1.")}
    torch.save(state, tmp_path / "w.pth")
    with caplog.at_level(logging.WARNING, logger="encoders.base"):
        model = encoders.build("tiny_eeg", checkpoint=tmp_path / "w.pth", strict=False, **ARCH)
    assert model.load_report.missing and all(k.startswith("blocks.1.") for k in model.load_report.missing)
    assert "missing: blocks.1." in caplog.text
    assert torch.equal(model.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)


class Opaque:
    """An object that torch.load(weights_only=True) refuses to unpickle."""


def _write(path, source, kind):
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if kind == "safetensors":
        save_file(state, path)
    elif kind == "zip":
        torch.save(state, path)
    elif kind == "legacy":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


FORMATS = [
    ("safetensors_named_bin", "w.bin", "safetensors"),
    ("zip_named_safetensors", "w.safetensors", "zip"),
    ("legacy_pickle_named_pt", "w.pt", "legacy"),
    ("safetensors_no_suffix", "weights", "safetensors"),
]


@pytest.mark.parametrize("case_id, name, kind", FORMATS, ids=[c[0] for c in FORMATS])
def test_format_is_told_by_content_not_name(tmp_path, source, case_id, name, kind):
    model = encoders.build("tiny_eeg", checkpoint=_write(tmp_path / name, source, kind), **ARCH)
    assert _same_output(model, source)


def _truncated(tmp_path, source, kind, name):
    full = _write(tmp_path / f"full.{kind}", source, kind).read_bytes()
    path = tmp_path / name
    path.write_bytes(full[: len(full) // 2])
    return path


BAD_FILES = [
    ("empty_pth", lambda t, s: _bytes(t / "w.pth", b""), ["is empty (0 bytes)", "fetch it again"]),
    (
        "text_file",
        lambda t, s: _bytes(t / "w.pth", b"<html><body>404 Not Found</body></html>\n"),
        ["is a text file (it starts '<html>", "give a .safetensors, .pth or .pt"],
    ),
    (
        "git_lfs_pointer",
        lambda t, s: _bytes(t / "w.safetensors", b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n"),
        ["git-lfs pointer", "git lfs pull"],
    ),
    ("truncated_zip", lambda t, s: _truncated(t, s, "zip", "w.pth"), ["is a truncated or damaged torch archive"]),
    (
        "truncated_safetensors",
        lambda t, s: _truncated(t, s, "safetensors", "w.safetensors"),
        ["is a truncated or damaged safetensors file"],
    ),
    (
        "truncated_safetensors_named_bin",
        lambda t, s: _truncated(t, s, "safetensors", "w.bin"),
        ["is a truncated or damaged safetensors file"],
    ),
    ("truncated_legacy_pickle", lambda t, s: _truncated(t, s, "legacy", "w.pth"), ["is truncated or damaged"]),
    (
        "random_bytes",
        lambda t, s: _bytes(t / "w.pth", bytes(range(256)) * 8),
        ["is not a weights file peftzoo can read"],
    ),
    ("npz_archive", lambda t, s: _npz(t / "w.npz"), ["is a zip archive but not a torch checkpoint"]),
    ("directory", lambda t, s: t, ["is a directory; give the path of a weights file"]),
]


def _bytes(path, data):
    path.write_bytes(data)
    return path


def _npz(path):
    import numpy as np

    np.savez(path, a=np.zeros(3))
    return path


@pytest.mark.parametrize("case_id, make, fragments", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_files_that_are_not_weights_say_what_they_are(tmp_path, source, case_id, make, fragments):
    path = make(tmp_path, source)
    with pytest.raises(CheckpointError) as err:
        encoders.build("tiny_eeg", checkpoint=path, **ARCH)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "trust_checkpoint" not in message, "unpickling advice for a file that is not a pickle"
    assert "Errno" not in message


def test_only_a_real_pickle_with_objects_suggests_trust(tmp_path, source):
    torch.save({"model": source.state_dict(), "args": object.__new__(Opaque)}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="trust_checkpoint: true"):
        encoders.build("tiny_eeg", checkpoint=tmp_path / "w.pth", **ARCH)


def _labram_official(source_state, wrap):
    """LaBraM's released layout: {'model': {'student.<key>': ..., 'lm_head.weight': ...}}."""
    inner = {f"student.{k}": v for k, v in source_state.items() if not k.startswith("fc_norm.")}
    inner["lm_head.weight"] = torch.zeros(8, 4)
    return {"model": {wrap + k: v for k, v in inner.items()}}


@pytest.mark.parametrize("wrap", ["", "module."])
def test_labram_official_layout_keeps_loading_also_under_ddp(tmp_path, wrap):
    torch.manual_seed(0)
    src = encoders.build("labram_base", depth=2).eval()
    torch.save(_labram_official(src.state_dict(), wrap), tmp_path / "labram.pth")
    model = encoders.build("labram_base", depth=2, checkpoint=tmp_path / "labram.pth").eval()
    assert sorted(model.load_report.missing) == ["fc_norm.bias", "fc_norm.weight"]
    assert "lm_head.weight" in model.load_report.ignored
    assert model.load_report.stripped_prefix == wrap
    assert torch.equal(model.blocks[1].attn.qkv.weight, src.blocks[1].attn.qkv.weight)


def test_the_run_command_refuses_a_foreign_checkpoint_and_strict_false_is_a_recipe_option(tmp_path, capsys):
    from peftzoo_tools.run import main

    torch.save(_other_model_state(), tmp_path / "other.pth")
    eeg = {"name": "tiny_eeg", "dim": 32, "depth": 1, "heads": 2, "checkpoint": str(tmp_path / "other.pth")}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(tiny_recipe(**{"eeg.encoder": eeg})))
    assert main([str(tmp_path / "r.yaml"), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: tiny_eeg checkpoint") and "set `strict: false` on the encoder" in err, err
    assert not (tmp_path / "runs").exists()
