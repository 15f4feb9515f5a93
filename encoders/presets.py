"""Encoder presets as data: a named architecture of a family (numbers, default weights, description).

A family module keeps one table, e.g. encoders/labram.py:

    PRESETS = Presets(LaBraM, {
        "labram_base": Preset("LaBraM-Base EEG transformer ...", pretrained="labram-base"),
        "labram_large": Preset("LaBraM-Large ...", embed_dim=400, depth=24, num_heads=16, conv_channels=16),
    })

and each preset is registered by an entry point at its table row (`labram_base =
"encoders.labram:PRESETS.labram_base"`), so it is listed, checked and reported like any component;
list-registry reads the row's description from the source without importing it
(registry/_describe.py). A preset builds the family's class with the row's numbers as its option
defaults: a recipe may still override any of them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic import create_model

from encoders.base import Encoder
from encoders.pretrained import PretrainedConfig


@dataclasses.dataclass(frozen=True, init=False)
class Preset:
    """One row: a description, the family's option defaults it changes, and its own published weights."""

    description: str
    options: Mapping[str, Any]
    pretrained: str | None
    no_weights_reason: str

    def __init__(self, description: str, *, pretrained: str | None = None, no_weights: str = "", **options: Any):
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "options", dict(options))
        object.__setattr__(self, "pretrained", pretrained)
        object.__setattr__(self, "no_weights_reason", no_weights or "no weights are published for it")


def _class_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def preset_config(family_config: type, name: str, preset: Preset) -> type:
    """`family_config` with the preset's numbers as defaults (each field keeps its type and bounds)."""
    fields: dict[str, Any] = {}
    for key, value in preset.options.items():
        if key not in family_config.model_fields:
            raise TypeError(f"preset {name!r}: {family_config.__name__} has no option {key!r}")
        info = copy.copy(family_config.model_fields[key])
        info.default, info.default_factory = value, None
        fields[key] = (info.annotation, info)
    namespace: dict[str, Any] = {"__doc__": f"Options of the {name} preset: {preset.description}."}
    config = create_model(
        f"{_class_name(name)}Config",
        __base__=family_config,
        __module__=family_config.__module__,
        __doc__=namespace["__doc__"],
        **fields,
    )
    if issubclass(config, PretrainedConfig):
        config.default_pretrained = preset.pretrained
        config.no_weights_reason = preset.no_weights_reason
    config.model_validate({})  # the row's numbers pass the family's own checks (a typo in a table fails at import)
    return config


def preset_class(family: type[Encoder], name: str, preset: Preset, table: str = "PRESETS") -> type[Encoder]:
    """The family's class with the preset's defaults and description, named after the preset.

    Its qualified name is `<table>.<name>`, so pickle finds it where the entry point does.
    """
    attrs = {
        "__module__": family.__module__,
        "__qualname__": f"{table}.{name}",
        "__doc__": f"{name}: {preset.description}.",
        "description": preset.description,
        "Config": preset_config(family.Config, name, preset),
        "preset": preset,
        # its small build for the conformance kit is the family's: strategies are checked there once
        "conformance_reference": False,
    }
    return type(_class_name(name), (family,), attrs)


class Presets:
    """A family's presets by name, as attributes (entry points address `PRESETS.<name>`)."""

    def __init__(self, family: type[Encoder], table: Mapping[str, Preset], attribute: str = "PRESETS"):
        """`attribute`: the module attribute this object is kept under (where entry points and pickle look)."""
        self.family = family
        self.table = dict(table)
        self._classes = {name: preset_class(family, name, preset, attribute) for name, preset in self.table.items()}

    def __getattr__(self, name: str) -> type[Encoder]:
        try:
            return self.__dict__["_classes"][name]
        except KeyError:
            raise AttributeError(f"{self.__dict__.get('family', '?')} has no preset {name!r}") from None

    def __iter__(self):
        return iter(self._classes)

    def items(self):
        return self._classes.items()
