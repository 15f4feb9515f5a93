"""peft's renaming of a layer it wraps: the one place that knows the rule.

When a peft tuner (LoRA, IA3, LoHa, ...) wraps a layer, the layer's own tensors move one level down,
under `base_layer`: `blocks.0.mlp.fc2.weight` becomes `blocks.0.mlp.fc2.base_layer.weight`, keeping
its requires_grad. Names recorded before the wrap (strategies' reports, the pretrained names, weight
decay declarations) are mapped through these functions.
"""

from __future__ import annotations

from collections.abc import Container, Mapping

BASE_LAYER = "base_layer"


def unwrapped(name: str) -> str:
    """The name a tensor had before peft wrapped its layer (the same name when it was not wrapped)."""
    return name.replace(f".{BASE_LAYER}.", ".")


def wrapped(name: str) -> str:
    """The name a layer's tensor `name` gets once peft wraps that layer."""
    head, _, leaf = name.rpartition(".")
    return f"{head}.{BASE_LAYER}.{leaf}" if head else f"{BASE_LAYER}.{leaf}"


def current(name: str, present: Container[str] | Mapping[str, object]) -> str:
    """`name` as it is now among `present`: its wrapped name when only that exists, else `name`."""
    moved = wrapped(name)
    return moved if name not in present and moved in present else name
