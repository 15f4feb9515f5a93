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
    out = overrides.apply({"eeg": {"strategy": "full", "head": "mlp"}}, ["eeg.strategy.lr_scale=0.1", "eeg.head.name=linear"])
    assert out["eeg"]["strategy"] == {"name": "full", "lr_scale": 0.1}
    assert out["eeg"]["head"] == {"name": "linear"}


def test_list_items_by_index():
    out = overrides.apply({"eeg": {"strategy": ["full", {"name": "x", "r": 4}]}}, ["eeg.strategy.0.lr_scale=0.5", "eeg.strategy.1.r=8"])
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
