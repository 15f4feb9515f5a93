"""A plugin encoder that has neither `cfg` nor the built-in encoders' parameter names (#10): the
engine trains it, writes the weights metadata, and takes weight decay from its `no_weight_decay()`."""

from __future__ import annotations

import torch
from safetensors import safe_open
from torch import nn

import registry
from adapters.strategies.base import report_for
from peftzoo_engine import param_groups, train
from peftzoo_engine.rundir import RunDir
from recipes import schema
from recipes.compose import compose
from tests.conftest import tiny_recipe


class MinimalEEGEncoder(nn.Module):
    """The least an EEG encoder is: encoder(x, channels=names) -> (B, feature_dim); no cfg."""

    def __init__(self, channels: int, feature_dim: int):
        super().__init__()
        self.mixing = nn.Parameter(torch.eye(channels))  # 2-D, no name rule matches: it decays unless declared
        self.readout = nn.Linear(channels, feature_dim)
        self.feature_dim = feature_dim

    def no_weight_decay(self) -> set[str]:
        return {"mixing"}

    def forward(self, x: torch.Tensor, channels=None) -> torch.Tensor:
        return self.readout(torch.einsum("ij,bjt->bit", self.mixing, x).mean(-1) / 100.0)


def test_a_minimal_plugin_encoder_trains_and_its_metadata_is_written(tmp_path):
    reg = registry.default()
    recipe = schema.validate(tiny_recipe(**{"train.epochs": 1, "train.feature_cache": False}), reg)
    data = reg.build("datasets", recipe.data, seed=0)
    model = compose(recipe, data, reg)
    encoder = MinimalEEGEncoder(len(data.channels), model.eeg.encoder.feature_dim)
    model.eeg.encoder = encoder
    model.eeg.report = report_for("full", encoder, [n for n, _ in encoder.named_parameters()])
    model.ever_trainable = set(model.trainable_parameters())

    groups = param_groups(model, 0.05)
    decayed = {n for g in groups if g["weight_decay"] > 0 for n in g["names"]}
    assert "eeg.encoder.readout.weight" in decayed and "eeg.head.proj.weight" in decayed
    assert "eeg.encoder.mixing" not in decayed  # declared by the module (timm's convention)
    assert "eeg.encoder.readout.bias" not in decayed and "loss.logit_scale" not in decayed  # the rules elsewhere

    run = RunDir(tmp_path / "runs", recipe.name)
    before = encoder.mixing.detach().clone()
    train(recipe, model, data, run, torch.device("cpu"))
    assert not torch.equal(before, encoder.mixing.detach())
    with safe_open(str(run.weights_path), "pt") as f:
        meta = f.metadata()
        assert "eeg.encoder.mixing" in f.keys()  # noqa: SIM118 - safetensors' safe_open has keys() but no __contains__/__iter__
    assert '"eeg": {"path": null, "sha256": null}' in meta["base_checkpoints"]
