"""Strategy options that would train nothing or the wrong layer, and strategy pairs whose order mattered.

Each recipe case is one located message, exit 2, no run directory; a strategy (other than head_only)
that trains nothing is refused by the composer; two adapters on one layer are one StrategyError in
either order.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from torch import nn

import registry
from adapters.strategies.base import Strategy, StrategyError, apply_strategies, report_for
from tests.conftest import tiny_recipe

LABRAM = {"name": "labram_base", "depth": 2}

CASES = [
    (
        "lora_layers_empty",
        {"eeg.strategy": {"name": "lora", "layers": []}},
        ["eeg.strategy.layers: layers is empty, so nothing would be adapted"],
    ),
    (
        "prefix_layers_empty",
        {"eeg.encoder": LABRAM, "eeg.strategy": {"name": "prefix", "layers": []}},
        ["eeg.strategy.layers: layers is empty"],
    ),
    (
        "prefix_layer_beyond_depth",
        {"eeg.encoder": LABRAM, "eeg.strategy": {"name": "prefix", "layers": [20]}},
        ["eeg.strategy: prefix: layers [20] do not exist; labram_base has 2 blocks (0..1, or -2..-1 from the end)"],
    ),
    (
        "prefix_negative_beyond_depth",
        {"eeg.encoder": LABRAM, "eeg.strategy": {"name": "prefix", "layers": [-3]}},
        ["prefix: layers [-3] do not exist"],
    ),
    (
        "lora_layer_beyond_depth",
        {"eeg.strategy": {"name": "lora", "layers": [0, 5]}},
        ["eeg.strategy: lora: layers [5] do not exist; tiny_eeg has 1 blocks"],
    ),
    (
        "ia3_layers_empty",
        {"eeg.strategy": {"name": "ia3", "layers": []}},
        ["eeg.strategy: ia3: layers is empty, so it would adapt nothing"],
    ),
    (
        "last_k_zero",
        {"eeg.strategy": {"name": "last_k", "k": 0}},
        ["eeg.strategy: last_k trains nothing in this encoder with these options", "use head_only"],
    ),
    (
        "last_k_zero_on_video",
        {
            "video.encoder": {"name": "tiny_video", "dim": 32, "depth": 1, "heads": 2, "frames": 4, "size": 16},
            "video.strategy": {"name": "last_k", "k": 0},
        },
        ["video.strategy: last_k trains nothing"],
    ),
]


@pytest.mark.parametrize("case_id, changes, fragments", CASES, ids=[c[0] for c in CASES])
def test_strategy_options_that_train_nothing_or_the_wrong_layer(tmp_path, capsys, case_id, changes, fragments):
    from peftzoo_tools.run import main

    (tmp_path / "r.yaml").write_text(yaml.safe_dump(tiny_recipe(**changes)))
    code = main([str(tmp_path / "r.yaml"), "--output-dir", str(tmp_path / "runs"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert not (tmp_path / "runs").exists()


class Gain(nn.Module):
    """A plugin's adapter: wraps a layer and scales its output by a learned gain."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.gain = inner, nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.inner(x) * self.gain


class GainOnProj(Strategy):
    """A plugin strategy that knows nothing of lora: it wraps every attention's output projection."""

    def __init__(self):
        super().__init__(Strategy.Config(), name="gain")

    def apply(self, encoder):
        for block in encoder.blocks:
            block.attn.proj = Gain(block.attn.proj)
        names = [n for n, _ in encoder.named_parameters() if n.endswith(".gain")]
        for n in names:
            encoder.get_parameter(n).requires_grad_(True)
        return report_for(self.name, encoder, names)


class FreezeAll(Strategy):
    """A plugin strategy that trains a new scalar and freezes everything else (also what others train)."""

    def __init__(self):
        super().__init__(Strategy.Config(), name="freezer")

    def apply(self, encoder):
        encoder.requires_grad_(False)
        encoder.register_parameter("freezer_scale", nn.Parameter(torch.ones(1)))
        return report_for(self.name, encoder, ["freezer_scale"])


