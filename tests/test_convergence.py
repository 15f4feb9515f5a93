"""Every built-in strategy's bundled recipe learns: validation R@1 eeg->video of at least 5x chance.

Each recipe trains in-process on its synthetic data with overrides that only make it smaller for a
CPU (fewer, narrower encoder blocks; shorter EEG windows; fewer, smaller frames); its strategies and
their options, heads, loss, lr, optimizer and epochs stay the recipe's (checked).
Planted bugs must fail the same check, so it is not one that an untrained model passes.
"""

from __future__ import annotations

import pytest
import torch

import peftzoo_engine.grouping
import registry
from peftzoo_engine import seed_everything, train
from peftzoo_engine.rundir import RunDir
from recipes import overrides, schema
from recipes.compose import compose

DISTRIBUTION = "peftzoo"  # built-in components are the entry points of this distribution
FACTOR = 5  # R@1 must reach this multiple of chance (1 / validation pairs)

# Size-only overrides per encoder family (by name prefix), the data's frames following the video encoder's.
SHRINK = {
    "labram_": [
        "eeg.encoder.depth=3",
        "eeg.encoder.embed_dim=100",
        "eeg.encoder.conv_channels=4",
        "eeg.encoder.num_heads=5",
        "data.seconds=2",
    ],
    "swin3d_": [
        "video.encoder.embed_dim=24",
        "video.encoder.depths=[1,1,1,1]",
        "video.encoder.num_heads=[1,2,4,8]",
        "video.encoder.frames=4",
        "video.encoder.size=32",
        "video.encoder.resize=36",
        "data.frames=4",
        "data.height=36",
        "data.width=36",
    ],
}


def shrink(raw: dict) -> list[str]:
    """The SHRINK overrides for the encoders `raw` names (none for the tiny encoders)."""
    encoders = [raw[side]["encoder"] for side in ("eeg", "video")]
    names = [e if isinstance(e, str) else e["name"] for e in encoders]
    return [item for prefix, items in SHRINK.items() if any(n.startswith(prefix) for n in names) for item in items]


def without_sizes(recipe) -> dict:
    """The resolved recipe less the sections SHRINK may change (data, encoders): what training must keep."""
    out = recipe.model_dump(mode="json", exclude={"data"})
    for side in ("eeg", "video"):
        out[side].pop("encoder")
    return out


def assert_learns(recipe_name: str, tmp_path, *extra: str) -> dict:
    """Train bundled `recipe_name` shrunk (plus `extra` overrides) on CPU; assert R@1 >= FACTOR x chance."""
    reg = registry.default()
    raw = schema.read_yaml(schema.resolve(recipe_name))
    full, small = (schema.validate(overrides.apply(raw, items), reg, source=recipe_name) for items in ([], shrink(raw)))
    assert without_sizes(small) == without_sizes(full), "SHRINK changed more than sizes"
    recipe = schema.validate(overrides.apply(raw, [*shrink(raw), *extra]), reg, source=recipe_name)
    seed_everything(recipe.seed)
    data = reg.build("datasets", recipe.data, seed=recipe.seed)
    model = compose(recipe, data, reg)
    # The heads alone reach far above chance here, so R@1 cannot show that an adapter trained:
    # every encoder tensor its strategy made trainable must have moved too.
    before = {n: p.detach().clone() for n, p in model.eeg.encoder.named_parameters() if p.requires_grad}
    metrics = train(recipe, model, data, RunDir(tmp_path / "runs", recipe.name), torch.device("cpu"), reg)
    r1, chance = metrics["val/eeg_to_video/R@1"], metrics["val/chance_R@1"]
    print(f"{recipe_name} {' '.join(extra)}: val R@1 eeg->video {r1:.3f} = {r1 / chance:.1f} x chance ({chance:.4f})")
    assert r1 >= FACTOR * chance, (
        f"{recipe_name} did not learn: val R@1 eeg->video {r1:.3f} is {r1 / chance:.1f} x chance {chance:.4f}, "
        f"below {FACTOR}x (R@5 {metrics['val/eeg_to_video/R@5']:.3f}, val/loss {metrics['val/loss']:.3f})"
    )
    unchanged = sorted(n for n, p in model.eeg.encoder.named_parameters() if n in before and torch.equal(p, before[n]))
    assert not unchanged, (
        f"{recipe_name}: the strategy's encoder parameters did not train: {unchanged[:3]} "
        f"({len(unchanged)} of {len(before)})"
    )
    return metrics


