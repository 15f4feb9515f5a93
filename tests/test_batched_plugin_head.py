"""A plugin head joins a batched sweep through its declared hook (`batched_forward`), with no change to
peftzoo: examples/every_kind's glu head, pip-installed as a third party would, trains batched and
equals its ordinary runs."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from peftzoo_engine import seed_everything, train
from peftzoo_engine.rundir import RunDir
from peftzoo_engine.weights import read_state
from peftzoo_tools.sweep.batched import train_batched, unsupported_reason
from recipes import schema
from recipes.compose import compose
from registry.core import Registry
from tests.conftest import tiny_recipe
from tests.test_plugin_examples import plugin_site


@pytest.fixture(scope="module")
def plugin_registry(tmp_path_factory):
    site = str(plugin_site(tmp_path_factory))
    sys.path.insert(0, site)
    try:
        yield Registry([site, *sys.path[1:]])
    finally:
        sys.path.remove(site)


def _recipe(reg, cache, **changes):
    return schema.validate(
        tiny_recipe(
            **{
                "train.epochs": 2,
                "train.log_every": 2,
                "train.cache_dir": str(cache),
                "eeg.head": "glu",
                "video.head": "glu",
                **changes,
            }
        ),
        reg,
    )


def test_the_glu_plugin_head_trains_batched_and_equals_its_ordinary_runs(plugin_registry, tmp_path):
    reg = plugin_registry
    trials = [
        _recipe(reg, tmp_path / "cache", **{"train.lr": 1e-3}),
        _recipe(reg, tmp_path / "cache", **{"train.lr": 3e-3, "train.weight_decay": 0.2}),
    ]
    assert [unsupported_reason(r, reg) for r in trials] == [None, None]
    runs = train_batched(trials, [tmp_path / f"trial-{i}" for i in range(2)], reg)
    for recipe, batched in zip(trials, runs):
        info = json.loads((batched / "run.json").read_text())
        assert info["status"] == "completed" and info["batched_heads"] == {"trials": 2}
        seed_everything(recipe.seed)
        data = reg.build("datasets", recipe.data, seed=recipe.seed)
        run = RunDir(tmp_path / "alone", recipe.name)
        train(recipe, compose(recipe, data, reg), data, run, torch.device("cpu"), reg)
        alone = json.loads((run.path / "run.json").read_text())
        for key, value in alone["final_metrics"].items():
            assert info["final_metrics"][key] == pytest.approx(value, abs=1e-4), key
        got, want = read_state(batched / "trainable.safetensors"), read_state(run.weights_path)
        assert sorted(got) == sorted(want) and any(".norm." in k for k in got)  # the glu head's own LayerNorm
        for name in want:
            torch.testing.assert_close(got[name], want[name], atol=1e-4, rtol=1e-4)


def test_a_head_without_the_hook_stays_out_with_the_reason(plugin_registry, tmp_path):
    import peftzoo_examples.glu_head as glu

    hook = glu.GLUHead.batched_forward
    del glu.GLUHead.batched_forward
    try:
        reason = unsupported_reason(_recipe(plugin_registry, tmp_path), plugin_registry)
    finally:
        glu.GLUHead.batched_forward = hook
    assert reason.startswith("eeg.head glu: GLUHead declares no batched_forward"), reason
