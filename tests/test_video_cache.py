"""Video clips cached at the encoder's input size: bit-equal inputs, reused from disk, atomic, keyed by spec."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import encoders
import registry
from peftzoo_data.base import PairedData, PairTorchDataset
from peftzoo_engine import video_cache
from recipes import schema
from recipes.compose import compose
from tests.cache_support import entry_files
from tests.conftest import tiny_recipe


def frames_data(
    n: int = 6, frames: int = 16, height: int = 96, width: int = 128, fingerprint: str | None = "test-data"
) -> PairedData:
    rng = np.random.default_rng(0)
    return PairedData(
        eeg=np.zeros((n, 2, 200), dtype=np.float32),
        video=rng.integers(0, 256, (n, frames, height, width, 3), dtype=np.uint8),
        sfreq=200.0,
        channels=["FP1", "FP2"],
        fps=8.0,
        groups=np.arange(n),
        splits={"train": np.arange(n)},
        fingerprint=fingerprint,
    )


@pytest.fixture(scope="module")
def swin_t():
    """swin3d_t's preprocessing at a small input size (the architecture is irrelevant to the cache)."""
    return encoders.build("swin3d_t", frames=8, size=64, resize=72)


def test_normalized_cached_clips_equal_the_full_preprocessing(swin_t, tmp_path):
    data = frames_data()
    prepared = video_cache.prepare(swin_t, data, tmp_path, batch_size=4)
    assert (
        prepared.video.shape == (6, 8, 64, 64, 3) and prepared.video.dtype == np.uint8 and prepared.video_at_input_size
    )
    cached = swin_t.preprocessing.normalize(torch.from_numpy(np.array(prepared.video)))
    assert torch.equal(cached, swin_t.preprocess(torch.from_numpy(data.video)))


def test_the_model_embeds_cached_clips_exactly_as_full_frames(tmp_path):
    reg = registry.default()
    recipe = schema.validate(tiny_recipe(**{"video.strategy": "bitfit"}), reg)  # the video encoder trains
    data = reg.build("datasets", recipe.data, seed=0)
    torch.manual_seed(0)
    model = compose(recipe, data, reg).eval()
    prepared = video_cache.prepare(model.video.encoder, data, tmp_path, batch_size=32)
    idx = data.split("val")[:16]
    batches = [
        torch.utils.data.default_collate([PairTorchDataset(d, idx)[i] for i in range(len(idx))])
        for d in (data, prepared)
    ]
    assert "video" in batches[0] and "video_at_input_size" in batches[1]
    with torch.no_grad():
        (e0, v0, _), (e1, v1, _) = (model.embed_batch(b, torch.device("cpu")) for b in batches)
    assert torch.equal(v0, v1) and torch.equal(e0, e1)


def test_second_call_reads_the_file(swin_t, tmp_path, monkeypatch):
    data = frames_data()
    first = video_cache.prepare(swin_t, data, tmp_path, batch_size=4)
    (path,) = tmp_path.glob("video-clips-*.npy")
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(video_cache, "clip_batches", lambda *a, **k: pytest.fail("recomputed a cached file"))
    again = video_cache.prepare(swin_t, data, tmp_path, batch_size=4)
    assert np.array_equal(first.video, again.video) and path.stat().st_mtime_ns == mtime
    assert again.fingerprint == first.fingerprint != data.fingerprint


def test_another_spec_or_data_gets_another_file(swin_t, tmp_path):
    data = frames_data()
    video_cache.prepare(swin_t, data, tmp_path, batch_size=4)
    video_cache.prepare(encoders.build("swin3d_t", frames=8, size=64, resize=80), data, tmp_path, batch_size=4)
    video_cache.prepare(encoders.build("tiny_video", frames=4, size=32), data, tmp_path, batch_size=4)
    video_cache.prepare(
        swin_t, dataclasses.replace(data, video=data.video[::-1].copy()), tmp_path, batch_size=4
    )  # other content
    video_cache.prepare(
        swin_t, dataclasses.replace(data, fingerprint="other-name"), tmp_path, batch_size=4
    )  # same content: reused
    assert len(list(tmp_path.glob("video-clips-*.npy"))) == 4


def test_read_only_memmap_serves_the_loader(swin_t, tmp_path):
    prepared = video_cache.prepare(swin_t, frames_data(), tmp_path, batch_size=4)
    assert isinstance(prepared.video, np.memmap) and not prepared.video.flags.writeable
    item = PairTorchDataset(prepared, np.arange(6))[2]
    item["video_at_input_size"].add_(1)  # the loader's copy is writable; the file is untouched
    assert np.array_equal(np.load(next(tmp_path.glob("*.npy"))), prepared.video)


def test_a_failure_leaves_no_file(swin_t, tmp_path, monkeypatch):
    real = video_cache.clip_batches

    def fails_midway(*args, **kwargs):
        batches = real(*args, **kwargs)
        yield next(batches)
        raise RuntimeError("killed")

    monkeypatch.setattr(video_cache, "clip_batches", fails_midway)
    with pytest.raises(RuntimeError, match="killed"):
        video_cache.prepare(swin_t, frames_data(), tmp_path, batch_size=2)
    assert entry_files(tmp_path) == []


def test_too_little_disk_space_is_a_clear_error(swin_t, tmp_path, monkeypatch):
    monkeypatch.setattr(video_cache.shutil, "disk_usage", lambda path: type("usage", (), {"free": 1000})())
    with pytest.raises(video_cache.VideoCacheError, match="train.cache_dir"):
        video_cache.prepare(swin_t, frames_data(), tmp_path, batch_size=4)
    assert entry_files(tmp_path) == []


def test_data_without_fingerprint_is_kept_in_memory(swin_t, tmp_path):
    data = frames_data(fingerprint=None)
    prepared = video_cache.prepare(swin_t, data, tmp_path, batch_size=4)
    assert not isinstance(prepared.video, np.memmap) and prepared.fingerprint is None
    assert entry_files(tmp_path) == []
    assert torch.equal(
        swin_t.preprocessing.normalize(torch.from_numpy(prepared.video)),
        swin_t.preprocess(torch.from_numpy(data.video)),
    )


def test_clips_of_another_size_are_refused_by_name(swin_t):
    with pytest.raises(ValueError, match="input size"):
        swin_t.preprocessing.normalize(torch.zeros(2, 8, 32, 32, 3, dtype=torch.uint8))


def test_training_with_a_trainable_video_encoder_uses_the_clip_cache(tmp_path, capsys):
    """Wired into the trainer: the clips file is written once, and metrics equal the uncached run's."""
    import json

    import yaml

    from peftzoo_tools.run import main
    from tests.conftest import run_dir_in

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(**{"video.strategy": "bitfit", "train.epochs": 1})))
    evals = []
    for name, cache in (("cached", "true"), ("uncached", "false")):
        out = tmp_path / name
        assert main([str(recipe), "--output-dir", str(out), f"train.feature_cache={cache}", "-q"]) == 0
        run = run_dir_in(out)
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        evals.append([x for x in lines if x["type"] == "eval"])
        clips = list((out / ".cache" / "features").glob("video-clips-*.npy"))
        assert len(clips) == (1 if cache == "true" else 0)
    assert evals[0][-1]["val/loss"] == pytest.approx(evals[1][-1]["val/loss"], rel=1e-6)
    assert evals[0][-1]["val/eeg_to_video/mean_rank"] == evals[1][-1]["val/eeg_to_video/mean_rank"]