def eeg_strategies(raw: dict) -> set[str]:
    spec = raw["eeg"].get("strategy", "head_only")
    return {s if isinstance(s, str) else s["name"] for s in (spec if isinstance(spec, list) else [spec])}


def cases() -> list:
    """(strategy, bundled recipe) for every built-in strategy and each bundled recipe whose EEG side uses
    it (the video side of the bundled recipes is the frozen, cached one); (strategy, None) where none does."""
    builtin = sorted({e.name for e in registry.default().entries("strategies") if e.distribution == DISTRIBUTION})
    uses = {name: eeg_strategies(schema.read_yaml(schema.resolve(name))) for name in schema.bundled_names()}
    out = []
    for strategy in builtin:
        names = [name for name, used in uses.items() if strategy in used] or [None]
        out += [
            pytest.param(strategy, n, id=f"{strategy}-{n.removesuffix('.yaml') if n else 'missing'}") for n in names
        ]
    return out


@pytest.mark.parametrize(("strategy", "recipe_name"), cases())
def test_bundled_recipe_of_every_builtin_strategy_learns(tmp_path, strategy, recipe_name):
    if recipe_name is None:
        pytest.fail(
            f"built-in strategy {strategy!r} has no bundled recipe: add recipes/bundled/<name>.yaml with "
            f"eeg.strategy {strategy} (model it on lora_qv.yaml) so that it is shown to learn"
        )
    assert_learns(recipe_name, tmp_path)


REAL_PARAM_GROUPS = peftzoo_engine.grouping.param_groups


def optimizer_of_copies(*args, **kwargs) -> list[dict]:
    """peftzoo_engine.grouping.param_groups with copies of the parameters: models adapters and heads silently
    not trained, as when the model is rebuilt, re-wrapped or reloaded after its optimizer was made.
    Every step still runs and gradients reach the model; nothing it computes with ever changes."""
    groups = REAL_PARAM_GROUPS(*args, **kwargs)
    for group in groups:
        group["params"] = [p.detach().clone().requires_grad_() for p in group["params"]]
    return groups


def optimizer_without_encoders(*args, **kwargs) -> list[dict]:
    """peftzoo_engine.grouping.param_groups leaving out the encoders' parameters: models adapters that silently do
    nothing while the heads train (e.g. a strategy whose parameters never reach the optimizer)."""
    groups = REAL_PARAM_GROUPS(*args, **kwargs)
    return [g for g in groups if not any(".encoder." in n for n in g["names"])]


def test_an_adapter_left_out_of_training_fails_the_check(tmp_path, monkeypatch):
    """The heads alone learn this data, so this bug keeps R@1 high; the check must still catch it."""
    monkeypatch.setattr(peftzoo_engine.grouping, "param_groups", optimizer_without_encoders)
    with pytest.raises(AssertionError, match="did not train"):
        assert_learns("lora_qv.yaml", tmp_path)


@pytest.mark.parametrize("recipe_name", ["lora_qv.yaml", "head_only_labram_swin.yaml"])
@pytest.mark.parametrize("bug", ["lr_zero", "optimizer_of_copies"])
def test_planted_bugs_fail_the_check(tmp_path, monkeypatch, bug, recipe_name):
    """The check above is only worth something if a model that does not train fails it."""
    if bug == "optimizer_of_copies":
        monkeypatch.setattr(peftzoo_engine.grouping, "param_groups", optimizer_of_copies)
    with pytest.raises(AssertionError, match="did not learn"):
        assert_learns(recipe_name, tmp_path, *(["train.lr=0"] if bug == "lr_zero" else []))
