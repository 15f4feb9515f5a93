"""Frozen-feature cache: same features as the encoder, computed once, reused from disk, keyed by weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import registry
from peftzoo_engine import feature_cache
from peftzoo_tools.run import main
from recipes import schema
from recipes.compose import compose
from tests.conftest import run_dir_in, tiny_recipe


@pytest.fixture()
def composed():
    reg = registry.default()
    recipe = schema.validate(tiny_recipe(), reg)
    data = reg.build("datasets", recipe.data, seed=0)
    torch.manual_seed(0)
    return recipe, data, compose(recipe, data, reg).eval()


def test_cached_features_equal_the_encoder(composed, tmp_path):
    _, data, model = composed
    eeg = feature_cache.features("eeg", model.eeg, data, torch.device("cpu"), tmp_path, batch_size=16)
    video = feature_cache.features("video", model.video, data, torch.device("cpu"), tmp_path, batch_size=16)
    assert eeg.shape == (len(data), 32) and video.shape == (len(data), 32)
    idx = [0, 7, 100]
    with torch.no_grad():
        direct_eeg = model.eeg.encoder(torch.from_numpy(data.eeg[idx]), channels=data.channels)
        direct_video = model.video.encoder(model.video.encoder.preprocess(torch.from_numpy(data.video[idx])))
    assert torch.allclose(eeg[idx], direct_eeg, atol=1e-5) and torch.allclose(video[idx], direct_video, atol=1e-5)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2


def test_disk_cache_is_reused_and_keyed_by_weights(composed, tmp_path, monkeypatch):
    _, data, model = composed
    first = feature_cache.features("eeg", model.eeg, data, torch.device("cpu"), tmp_path, batch_size=16)
    calls = []
    real = feature_cache.compute
    monkeypatch.setattr(feature_cache, "compute", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = feature_cache.features("eeg", model.eeg, data, torch.device("cpu"), tmp_path, batch_size=16)
    assert torch.equal(first, again) and calls == []
    with torch.no_grad():
        model.eeg.encoder.fc_norm.bias.add_(0.5)  # other weights: another key, computed anew
    changed = feature_cache.features("eeg", model.eeg, data, torch.device("cpu"), tmp_path, batch_size=16)
    assert calls == [1] and not torch.allclose(changed, first)
    assert len(list(tmp_path.glob("eeg-*.safetensors"))) == 2


def test_training_with_and_without_the_cache_agree(tmp_path, capsys):
    results = {}
    for use in (True, False):
        path = tmp_path / f"r{use}.yaml"
        path.write_text(yaml.safe_dump(tiny_recipe(**{"train.feature_cache": use})))
        out = tmp_path / f"runs{use}"
        assert main([str(path), "--output-dir", str(out), "--quiet"]) == 0
        run_dir = run_dir_in(out)
        info = json.loads((run_dir / "run.json").read_text())
        assert info["stages"][0]["cached_features"] == (["eeg", "video"] if use else [])
        results[use] = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in x][
            -1
        ]
    capsys.readouterr()
    for key in ("val/loss", "val/eeg_to_video/mean_rank", "val/video_to_eeg/mean_rank"):
        assert np.isclose(results[True][key], results[False][key], rtol=1e-3), key


def test_a_training_encoder_is_not_cached(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(**{"eeg.strategy": "bitfit", "train.epochs": 1})))
    assert main([str(path), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    info = json.loads((run_dir_in(tmp_path / "runs") / "run.json").read_text())
    assert info["stages"][0]["cached_features"] == ["video"]


def test_cached_stage_batches_are_indices_only_in_the_loaders_order(composed):
    """With both sides cached the loader reads nothing per pair, and yields what a DataLoader would."""
    from peftzoo_data.base import PairTorchDataset
    from peftzoo_engine import make_loaders

    recipe, data, model = composed
    model.cached = {"eeg": torch.zeros(len(data), 4), "video": torch.zeros(len(data), 4)}
    train_loader, val_loader, _ = make_loaders(recipe, model, data, torch.device("cpu"))
    reference = torch.utils.data.DataLoader(
        PairTorchDataset(data, data.split("train"), load_eeg=False, load_video=False),
        batch_sampler=train_loader.batch_sampler,
    )
    got, want = list(train_loader), list(reference)
    assert len(got) == len(want) == len(data.split("train")) // recipe.train.batch_size
    for a, b in zip(got, want):
        assert a.keys() == b.keys() == {"index", "group", "stimulus"}
        assert all(torch.equal(a[key], b[key]) for key in ("index", "group", "stimulus"))
    val = torch.cat([b["index"] for b in val_loader])
    assert val.tolist() == data.split("val").tolist()
