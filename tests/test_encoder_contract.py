"""The encoder contract's optional parts have one implementation (registry/encoder_contract.py): the
built-in base class and strategies reading a plugin encoder get the same answers, by one pinned rule."""

from __future__ import annotations

import torch
from torch import nn

from adapters.strategies import encoder_parts
from registry import encoder_contract


class Plugin(nn.Module):
    """A plugin encoder that does not subclass encoders.base.Encoder: stem, an embedding registered before
    the blocks, two blocks, a final norm."""

    def __init__(self, prefixes=None):
        super().__init__()
        self.stem = nn.Conv1d(2, 4, 3)
        self.time_embed = nn.Parameter(torch.zeros(4))
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
        self.norm = nn.LayerNorm(4)
        if prefixes is not None:
            self.embedding_prefixes = prefixes


def test_layer_ids_rule_without_declared_prefixes_is_registration_order():
    ids = encoder_parts.layer_ids(Plugin())
    assert ids == {
        "time_embed": 0,
        "stem.weight": 0,
        "stem.bias": 0,
        "blocks.0.weight": 1,
        "blocks.0.bias": 1,
        "blocks.1.weight": 2,
        "blocks.1.bias": 2,
        "norm.weight": 3,
        "norm.bias": 3,
    }


def test_layer_ids_rule_with_declared_prefixes_puts_the_rest_on_top():
    """As LaBraM's official optimizer factory: only the declared embeddings are the stem; time_embed is on top."""
    ids = encoder_parts.layer_ids(Plugin(prefixes=("stem.",)))
    assert ids["stem.weight"] == 0 and ids["time_embed"] == 3 and ids["blocks.1.bias"] == 2 and ids["norm.bias"] == 3


def test_built_in_encoders_and_plugins_share_one_implementation(reg):
    for name in ("tiny_eeg", "tiny_video"):
        encoder = reg.build("encoders", {"name": name, "dim": 16, "depth": 2, "heads": 2})
        assert encoder.layer_ids() == encoder_contract.layer_ids(encoder, encoder.blocks, encoder.embedding_prefixes)
        assert encoder_parts.layer_ids(encoder) == encoder.layer_ids()
        assert [n for n, _ in encoder.attention_modules()] == [
            n for n, _ in encoder_contract.attention_modules(encoder)
        ]
        assert [n for n, _ in encoder.bias_parameters()] == [n for n, _ in encoder_contract.bias_parameters(encoder)]
        assert encoder.final_norm() is encoder_contract.final_norm(encoder)
    plugin = Plugin()
    assert encoder_parts.final_norm(plugin) is plugin.norm
    assert [n for n, _ in encoder_parts.bias_parameters(plugin)] == [
        "stem.bias",
        "blocks.0.bias",
        "blocks.1.bias",
        "norm.bias",
    ]
