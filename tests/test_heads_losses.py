"""Heads (no activation at either end of an MLP) and the CLIP loss against direct computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid)


@pytest.mark.parametrize(
    "options", [{}, {"hidden": [16]}, {"hidden": [32, 16], "activation": "relu", "dropout": 0.1}, {"layer_norm": True}]
)
def test_mlp_never_begins_or_ends_with_an_activation(reg, options):
    head = reg.build("heads", {"name": "mlp", **options}, in_dim=24, out_dim=8)
    layers = [m for m in head.net if not isinstance(m, nn.Dropout)]
    assert isinstance(layers[0], nn.Linear)
    assert not isinstance(layers[-1], ACTIVATIONS)
    assert isinstance(layers[-1], (nn.Linear, nn.LayerNorm))
    x = torch.randn(64, 24)
    y = head.eval()(x)
    assert y.shape == (64, 8)
    assert (y < 0).any(), "outputs pinned to the positive orthant"


def test_linear_head(reg):
    head = reg.build("heads", "linear", in_dim=10, out_dim=4)
    x = torch.randn(5, 10)
    assert torch.allclose(head.eval()(x), x @ head.proj.weight.t() + head.proj.bias)


def _embeddings(n=16, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=-1), F.normalize(torch.randn(n, d, generator=g), dim=-1)


def test_clip_loss_matches_symmetric_cross_entropy(reg):
    loss = reg.build("losses", "clip")
    e, v = _embeddings()
    logits = (1 / 0.07) * e @ v.t()
    labels = torch.arange(len(e))
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
    assert torch.allclose(loss(e, v), expected, atol=1e-5)
    assert math.isclose(loss.log_values()["logit_scale"], 1 / 0.07, rel_tol=1e-5)


def test_clip_label_smoothing_matches_torch_without_groups(reg):
    loss = reg.build("losses", {"name": "clip", "label_smoothing": 0.1, "temperature": 0.2})
    e, v = _embeddings()
    logits = 5.0 * e @ v.t()
    labels = torch.arange(len(e))
    expected = (
        F.cross_entropy(logits, labels, label_smoothing=0.1) + F.cross_entropy(logits.t(), labels, label_smoothing=0.1)
    ) / 2
    assert torch.allclose(loss(e, v), expected, atol=1e-5)


def test_same_group_pairs_are_not_negatives(reg):
    loss = reg.build("losses", "clip")
    e, v = _embeddings(n=6)
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    scale = 1 / 0.07
    rows = []
    for logits in (scale * e @ v.t(), scale * v @ e.t()):
        for i in range(6):
            keep = [j for j in range(6) if j == i or groups[j] != groups[i]]
            rows.append(-torch.log_softmax(logits[i, keep], dim=0)[keep.index(i)])
    expected = torch.stack(rows).mean()
    assert torch.allclose(loss(e, v, groups), expected, atol=1e-5)
    fixed = reg.build("losses", {"name": "clip", "mask_same_group": False})
    assert not torch.allclose(fixed(e, v, groups), expected)


def test_temperature_is_clamped_and_can_be_fixed(reg):
    loss = reg.build("losses", "clip")
    with torch.no_grad():
        loss.logit_scale.fill_(10.0)
    loss.after_optimizer_step()
    assert math.isclose(float(loss.scale().detach()), 100.0, rel_tol=1e-5)
    fixed = reg.build("losses", {"name": "clip", "learnable_temperature": False})
    assert not fixed.logit_scale.requires_grad


def test_siglip_matches_a_direct_computation(reg):
    loss = reg.build("losses", "siglip")
    e, v = _embeddings(n=6)
    groups = torch.tensor([0, 0, 1, 2, 3, 4])
    total = 0.0
    for i in range(6):
        for j in range(6):
            if i != j and groups[i] == groups[j]:
                continue
            z = 10.0 * float(e[i] @ v[j]) - 10.0
            label = 1.0 if i == j else -1.0
            total += -math.log(1 / (1 + math.exp(-label * z)))
    assert math.isclose(float(loss(e, v, groups).detach()), total / 6, rel_tol=1e-5)
    values = loss.log_values()
    assert set(values) == {"logit_scale", "logit_bias", "train/masked_share"}
    assert math.isclose(values["train/masked_share"], 2 / 30)  # pairs 0 and 1 share a stimulus: 2 of 30 logits
    assert "train/masked_share" not in loss.log_values()  # counted since the last log line only
