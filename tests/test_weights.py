"""Named pretrained weights: the table, the weights cache, `peftzoo weights`, and `pretrained:` in a recipe.

No test uses the network: files are planted in a temporary cache ($PEFTZOO_WEIGHTS), and test rows
are added to the table with the planted file's hash (or a wrong one).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml
from conftest import run_dir_in, run_python, tiny_recipe

import encoders
import registry
from encoders import pretrained
from encoders.weights_table import CHECKPOINTS, Checkpoint
from peftzoo_tools import weights as weights_cli

SMALL_SWIN = {
    "embed_dim": 8,
    "depths": [1, 1],
    "num_heads": [1, 2],
    "window_size": [2, 4, 4],
    "frames": 4,
    "size": 32,
    "drop_path": 0.0,
}
SMALL_LABRAM = {"depth": 1, "embed_dim": 100, "num_heads": 2, "conv_channels": 4, "drop_path": 0.0}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "weights-cache"
    monkeypatch.setenv(pretrained.ENV, str(folder))
    return folder


def plant(monkeypatch, cache, encoder: str, family: str, options: dict, **hashes) -> tuple[Checkpoint, dict]:
    """Save a small encoder's state dict in the cache under a test row's file name; returns (row, weights)."""
    torch.manual_seed(1)
    state = encoders.build(encoder, **options).state_dict()
    cache.mkdir(parents=True, exist_ok=True)
    entry = Checkpoint(
        name=f"test-{family}",
        family=family,
        preset=encoder,
        url="https://example.invalid/w.pth",
        file=f"test-{family}.pth",
        source="tests/test_weights.py",
        description="planted by a test",
    )
    torch.save(state, cache / entry.file)
    digest = pretrained.sha256_file(cache / entry.file)
    entry = dataclasses.replace(entry, **{k: (digest if v == "right" else v) for k, v in hashes.items()})
    monkeypatch.setitem(pretrained.KNOWN, entry.name, entry)
    return entry, state


def test_torchvision_rows_are_torchvision_own_metadata():
    """Nothing in the table is made up: each torchvision row is what torchvision itself publishes."""
    from torchvision.models.video import Swin3D_B_Weights, Swin3D_S_Weights, Swin3D_T_Weights

    published = {
        "swin3d-t-k400": Swin3D_T_Weights.KINETICS400_V1,
        "swin3d-s-k400": Swin3D_S_Weights.KINETICS400_V1,
        "swin3d-b-k400": Swin3D_B_Weights.KINETICS400_V1,
        "swin3d-b-k400-in22k": Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1,
    }
    rows = {c.name: c for c in CHECKPOINTS}
    for name, weights in published.items():
        row = rows[name]
        assert row.url == weights.url and row.url.endswith("/" + row.file)
        assert row.size_mb == weights.meta["_file_size"]
        assert row.file.rsplit("-", 1)[1] == f"{row.sha256_prefix}.pth"  # torch.hub's hash-prefix convention
    assert all(c.sha256 is None for c in CHECKPOINTS), "no publisher gives a full sha256 of these files"


def test_every_preset_default_weights_are_a_known_row_of_its_architecture():
    for family in ("labram", "video_swin"):
        table = __import__(f"encoders.{family}", fromlist=["PRESETS"]).PRESETS
        for name, cls in table.items():
            default = cls.Config.default_pretrained
            if default is None:
                continue
            row = pretrained.KNOWN[default]
            assert (row.family, row.preset) == (family, name)
            assert default in cls.description  # list-registry says which weights `pretrained: true` takes
    for row in CHECKPOINTS:
        assert registry.get("encoders", row.preset).Config.weights_family == row.family


def test_a_planted_checkpoint_loads_by_name_and_its_hash_is_checked(cache, monkeypatch):
    entry, state = plant(monkeypatch, cache, "video_swin", "video_swin", SMALL_SWIN, sha256="right")
    model = encoders.build("video_swin", pretrained=entry.name, **SMALL_SWIN)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    # what is built records the file, so a bundle of it does not need the cache (peftzoo_trained/bundle.py)
    assert model.cfg.checkpoint == str(cache / entry.file) and model.cfg.pretrained is None


def test_a_labram_preset_loads_planted_weights_by_name(cache, monkeypatch):
    entry, state = plant(monkeypatch, cache, "labram_base", "labram", SMALL_LABRAM, sha256_prefix="right")
    model = encoders.build("labram_base", pretrained=entry.name, **SMALL_LABRAM)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_a_hash_mismatch_is_refused_by_build_and_by_verify(cache, monkeypatch, capsys):
    entry, _ = plant(monkeypatch, cache, "video_swin", "video_swin", SMALL_SWIN, sha256="0" * 64)
    with pytest.raises(pretrained.WeightsError) as err:
        encoders.build("video_swin", pretrained=entry.name, **SMALL_SWIN)
    message = str(err.value)
    assert f"but {entry.name}'s publisher gives {'0' * 64}" in message
    assert f"curl -L --fail -o {cache / entry.file} {entry.url}" in message
    assert weights_cli.main(["verify", entry.name]) == 2
    out = capsys.readouterr()
    assert f"{entry.name}: MISMATCH" in out.out and "disagree with the published hash" in out.err


def test_verify_says_ok_for_a_prefix_and_unverified_without_a_published_hash(cache, monkeypatch, capsys):
    entry, _ = plant(monkeypatch, cache, "video_swin", "video_swin", SMALL_SWIN)
    digest = pretrained.sha256_file(cache / entry.file)
    short = dataclasses.replace(entry, sha256_prefix=digest[:8])  # torchvision publishes 8 digits
    monkeypatch.setitem(pretrained.KNOWN, entry.name, short)
    plain = dataclasses.replace(entry, name="test-unpublished")
    monkeypatch.setitem(pretrained.KNOWN, plain.name, plain)
    assert weights_cli.main(["verify"]) == 0
    out = capsys.readouterr().out
    assert f"{entry.name}: ok (sha256 starts with the published {digest[:8]}; " in out
    assert (
        f"test-unpublished: present ({(cache / entry.file).stat().st_size:,} bytes), unverified: no hash is "
        f"published; its sha256 is {digest}" in out
    )
    assert "swin3d-t-k400: missing" in out


def test_list_shows_source_file_size_hash_presence_and_the_download_command(cache, monkeypatch, capsys):
    entry, _ = plant(monkeypatch, cache, "video_swin", "video_swin", SMALL_SWIN)
    assert weights_cli.main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[entry.name]["present"] is True and rows["labram-base"]["present"] is False
    swin = rows["swin3d-t-k400"]
    assert (swin["file"], swin["sha256_prefix"], swin["size_mb"]) == ("swin3d_t-7615ae03.pth", "7615ae03", 121.543)
    assert swin["download"] == (
        f"mkdir -p {cache} && curl -L --fail -o {cache}/swin3d_t-7615ae03.pth "
        f"https://download.pytorch.org/models/swin3d_t-7615ae03.pth"
    )
    assert rows["labram-base"]["url"] == "https://github.com/935963004/LaBraM/raw/main/checkpoints/labram-base.pth"
    assert weights_cli.main(["list"]) == 0
    text = capsys.readouterr().out
    assert f"weights cache: {cache} ($PEFTZOO_WEIGHTS)" in text
    assert "labram-base  [missing]  encoder preset labram_base" in text and f"{entry.name}  [present]" in text
    assert "  sha256    not published" in text and "  sha256    7615ae03... (the publisher gives" in text
    assert weights_cli.main(["where", "swin3d-s-k400"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(cache / "swin3d_s-da41c237.pth") and "curl -L --fail" in out.err


def test_download_fetches_only_when_asked_and_checks_the_hash(cache, monkeypatch, tmp_path, capsys):
    """`weights download` on a file:// address: torch.hub's downloader, no network."""
    source = tmp_path / "published.pth"
    torch.save({"w": torch.arange(4.0)}, source)
    digest = pretrained.sha256_file(source)
    good = Checkpoint(
        name="test-download",
        family="video_swin",
        preset="video_swin",
        url=source.as_uri(),
        file="downloaded.pth",
        source="tests",
        description="a test row",
        sha256=digest,
    )
    monkeypatch.setitem(pretrained.KNOWN, good.name, good)
    assert weights_cli.main(["download", good.name]) == 0
    assert pretrained.sha256_file(cache / "downloaded.pth") == digest
    bad = dataclasses.replace(good, name="test-download-bad", file="bad.pth", sha256="f" * 64)
    monkeypatch.setitem(pretrained.KNOWN, bad.name, bad)
    assert weights_cli.main(["download", bad.name]) == 2
    assert "not the published " + "f" * 64 in capsys.readouterr().err and not (cache / "bad.pth").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"name": "swin3d_t", "pretrained": "swin3d-t-k400", "checkpoint": "x.pth"}, "not both"),
        ({"name": "swin3d_t", "pretrained": "swin3d-t-k40"}, "did you mean 'swin3d-t-k400'?"),
        (
            {"name": "swin3d_t", "pretrained": "labram-base"},
            "holds weights of a labram encoder, not of this video_swin",
        ),
        ({"name": "labram_large", "pretrained": True}, "LaBraM-Large weights were not released"),
    ],
)
def test_wrong_pretrained_options_are_recipe_errors(options, message):
    with pytest.raises(registry.ComponentConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        registry.build("encoders", options)


def test_pretrained_true_takes_the_presets_own_weights(cache):
    with pytest.raises(pretrained.WeightsError, match="pretrained checkpoint 'swin3d-b-k400' is not in the weights"):
        encoders.build("swin3d_b", pretrained=True, frames=4, size=32)


def test_an_offline_run_with_a_missing_checkpoint_is_one_message_and_no_run(tmp_path):
    recipe = tiny_recipe(
        **{
            "video.encoder": {"name": "swin3d_t", "pretrained": "swin3d-t-k400", **SMALL_SWIN},
            "data.height": 40,
            "data.width": 40,
        }
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    cache = tmp_path / "empty-cache"
    result = run_python(
        "-m", "peftzoo_tools.run", str(path), "--output-dir", str(tmp_path / "runs"), env={pretrained.ENV: str(cache)}
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "pretrained checkpoint 'swin3d-t-k400' is not in the weights cache" in lines[0]
    assert f"curl -L --fail -o {cache}/swin3d_t-7615ae03.pth https://download.pytorch.org/models/" in lines[0]
    assert run_dir_in(tmp_path / "runs") is None


def test_the_conformance_kit_without_pytest_says_how_to_install_it():
    hide = (
        "import runpy, sys; sys.modules['pytest'] = None; sys.argv = ['peftzoo_conformance'];"
        "runpy.run_module('peftzoo_conformance', run_name='__main__', alter_sys=True)"
    )
    result = run_python("-c", hide)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the conformance kit runs on pytest"), result.stderr
    assert lines[0].endswith("-m pip install 'pytest>=7.4'")


def test_peftzoo_weights_is_a_subcommand():
    result = run_python(
        "-m", "peftzoo_tools.cli", "weights", "where", "labram-base", env={pretrained.ENV: "/nonexistent/cache"}
    )
    assert result.returncode == 0 and result.stdout.strip() == "/nonexistent/cache/labram-base.pth"
    result = run_python("-m", "peftzoo_tools.cli", "weights", "where", "labram-bas")
    assert result.returncode == 2 and "did you mean 'labram-base'?" in result.stderr


def test_a_run_from_named_weights_records_the_file_and_its_bundle_needs_no_cache(cache, monkeypatch, tmp_path):
    """Trained in-process (the planted row lives in this process): run.json-side metadata names the cache
    file with its sha256, and the exported bundle reloads after the cache is gone."""
    import recipes
    from peftzoo_engine.weights import read_metadata
    from peftzoo_tools.run import main as run_main
    from peftzoo_trained.export import main as export_main

    entry, _ = plant(monkeypatch, cache, "video_swin", "video_swin", SMALL_SWIN, sha256="right")
    recipe = tiny_recipe(
        **{
            "video.encoder": {"name": "video_swin", "pretrained": entry.name, **SMALL_SWIN},
            "video.strategy": {"name": "lora", "targets": ["q", "v"], "r": 2},
            "data.height": 36,
            "data.width": 36,
            "data.n": 64,
            "train.epochs": 1,
        }
    )
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert run_main([str(tmp_path / "recipe.yaml"), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    run = run_dir_in(tmp_path / "runs")
    base = read_metadata(run / "trainable.safetensors")["base_checkpoints"]["video"]
    assert base == {"path": str(cache / entry.file), "sha256": pretrained.sha256_file(cache / entry.file)}
    assert export_main([str(run), "--bundle", str(tmp_path / "bundle")]) == 0
    described = json.dumps(json.loads((tmp_path / "bundle" / "bundle.json").read_text()))
    assert entry.name not in described and entry.file not in described  # neither the name nor the file
    monkeypatch.setenv(pretrained.ENV, str(tmp_path / "no-cache-here"))
    model = recipes.load(tmp_path / "bundle", device="cpu")
    frames = torch.randint(0, 255, (2, 4, 36, 36, 3), dtype=torch.uint8)
    assert model.embed_video(frames).shape == (2, 32)


def test_labram_base_by_name_reads_the_official_layout_without_trusting_pickles(cache):
    """A file laid out as LaBraM's save_model writes labram-base.pth (facts: weights under `model`, the backbone
    under `student.`, pretraining-only keys, optimizer and scaler state, the argparse `args`), planted under the
    real row's name: it loads with weights_only (the Namespace is an allowed record), no trust_checkpoint."""
    import argparse

    torch.manual_seed(2)
    source = encoders.build("labram_base", **SMALL_LABRAM)
    student = {f"student.{k}": v for k, v in source.state_dict().items() if not k.startswith("fc_norm.")}
    student.update(
        {
            "student.mask_token": torch.zeros(1, 1, 100),
            "student.norm.weight": torch.ones(100),
            "student.lm_head.weight": torch.zeros(8, 100),
        }
    )
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))])
    top = {
        "lm_head.weight": torch.zeros(8, 100),
        "projection_head.0.weight": torch.zeros(4, 100),
        "logit_scale": torch.ones(()),
    }
    official = {
        "model": {**student, **top},
        "optimizer": optimizer.state_dict(),
        "epoch": 49,
        "scaler": {"scale": 65536.0, "_growth_tracker": 0},
        "args": argparse.Namespace(model="labram_base_patch200_1600_8k_vocab", lr=5e-4, opt_betas=(0.9, 0.98)),
    }
    cache.mkdir(parents=True)
    torch.save(official, cache / "labram-base.pth")
    model = encoders.build("labram_base", pretrained="labram-base", **SMALL_LABRAM)
    assert model.load_report.missing == ["fc_norm.weight", "fc_norm.bias"]  # as the official fine-tuning load
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in model.state_dict().items() if "fc_norm" not in k)


def test_a_file_torchvision_already_downloaded_is_pointed_at(cache, tmp_path, monkeypatch):
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "swin3d_t-7615ae03.pth").write_bytes(b"planted")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(pretrained.WeightsError) as err:
        encoders.build("swin3d_t", pretrained="swin3d-t-k400", **SMALL_SWIN)
    assert f"ln -s {hub / 'swin3d_t-7615ae03.pth'} {cache / 'swin3d_t-7615ae03.pth'}" in str(err.value)
