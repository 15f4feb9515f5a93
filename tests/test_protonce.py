"""The `protonce` loss: its forward, k-means and concentrations against direct computations, warm-up,
resume state, gradients, and building from a recipe."""

from __future__ import annotations

import io
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from peftzoo_model.losses.protonce import ProtoNCELoss, concentrations, spherical_kmeans
from recipes.errors import RecipeError
from tests.conftest import tiny_recipe

DIM = 8


def _unit(n: int, d: int = DIM, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def _clustered_loss(reg, n: int = 40, **options) -> tuple[ProtoNCELoss, torch.Tensor]:
    """A loss past warm-up, clustered on n known pairs whose dataset indices are 5, 8, 11, ..."""
    loss = reg.build("losses", {"name": "protonce", "num_clusters": [3, 5], "warmup_epochs": 1, **options})
    index = torch.arange(n) * 3 + 5
    loss.start_epoch(2, _unit(n, seed=1), _unit(n, seed=2), index)
    return loss, index


def _pairs(n: int = 6, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    return _unit(n, seed=seed), _unit(n, seed=seed + 1)


def test_forward_matches_loops_over_pairs_and_prototypes(reg):
    loss, index = _clustered_loss(reg, proto_weight=0.5)
    eeg, video = _pairs()
    batch_index = torch.tensor(
        [int(index[0]), int(index[7]), 1000, int(index[12]), 6, int(index[39])]
    )  # 1000, 6: not clustered
    groups = torch.tensor([0, 0, 1, 2, 3, 3])
    state = loss.get_extra_state()
    row_of = {int(i): r for r, i in enumerate(index)}
    per_k = []
    for clustering in state["clusterings"]:
        directions = []
        for queries, side in ((eeg, "video"), (video, "eeg")):
            prototypes, phi, assignment = (
                clustering[side][key] for key in ("prototypes", "concentration", "assignment")
            )
            pair_losses = []
            for i, dataset_index in enumerate(batch_index.tolist()):
                if dataset_index not in row_of:
                    continue
                logits = [float(prototypes[j] @ queries[i]) / float(phi[j]) for j in range(len(prototypes))]
                target = int(assignment[row_of[dataset_index]])
                pair_losses.append(math.log(sum(math.exp(z) for z in logits)) - logits[target])
            directions.append(sum(pair_losses) / len(pair_losses))
        per_k.append(sum(directions) / 2)
    clip = reg.build("losses", "clip")(eeg, video, groups)
    expected = float(clip.detach()) + 0.5 * sum(per_k) / len(per_k)
    assert [len(c["video"]["prototypes"]) for c in state["clusterings"]] == [3, 5]
    for clustering in state["clusterings"]:  # start_epoch kept each side's nearest-prototype assignment and rescaled φ
        for side, seed in (("eeg", 1), ("video", 2)):
            nearest = (_unit(len(index), seed=seed) @ clustering[side]["prototypes"].t()).argmax(dim=1)
            assert torch.equal(clustering[side]["assignment"], nearest)
            assert math.isclose(float(clustering[side]["concentration"].mean()), 0.2, rel_tol=1e-5)
    assert math.isclose(float(loss(eeg, video, groups, index=batch_index).detach()), expected, rel_tol=1e-5)
    assert math.isclose(loss.log_values()["proto_nce"], sum(per_k) / len(per_k), rel_tol=1e-5)


def test_warmup_epochs_give_exactly_the_clip_loss(reg):
    loss = reg.build("losses", {"name": "protonce", "num_clusters": [3], "warmup_epochs": 2})
    clip = reg.build("losses", "clip")
    eeg, video = _pairs()
    index = torch.arange(6)
    assert torch.equal(loss(eeg, video, index=index), clip(eeg, video))
    for epoch in (1, 2):
        loss.start_epoch(epoch, _unit(20, seed=1), _unit(20, seed=2), torch.arange(20))
        assert torch.equal(loss(eeg, video, index=index), clip(eeg, video))
    assert set(loss.log_values()) == {"logit_scale", "log_logit_scale"}
    loss.start_epoch(3, _unit(20, seed=1), _unit(20, seed=2), torch.arange(20))
    assert loss(eeg, video, index=index) > clip(eeg, video)
    assert "proto_concentration_raw" in loss.log_values()


def _blobs(per_cluster: int = 30, clusters: int = 4, d: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    centers = F.normalize(torch.randn(clusters, d, generator=g), dim=1)
    truth = torch.arange(clusters).repeat_interleave(per_cluster)
    points = F.normalize(centers[truth] + 0.1 * torch.randn(len(truth), d, generator=g), dim=1)
    order = torch.randperm(len(truth), generator=g)
    return points[order], truth[order]


def test_kmeans_recovers_separated_clusters_deterministically():
    points, truth = _blobs()
    centroids, found = spherical_kmeans(points, 4, 20, torch.Generator().manual_seed(0))
    pairs = {(int(t), int(f)) for t, f in zip(truth, found)}
    assert len(pairs) == 4 and len({f for _, f in pairs}) == 4, "found clusters are not a relabelling of the true ones"
    assert torch.allclose(centroids.norm(dim=1), torch.ones(4))
    again = spherical_kmeans(points, 4, 20, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], centroids) and torch.equal(again[1], found)


def test_kmeans_reseeds_empty_clusters_and_clamps_k(reg, caplog):
    duplicates = _unit(3).repeat(10, 1)  # 3 distinct points: any k > 3 must leave clusters empty
    centroids, found = spherical_kmeans(duplicates, 5, 20, torch.Generator().manual_seed(0))
    assert torch.isfinite(centroids).all() and found.unique().numel() == 3
    loss = reg.build("losses", {"name": "protonce", "num_clusters": [8, 16], "warmup_epochs": 0})
    with caplog.at_level(logging.WARNING, logger="peftzoo_model.losses.protonce"):
        for epoch in (1, 2):
            loss.start_epoch(epoch, _unit(5, seed=1), _unit(5, seed=2), torch.arange(5))
    assert [len(c["eeg"]["prototypes"]) for c in loss.clusterings] == [5, 5]
    assert sum("clamping k" in r.message for r in caplog.records) == 1


def test_concentrations_follow_pcl_formula():
    rng = np.random.default_rng(0)
    sizes = [3, 6, 4, 5, 1, 8, 2, 7, 3, 5, 4, 6]  # cluster 4 has one member: it gets the largest φ of the others
    k, alpha, mean = len(sizes), 10.0, 0.2
    assignment = np.repeat(np.arange(k), sizes)
    spread = np.array([0.05, 0.3, 0.1, 0.6, 0.2, 0.15, 0.4, 0.25, 0.02, 0.5, 0.35, 0.08])[assignment, None]
    centers = rng.normal(size=(k, 5))
    points = centers[assignment] + spread * rng.normal(size=(len(assignment), 5))
    points /= np.linalg.norm(points, axis=1, keepdims=True)

    phi = np.zeros(k)
    for c in range(k):
        members = points[assignment == c]
        if len(members) > 1:
            phi[c] = np.linalg.norm(members - members.mean(0), axis=1).sum() / (
                len(members) * np.log(len(members) + alpha)
            )
    phi[phi == 0] = phi.max()
    clipped = np.clip(phi, np.percentile(phi, 10), np.percentile(phi, 90))
    assert clipped.min() > phi.min() and clipped.max() < phi.max(), "the example must clip at both ends"
    expected = mean * clipped / clipped.mean()

    got, raw_mean = concentrations(torch.tensor(points), torch.tensor(assignment), k, alpha, mean)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert math.isclose(raw_mean, phi.mean(), rel_tol=1e-6)


def test_state_dict_round_trip_gives_the_same_loss(reg):
    loss, index = _clustered_loss(reg)
    with torch.no_grad():
        loss.logit_scale.fill_(2.5)
    buffer = io.BytesIO()
    torch.save(loss.state_dict(), buffer)
    buffer.seek(0)
    fresh = reg.build("losses", {"name": "protonce", "num_clusters": [3, 5], "warmup_epochs": 1})
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    eeg, video = _pairs()
    batch_index = index[[1, 4, 9, 16, 25, 36]]
    assert fresh.epoch == 2
    assert torch.equal(fresh(eeg, video, index=batch_index), loss(eeg, video, index=batch_index))
    assert fresh(eeg, video, index=batch_index) > fresh(eeg, video)


def test_gradient_flows_through_the_proto_term_and_unknown_pairs_are_clip(reg):
    loss, index = _clustered_loss(reg)
    clip = reg.build("losses", "clip")
    eeg, video = _pairs()
    batch_index = index[:6]
    assert torch.equal(loss(eeg, video), clip(eeg, video))
    assert torch.equal(loss(eeg, video, index=torch.tensor([1, 2, 3, 4, 1000, -1])), clip(eeg, video))

    eeg, video = eeg.clone().requires_grad_(), video.clone().requires_grad_()
    proto_term = loss(eeg, video, index=batch_index) - clip(eeg, video)
    grad_eeg, grad_video = torch.autograd.grad(proto_term, (eeg, video))
    assert grad_eeg.abs().sum() > 0 and grad_video.abs().sum() > 0

    first = loss.clusterings[0]
    target = first["video"]["prototypes"][first["video"]["assignment"][0]]
    with torch.no_grad():
        moved = eeg.detach().clone()
        moved[0] = F.normalize(moved[0] + 2 * target, dim=0)
        before = loss(eeg, video, index=batch_index) - clip(eeg, video)
        after = loss(moved, video, index=batch_index) - clip(moved, video)
    assert after < before


def test_builds_from_a_recipe(reg):
    from recipes import schema

    recipe = schema.validate(tiny_recipe(loss={"name": "protonce", "num_clusters": [4]}), reg)
    loss = reg.build("losses", recipe.loss)
    assert isinstance(loss, ProtoNCELoss) and loss.wants_epoch_embeddings
    assert loss.cfg.num_clusters == [4] and loss.cfg.warmup_epochs == 2
    assert not reg.build("losses", "clip").wants_epoch_embeddings
    with pytest.raises(RecipeError, match="num_clusters"):
        schema.validate(tiny_recipe(loss={"name": "protonce", "num_clusters": [1]}), reg)