def _tiny_eeg():
    return registry.build("encoders", {"name": "tiny_eeg", "dim": 16, "depth": 2, "heads": 2})


@pytest.mark.parametrize("backend", ["peft", "loralib"])
def test_two_adapters_on_one_layer_are_refused_in_either_order(backend):
    lora = {"name": "lora", "targets": ["o"], "backend": backend}
    with pytest.raises(
        StrategyError,
        match=r"gain replaced layers that lora adapted \(blocks\.0\.attn\.proj\..*one layer carries one adapter",
    ):
        apply_strategies(_tiny_eeg(), [registry.build("strategies", lora), GainOnProj()])
    with pytest.raises(
        StrategyError,
        match=r"lora: blocks\.0\.attn\.proj already carries an adapter from an earlier strategy \(gain wraps",
    ):
        apply_strategies(_tiny_eeg(), [GainOnProj(), registry.build("strategies", lora)])


def test_a_strategy_that_freezes_what_an_earlier_one_trains_is_refused():
    with pytest.raises(StrategyError, match="freezer froze parameters that bitfit trains"):
        apply_strategies(_tiny_eeg(), [registry.build("strategies", "bitfit"), FreezeAll()])


def test_a_plugin_strategy_that_trains_nothing_is_refused_but_head_only_is_not():
    class Idle(Strategy):
        def apply(self, encoder):
            return report_for(self.name, encoder, [])

    with pytest.raises(StrategyError, match="idle trains nothing in this encoder"):
        apply_strategies(_tiny_eeg(), [Idle(Strategy.Config(), name="idle")])
    report = apply_strategies(_tiny_eeg(), [registry.build("strategies", "head_only")])
    assert not report.trains_encoder


def test_the_log_tells_adapter_parameters_from_unfrozen_encoder_weights():
    enc = _tiny_eeg()
    enc.pretrained_parameter_names = frozenset(n for n, _ in enc.named_parameters())  # as the composer sets it
    report = apply_strategies(
        enc,
        [
            registry.build("strategies", {"name": "lora", "targets": ["q", "v"], "r": 2}),
            registry.build("strategies", {"name": "last_k", "k": 1}),
        ],
    )
    adapters = sum(p.numel() for n, p in enc.named_parameters() if "lora_" in n)
    assert report.num_adapter == adapters > 0
    assert (
        f"{adapters:,} adapter parameters + {report.num_trainable - adapters:,} unfrozen encoder parameters"
        in report.summary()
    )


def test_the_up_front_stage_check_leaves_the_run_as_it_was(tmp_path):
    """recipes.preflight.check_stages builds a second model to apply every stage's strategies (a
    stage that cannot apply is refused before the run directory exists: tests/test_stages.py); the
    run trains exactly as without the check."""
    from peftzoo_tools.run import main
    from recipes import preflight
    from tests.conftest import run_dir_in

    lora = {"name": "lora", "targets": ["q", "v"], "r": 2}
    recipe = tiny_recipe(**{"eeg.strategy": lora})
    del recipe["train"]["epochs"]
    recipe["train"]["stages"] = [{"epochs": 1}, {"epochs": 1, "eeg": {"strategy": [lora, "bitfit"]}}]
    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main([str(path), "--output-dir", str(tmp_path / "a"), "--quiet"]) == 0
    original, preflight.check_stages = preflight.check_stages, lambda *a, **k: None
    try:
        assert main([str(path), "--output-dir", str(tmp_path / "b"), "--quiet"]) == 0
    finally:
        preflight.check_stages = original

    def losses(run: str) -> list[tuple]:
        lines = map(json.loads, (run_dir_in(tmp_path / run) / "metrics.jsonl").read_text().splitlines())
        return [
            (x["step"], x.get("train/loss"), x.get("val/eeg_to_video/R@1"))
            for x in lines
            if x["type"] in ("train", "eval")
        ]

    assert losses("a") == losses("b")
