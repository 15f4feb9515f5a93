"""Dotted overrides: YAML scalars, nested creation, bare component names promoted to mappings."""

from __future__ import annotations

import pytest

from recipes import overrides
from recipes.errors import RecipeError


def test_scalars_are_parsed_as_yaml():
    raw = {"train": {"lr": 1e-3, "epochs": 3}}
    out = overrides.apply(raw, ["train.lr=3e-4", "train.epochs=5", "train.device=cpu", "train.grad_clip_norm=null"])
    assert out["train"] == {"lr": 3e-4, "epochs": 5, "device": "cpu", "grad_clip_norm": None}
    assert raw["train"]["lr"] == 1e-3  # the input is not modified


def test_flow_collections_and_new_sections():
    out = overrides.apply({}, ["eeg.head.hidden=[256, 128]", "data.channels=[Fp1, Cz]"])
    assert out == {"eeg": {"head": {"hidden": [256, 128]}}, "data": {"channels": ["Fp1", "Cz"]}}


def test_bare_component_name_becomes_mapping():
    out = overrides.apply(
        {"eeg": {"strategy": "full", "head": "mlp"}}, ["eeg.strategy.lr_scale=0.1", "eeg.head.name=linear"]
    )
    assert out["eeg"]["strategy"] == {"name": "full", "lr_scale": 0.1}
    assert out["eeg"]["head"] == {"name": "linear"}


def test_list_items_by_index():
    out = overrides.apply(
        {"eeg": {"strategy": ["full", {"name": "x", "r": 4}]}}, ["eeg.strategy.0.lr_scale=0.5", "eeg.strategy.1.r=8"]
    )
    assert out["eeg"]["strategy"] == [{"name": "full", "lr_scale": 0.5}, {"name": "x", "r": 8}]


def test_replace_whole_component():
    out = overrides.apply({"loss": {"name": "clip", "temperature": 0.1}}, ["loss=clip"])
    assert out["loss"] == "clip"


@pytest.mark.parametrize(
    "item, message",
    [
        ("train.lr", "is not key=value"),
        ("=3", "empty key part"),
        ("train..lr=1", "empty key part"),
        ("train.lr={a", "not valid YAML"),
        ("train.lr.sub=1", "train.lr is a value"),
        ("eeg.strategy.x=1", "eeg.strategy is a list; index it"),
        ("eeg.strategy.5=1", "has 1 items, no index 5"),
    ],
)
def test_bad_overrides(item, message):
    with pytest.raises(RecipeError, match=message):
        overrides.apply({"train": {"lr": 1.0}, "eeg": {"strategy": ["full"]}}, [item])


# -- an override that changes a component's name starts it from its defaults (Hydra config-group style)
LORA_QV_COMMAND = [  # the command in lora_qv.yaml's own comment
    "eeg.encoder.checkpoint=ckpts/labram-base.pth",
    "video.encoder.checkpoint=ckpts/swin_tiny_patch244_window877_kinetics400_1k.pth",
    "video.encoder.frames=32",
    "video.encoder.size=224",
    "video.encoder.resize=256",
    "data.name=arrays",
    "data.path=/data/pairs",
]


def test_the_command_in_lora_qv_yaml_comment_validates(reg):
    from recipes import schema

    raw = overrides.apply(schema.read_yaml(schema.resolve("lora_qv.yaml")), LORA_QV_COMMAND)
    assert raw["data"] == {"name": "arrays", "path": "/data/pairs"}
    recipe = schema.validate(raw, reg)
    assert recipe.data.name == "arrays" and recipe.data.val_fraction == 0.2  # the arrays defaults
    assert recipe.video.encoder.frames == 32 and recipe.eeg.encoder.checkpoint == "ckpts/labram-base.pth"


def test_name_change_keeps_only_command_line_options_in_either_order():
    raw = {"name": "r", "data": {"name": "synthetic", "n": 320, "seconds": 4, "val_fraction": 0.3}}
    assert overrides.apply(raw, ["data.val_fraction=0.1", "data.name=arrays", "data.path=/d"])["data"] == {
        "name": "arrays",
        "val_fraction": 0.1,
        "path": "/d",
    }
    assert overrides.apply(raw, ["data.name=synthetic"])["data"] == raw["data"]  # the same name keeps everything
    strategies = {"name": "r", "eeg": {"strategy": [{"name": "lora", "r": 4, "targets": ["q"]}, "bitfit"]}}
    assert overrides.apply(strategies, ["eeg.strategy.0.name=ia3"])["eeg"]["strategy"] == [{"name": "ia3"}, "bitfit"]
    assert overrides.apply(raw, ["name=other"])["data"] == raw["data"]  # the recipe's own name is no component


def test_name_change_runs_on_an_arrays_directory(tmp_path, capsys):
    import yaml

    from peftzoo_tools.run import main
    from tests.arrays_factory import write_arrays
    from tests.conftest import run_dir_in, tiny_recipe

    root = write_arrays(tmp_path / "pairs", n=24, channels=["FP1", "FP2", "C3", "C4"])
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(tiny_recipe(**{"train.epochs": 1})))  # data: synthetic with options
    code = main(
        [
            str(tmp_path / "r.yaml"),
            "data.name=arrays",
            f"data.path={root}",
            "--output-dir",
            str(tmp_path / "runs"),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    written = yaml.safe_load((run_dir_in(tmp_path / "runs") / "recipe.yaml").read_text())
    assert written["data"] == {"name": "arrays", "path": str(root), "val_fraction": 0.2, "drop_nonfinite": False}
