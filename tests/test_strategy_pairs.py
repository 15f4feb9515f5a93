"""Every ordered pair of built-in strategies that the composer accepts trains to the end (#9.4), as
two training stages and composed on one side, on a tiny encoder for one tiny epoch each. A pair the
composer refuses must be refused with a UserError (a located message), never crash."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from safetensors.torch import load_file

import registry
from peftzoo_engine import train
from peftzoo_engine.rundir import RunDir
from recipes import schema
from recipes.compose import compose
from registry.errors import UserError
from tests.conftest import tiny_recipe

TINY = {
    "data.n": 20,
    "data.frames": 2,
    "data.height": 8,
    "data.width": 8,
    "data.val_fraction": 0.2,
    "train.batch_size": 16,
    "train.feature_cache": False,  # 16 training pairs: one step per epoch
    "eeg.encoder": {"name": "tiny_eeg", "dim": 16, "depth": 1, "heads": 2},
    "video.encoder": {"name": "tiny_video", "dim": 16, "depth": 1, "heads": 2, "frames": 2, "size": 8},
    "embed_dim": 16,
}


def built_in_strategies() -> list[str]:
    reg = registry.default()
    return [n for n in reg.names("strategies") if reg.get("strategies", n).__module__.startswith("adapters.")]


def recipe_for(first: str, second: str, as_stages: bool) -> dict:
    if not as_stages:
        return tiny_recipe(**TINY, **{"eeg.strategy": [first, second], "train.epochs": 1})
    recipe = tiny_recipe(**TINY, **{"eeg.strategy": first})
    del recipe["train"]["epochs"]
    recipe["train"]["stages"] = [{"epochs": 1}, {"epochs": 1, "eeg": {"strategy": second}}]
    return recipe


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine run fastest on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("as_stages", [True, False], ids=["stages", "composed"])
def test_every_accepted_pair_of_strategies_trains_to_the_end(tmp_path, one_thread, as_stages):
    reg = registry.default()
    names = built_in_strategies()
    assert {"lora", "ia3", "last_k", "bitfit", "full", "adalora"} <= set(names)
    trained, refused = [], []
    for first, second in itertools.permutations(names, 2):
        run = None
        try:
            recipe = schema.validate(recipe_for(first, second, as_stages), reg)
            data = reg.build("datasets", recipe.data, seed=0)
            model = compose(recipe, data, reg)
            run = RunDir(tmp_path / f"{first}-{second}", recipe.name)
            train(recipe, model, data, run, torch.device("cpu"), reg)
        except UserError as exc:
            refused.append((first, second, str(exc)))
            continue
        info = json.loads((run.path / "run.json").read_text())
        assert info["status"] == "completed" and info["steps"] == (2 if as_stages else 1), (first, second)
        saved = load_file(str(run.weights_path))
        assert set(saved) == model.ever_trainable, (first, second)
        trained.append((first, second))
    assert trained  # the composer accepts many pairs; each of them trained
    if as_stages:
        assert ("last_k", "ia3") in trained and ("bitfit", "adalora") in trained and ("full", "loha") in trained
    print(f"{len(trained)} pairs trained, {len(refused)} refused")


def test_full_in_a_later_stage_leaves_earlier_adapters_frozen():
    """#9.13: `full` trains every pretrained weight; adapters of earlier stages stay frozen
    (docs/guides/training.md, Stages)."""
    from recipes.compose import stage_plan, switch_stage

    reg = registry.default()
    recipe = schema.validate(recipe_for("lora", "full", as_stages=True), reg)
    model = compose(recipe, reg.build("datasets", recipe.data, seed=0), reg)
    first, second = stage_plan(recipe)
    switch_stage(model, first, reg, 1)
    adapters = {n for n, p in model.eeg.encoder.named_parameters() if p.requires_grad}
    assert adapters and all("lora_" in n for n in adapters)
    switch_stage(model, second, reg, 1)
    now = {n for n, p in model.eeg.encoder.named_parameters() if p.requires_grad}
    assert not now & adapters
    pretrained = {n.replace(".base_layer.", ".") for n in now}
    assert pretrained == set(model.eeg.encoder.pretrained_parameter_names)
