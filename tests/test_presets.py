"""Encoder presets are rows of a family table (encoders/presets.py), registered by one entry point each."""

from __future__ import annotations

import pytest
import tomllib
from conftest import ROOT

import encoders
import registry
from encoders import labram, video_swin

FAMILIES = {"encoders.labram": labram, "encoders.video_swin": video_swin}


def test_every_table_row_is_registered_and_every_registration_is_a_row():
    points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["peftzoo.encoders"]
    for module_name, module in FAMILIES.items():
        for name in module.PRESETS:
            line = f'{name} = "{module_name}:PRESETS.{name}"'
            assert points.get(name) == f"{module_name}:PRESETS.{name}", f"add `{line}` to pyproject.toml"
    rows = {f"{m}:PRESETS.{n}" for m, module in FAMILIES.items() for n in module.PRESETS}
    assert {t for t in points.values() if ":PRESETS." in t} == rows


@pytest.mark.parametrize(
    "name, family, numbers",
    [
        ("labram_base", labram.LaBraM, {"embed_dim": 200, "depth": 12, "num_heads": 10, "conv_channels": 8}),
        ("labram_large", labram.LaBraM, {"embed_dim": 400, "depth": 24, "num_heads": 16, "conv_channels": 16}),
        ("labram_huge", labram.LaBraM, {"embed_dim": 800, "depth": 48, "num_heads": 16, "conv_channels": 32}),
        ("swin3d_t", video_swin.VideoSwin, {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24]}),
        ("swin3d_s", video_swin.VideoSwin, {"embed_dim": 96, "depths": [2, 2, 18, 2], "num_heads": [3, 6, 12, 24]}),
        ("swin3d_b", video_swin.VideoSwin, {"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32]}),
    ],
)
def test_a_preset_is_its_family_with_the_rows_numbers_as_defaults(name, family, numbers):
    component = registry.get("encoders", name)
    assert issubclass(component, family) and component.description
    defaults = component.Config.model_validate({})
    assert {k: getattr(defaults, k) for k in numbers} == numbers
    # the numbers are defaults, not fixed: a recipe overrides them (tests build small versions this way)
    with pytest.raises(registry.ComponentConfigError, match="depth"):
        registry.build("encoders", {"name": name, ("depth" if "labram" in name else "depths"): 0})


def test_a_preset_builds_small_and_keeps_its_registry_name():
    model = encoders.build("swin3d_b", depths=[1, 1], num_heads=[2, 4], frames=4, size=32)
    assert model.feature_dim == 256 and model.name == "swin3d_b"  # embed_dim 128 from the row, x2 after one merge
    assert model.cfg.embed_dim == 128


def test_a_new_row_is_one_entry(monkeypatch):
    """Adding a preset is one row (plus its entry-point line): the class, options and checks follow from it."""
    table = dict(labram.PRESETS.table)
    table["labram_tiny"] = labram.Preset("a test row", embed_dim=100, depth=2, num_heads=4, conv_channels=4)
    presets = labram.Presets(labram.LaBraM, table)
    tiny = presets.labram_tiny
    assert tiny.Config.model_validate({}).depth == 2 and tiny.description == "a test row"
    assert tiny.from_config(tiny.Config.model_validate({"drop_path": 0.0})).feature_dim == 100
    with pytest.raises(TypeError, match="has no option 'depht'"):
        labram.Presets(labram.LaBraM, {"bad": labram.Preset("typo", depht=2)})
    with pytest.raises(ValueError, match="embed_dim 100 must equal 25 x conv_channels"):
        labram.Presets(labram.LaBraM, {"bad": labram.Preset("inconsistent", embed_dim=100, conv_channels=8)})


def test_installs_made_before_presets_were_data_still_load():
    """Entry points installed from an older pyproject name the old classes; they are the rows now."""
    assert labram.LaBraMBase is labram.PRESETS.labram_base
    assert video_swin.Swin3DTiny is video_swin.PRESETS.swin3d_t


def test_list_registry_reads_each_rows_description_without_importing_it():
    """registry/_describe.py reads `PRESETS = Presets(Family, {"name": Preset("description", ...)})` from source."""
    from registry._describe import static_description

    for module_name, module in FAMILIES.items():
        for name, component in module.PRESETS.items():
            assert static_description(module_name, f"PRESETS.{name}") == component.description
    assert static_description("encoders.labram", "PRESETS.no_such_row") == ""
    assert static_description("encoders.video_swin", "Swin3DBase") == video_swin.PRESETS.swin3d_b.description
