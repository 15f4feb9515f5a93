"""Data sets: synthetic determinism and signal, arrays format (memory-mapped), group-aware splits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from peftzoo_data.base import DataError, PairTorchDataset, group_split


def build(reg, spec, seed=0):
    return reg.build("datasets", spec, seed=seed)


def test_synthetic_is_deterministic_and_shaped(reg):
    spec = {"name": "synthetic", "n": 40, "seconds": 1, "frames": 4, "height": 12, "width": 12}
    a, b, c = build(reg, spec), build(reg, spec), build(reg, spec, seed=1)
    assert a.eeg.shape == (40, 19, 200) and a.eeg.dtype == np.float32
    assert a.video.shape == (40, 4, 12, 12, 3) and a.video.dtype == np.uint8
    assert np.array_equal(a.eeg, b.eeg) and np.array_equal(a.video, b.video)
    assert not np.array_equal(a.eeg, c.eeg)
    assert a.sfreq == 200 and len(a.channels) == 19


def test_synthetic_sides_share_a_signal(reg):
    """Linear regression from EEG to video pixels recovers more on true pairs than on shuffled ones."""
    data = build(
        reg, {"name": "synthetic", "n": 300, "seconds": 1, "frames": 2, "height": 8, "width": 8, "latent_dim": 4}
    )
    x = data.eeg.reshape(300, -1)[:, ::7].astype(np.float64)
    y = data.video.reshape(300, -1).astype(np.float64)
    x, y = x - x.mean(0), y - y.mean(0)

    def held_out_r2(xs, ys):
        w, *_ = np.linalg.lstsq(xs[:200], ys[:200], rcond=None)
        resid = ys[200:] - xs[200:] @ w
        return 1 - (resid**2).sum() / (ys[200:] ** 2).sum()

    shuffled = np.random.default_rng(0).permutation(300)
    assert held_out_r2(x, y) > 0.3
    assert held_out_r2(x, y[shuffled]) < 0.05


def test_group_split_never_cuts_a_group():
    groups = np.repeat(np.arange(30), 5)
    splits = group_split(groups, 0.2, seed=3)
    train, val = set(groups[splits["train"]]), set(groups[splits["val"]])
    assert not train & val
    assert len(splits["val"]) == 30 and len(splits["train"]) + len(splits["val"]) == 150
    assert np.array_equal(group_split(groups, 0.2, seed=3)["val"], splits["val"])


def write_arrays(root, n=12, channels=("Fp1", "Fp2", "Cz"), t=200, groups=None, split=None, meta=None):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    np.save(root / "eeg.npy", rng.standard_normal((n, len(channels), t)).astype(np.float32))
    np.save(root / "video.npy", rng.integers(0, 255, (n, 4, 16, 16, 3), dtype=np.uint8))
    (root / "meta.json").write_text(json.dumps(meta or {"sfreq": 200, "channels": list(channels), "fps": 8}))
    if groups is not None:
        np.save(root / "groups.npy", np.asarray(groups, dtype=np.int64))
    if split is not None:
        np.save(root / "split.npy", np.asarray(split))
    return root


def test_arrays_are_memory_mapped_and_split_by_group(reg, tmp_path):
    root = write_arrays(tmp_path / "d", groups=np.repeat(np.arange(4), 3))
    data = build(reg, {"name": "arrays", "path": str(root), "val_fraction": 0.25})
    assert isinstance(data.eeg, np.memmap) and isinstance(data.video, np.memmap)
    assert data.channels == ["Fp1", "Fp2", "Cz"] and data.sfreq == 200
    assert not set(data.groups[data.split("train")]) & set(data.groups[data.split("val")])
    item = PairTorchDataset(data, data.split("train"))[0]
    assert item["eeg"].shape == (3, 200) and item["video"].shape == (4, 16, 16, 3)


def test_arrays_split_file(reg, tmp_path):
    split = ["train"] * 8 + ["val"] * 2 + ["test"] * 2
    root = write_arrays(tmp_path / "d", split=split)
    data = build(reg, {"name": "arrays", "path": str(root)})
    assert list(data.split("val")) == [8, 9] and list(data.split("test")) == [10, 11]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": ["train"] * 11 + ["holdout"]}, "split.npy has labels \\['holdout'\\]"),
        ({"groups": [0] * 6 + [1] * 6, "split": ["train"] * 7 + ["val"] * 5}, "puts group 1 in \\['train', 'val'\\]"),
        ({"groups": [0] * 5}, "groups.npy must be integers of shape \\(12,\\)"),
        ({"meta": {"channels": ["Fp1"]}}, "lacks \\['sfreq'\\]"),
        ({"meta": {"sfreq": 200, "channels": ["Fp1"]}}, "channels names 1 channels but eeg.npy has 3 rows per pair"),
    ],
)
def test_arrays_errors(reg, tmp_path, kwargs, message):
    root = write_arrays(tmp_path / "d", **kwargs)
    with pytest.raises(DataError, match=message):
        build(reg, {"name": "arrays", "path": str(root)})


def test_arrays_missing_directory_and_file(reg, tmp_path):
    with pytest.raises(DataError, match="is not a directory"):
        build(reg, {"name": "arrays", "path": str(tmp_path / "nope")})
    root = write_arrays(tmp_path / "d")
    (root / "video.npy").unlink()
    with pytest.raises(DataError, match="video.npy is missing"):
        build(reg, {"name": "arrays", "path": str(root)})


def test_nan_eeg_is_reported_with_its_index(reg, tmp_path):
    root = write_arrays(tmp_path / "d")
    eeg = np.load(root / "eeg.npy")
    eeg[5, 1, 17] = np.nan
    np.save(root / "eeg.npy", eeg)
    data = build(reg, {"name": "arrays", "path": str(root), "val_fraction": 0.0})
    dataset = PairTorchDataset(data, np.arange(12))
    with pytest.raises(DataError, match="EEG of pair 5 holds NaN"):
        dataset[5]


def test_group_disjoint_batches_never_put_a_group_twice_and_resume_mid_epoch():
    from peftzoo_data.sampler import GroupDisjointBatches, ShuffledBatches

    groups = np.repeat(np.arange(40), 5)  # 40 recordings of 5 windows
    sampler = GroupDisjointBatches(groups, batch_size=16, seed=3)
    sampler.set_epoch(1)
    batches = list(sampler)
    assert len(batches) >= 10 and all(len(b) == 16 for b in batches)
    assert all(len(set(groups[b])) == len(b) for b in batches)
    assert len({i for b in batches for i in b}) == sum(len(b) for b in batches)  # no pair twice
    sampler.set_epoch(1, start_batch=3)
    assert list(sampler) == batches[3:]
    sampler.set_epoch(2)
    assert list(sampler) != batches
    shuffled = ShuffledBatches(200, 16, seed=3)
    shuffled.set_epoch(1)
    full = list(shuffled)
    shuffled.set_epoch(1, start_batch=5)
    assert len(full) == 12 and list(shuffled) == full[5:] and len(shuffled) == 7


def test_auto_sampler_separates_groups_when_the_loss_does_not_mask(reg, tmp_path):
    from peftzoo_engine import use_group_disjoint
    from recipes import schema
    from recipes.compose import compose
    from tests.conftest import tiny_recipe

    for mask, expected in ((True, False), (False, True)):
        recipe = schema.validate(
            tiny_recipe(**{"data.group_size": 4, "loss": {"name": "clip", "mask_same_group": mask}}), reg
        )
        data = reg.build("datasets", recipe.data, seed=0)
        assert use_group_disjoint(recipe, compose(recipe, data, reg), data) is expected
