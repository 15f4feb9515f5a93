"""Composer: every part from the registry, swaps by recipe edits, frozen towers kept in eval mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adapters.heads.linear import LinearHead
from adapters.heads.mlp import MLPHead
from peftzoo_engine import param_groups
from recipes import schema
from recipes.compose import compose
from tests.conftest import tiny_recipe


def make(reg, **changes):
    recipe = schema.validate(tiny_recipe(**changes), reg)
    data = reg.build("datasets", recipe.data, seed=recipe.seed)
    return recipe, data, compose(recipe, data, reg)


def test_head_only_model(reg):
    _, data, model = make(reg)
    assert isinstance(model.eeg.head, LinearHead) and isinstance(model.video.head, LinearHead)
    assert all(not p.requires_grad for p in model.eeg.encoder.parameters())
    trainable = set(model.trainable_parameters())
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith(("eeg.head", "video.head"))} | {
        "loss.logit_scale"
    }
    model.train()
    assert model.eeg.head.training and not model.eeg.encoder.training and not model.video.encoder.training
    batch = {
        "eeg": torch.from_numpy(data.eeg[:4]),
        "video": torch.from_numpy(data.video[:4]),
        "group": torch.arange(4),
        "index": torch.arange(4),
    }
    e, v, _ = model.embed_batch(batch, torch.device("cpu"))
    assert e.shape == v.shape == (4, 32)
    assert torch.allclose(e.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_swaps_are_recipe_edits(reg):
    _, _, model = make(
        reg,
        **{
            "eeg.head": {"name": "mlp", "hidden": [48]},
            "eeg.strategy": {"name": "full", "lr_scale": 0.1},
            "embed_dim": 24,
        },
    )
    assert isinstance(model.eeg.head, MLPHead) and model.eeg.head.net[1].out_features == 48
    assert all(p.requires_grad for p in model.eeg.encoder.parameters())
    assert all(not p.requires_grad for p in model.video.encoder.parameters())
    model.train()
    assert model.eeg.encoder.training and not model.video.encoder.training
    assert model.eeg.report.num_trainable == sum(p.numel() for p in model.eeg.encoder.parameters())
    scales = {g["lr_scale"] for g in param_groups(model, 0.05) if any(n.startswith("eeg.encoder") for n in g["names"])}
    assert scales == {0.1}


def test_encoder_overrides_change_architecture(reg):
    _, _, model = make(reg, **{"eeg.encoder": {"name": "tiny_eeg", "dim": 48, "depth": 3, "heads": 4}})
    assert model.eeg.encoder.feature_dim == 48 and len(model.eeg.encoder.blocks) == 3
    assert model.eeg.head.proj.in_features == 48


def test_no_weight_decay_on_biases_norms_embeddings_temperature(reg):
    _, _, model = make(reg, **{"eeg.strategy": "full"})
    decayed = {n for g in param_groups(model, 0.05) if g["weight_decay"] > 0 for n in g["names"]}
    assert "eeg.encoder.blocks.0.attn.qkv.weight" in decayed and "eeg.head.proj.weight" in decayed
    for name in (
        "loss.logit_scale",
        "eeg.encoder.channel_embed",
        "eeg.encoder.time_embed",
        "eeg.encoder.fc_norm.weight",
        "eeg.head.proj.bias",
    ):
        assert name not in decayed, name


def test_wrong_data_for_encoder_is_refused_before_training(reg):
    from encoders.base import InputSpecError

    with pytest.raises(InputSpecError, match="250 Hz"):
        make(reg, **{"data.sfreq": 250})


def test_strategy_report_is_checked(reg):
    """A strategy that trains more than it reports is caught by the composer."""
    from adapters.strategies.base import Strategy, StrategyConfig, StrategyReport, apply_strategies

    class Liar(Strategy):
        Config = StrategyConfig

        def apply(self, encoder: nn.Module) -> StrategyReport:
            encoder.requires_grad_(True)
            return StrategyReport(strategy="liar", trainable=[], num_trainable=0, trains_encoder=False)

    encoder = reg.build("encoders", {"name": "tiny_eeg", "dim": 16, "heads": 2, "depth": 1})
    with pytest.raises(RuntimeError, match="unreported"):
        apply_strategies(encoder, [Liar(StrategyConfig())])


def test_lr_scales_by_role_multiply_the_strategys_own(reg):
    """Heads, adapters (added parameters), unfrozen pretrained weights and the loss each take their
    train.lr_scales entry, times what the strategy asks for (full's lr_scale)."""
    from recipes.schema import LrScales

    scales = LrScales(head=2.0, adapter=3.0, encoder=0.1, loss=0.5)
    _, _, model = make(
        reg,
        **{
            "eeg.strategy": {"name": "full", "lr_scale": 0.5},
            "video.strategy": {"name": "lora", "targets": ["q", "v"], "r": 2},
        },
    )
    by_name = {n: (g["role"], g["lr_scale"]) for g in param_groups(model, 0.05, scales) for n in g["names"]}
    assert by_name["eeg.head.proj.weight"] == ("head", 2.0)
    assert by_name["loss.logit_scale"] == ("loss", 0.5)
    assert by_name["eeg.encoder.blocks.0.attn.qkv.weight"] == ("encoder", pytest.approx(0.05))
    lora = [n for n in by_name if n.startswith("video.encoder.")]
    assert lora and all("lora_" in n and by_name[n] == ("adapter", 3.0) for n in lora)


def test_a_peft_wrapped_pretrained_weight_stays_an_encoder_weight(reg):
    """peft moves a targeted layer's weight under base_layer; unfrozen, it is still pretrained."""
    from peftzoo_engine import role

    _, _, model = make(reg, **{"eeg.strategy": [{"name": "last_k", "k": 1}, {"name": "ia3", "targets": ["mlp"]}]})
    roles = {n: role(model, n) for n, p in model.named_parameters() if n.startswith("eeg.encoder.") and p.requires_grad}
    wrapped = [n for n in roles if ".base_layer." in n]
    assert wrapped and all(roles[n] == "encoder" for n in wrapped)
    assert {roles[n] for n in roles if "ia3_" in n} == {"adapter"}
