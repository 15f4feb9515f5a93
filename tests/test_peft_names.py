"""adapters.peft_names holds peft's rule for the names of a layer it wraps; checked against peft itself."""

from __future__ import annotations

import peft
import torch.nn as nn

from adapters import peft_names


def test_the_rule_matches_what_peft_does_to_a_wrapped_layer():
    model = nn.Sequential()
    model.add_module("blocks", nn.ModuleList([nn.Sequential()]))
    model.blocks[0].add_module("fc2", nn.Linear(4, 4))
    model.blocks[0].add_module("norm", nn.LayerNorm(4))
    before = [n for n, _ in model.named_parameters()]
    peft.inject_adapter_in_model(peft.LoraConfig(r=2, target_modules=["fc2"]), model)
    after = dict(model.named_parameters())

    now = {n: peft_names.current(n, after) for n in before}
    assert now == {
        "blocks.0.fc2.weight": "blocks.0.fc2.base_layer.weight",
        "blocks.0.fc2.bias": "blocks.0.fc2.base_layer.bias",
        "blocks.0.norm.weight": "blocks.0.norm.weight",
        "blocks.0.norm.bias": "blocks.0.norm.bias",
    }
    assert all(name in after for name in now.values())
    assert {peft_names.unwrapped(n) for n in after if "lora_" not in n} == set(before)
    assert peft_names.wrapped("blocks.0.fc2.weight") == "blocks.0.fc2.base_layer.weight"
