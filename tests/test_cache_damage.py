"""Damaged cache entries are named in a warning and recomputed; an interrupted computation leaves nothing."""

from __future__ import annotations

import hashlib
import io
import json
import logging

import numpy as np
import pytest
import torch
from safetensors.torch import save

import encoders
from peftzoo_engine import feature_cache, video_cache
from tests.cache_support import entry_files, tiny_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.fixture(scope="module")
def clip_encoder():
    return encoders.build("tiny_video", dim=8, depth=1, heads=2, frames=4, size=16)


def rewrite_consistently(data_path, raw: bytes) -> None:
    """Replace an entry's data and update its manifest to match: only the key-implied checks can catch it."""
    data_path.write_bytes(raw)
    manifest_path = data_path.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    manifest.update(size=len(raw), sha256=hashlib.sha256(raw).hexdigest())
    manifest.pop("stat", None)
    manifest_path.write_text(json.dumps(manifest))


def damage(path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, len(raw), dtype=np.uint8).tobytes())
    elif how == "no manifest":
        path.with_suffix(".json").unlink()
    elif how == "wrong shape" and path.suffix == ".safetensors":
        rewrite_consistently(path, save({"features": torch.zeros(7, 3)}))
    elif how == "wrong shape":
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((3, 4, 16, 16, 3), dtype=np.uint8))
        rewrite_consistently(path, buffer.getvalue())
    else:
        raise AssertionError(how)


DAMAGES = ["truncated", "garbage", "wrong shape", "no manifest"]


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_feature_entry_is_named_and_recomputed(tiny, tmp_path, caplog, how):
    data, model = tiny
    first = feature_cache.features("eeg", model.eeg, data, CPU, tmp_path, batch_size=16)
    (path,) = tmp_path.glob("eeg-*.safetensors")
    damage(path, how)
    with caplog.at_level(logging.WARNING, logger="peftzoo_engine.cache.store"):
        again = feature_cache.features("eeg", model.eeg, data, CPU, tmp_path, batch_size=16)
    assert torch.equal(again, first)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in warning and "computing it again" in warning
    caplog.clear()
    assert torch.equal(feature_cache.features("eeg", model.eeg, data, CPU, tmp_path, batch_size=16), first)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # sound again


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_clip_entry_is_named_and_recomputed(tiny, clip_encoder, tmp_path, caplog, how):
    data, _ = tiny
    first = np.array(video_cache.prepare(clip_encoder, data, tmp_path, batch_size=16).video)
    (path,) = tmp_path.glob("video-clips-*.npy")
    damage(path, how)
    with caplog.at_level(logging.WARNING, logger="peftzoo_engine.cache.store"):
        again = video_cache.prepare(clip_encoder, data, tmp_path, batch_size=16)
    assert np.array_equal(np.asarray(again.video), first)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in warning and "computing it again" in warning


def test_clips_overwritten_in_place_with_a_valid_header_fail_their_checksum(tiny, clip_encoder, tmp_path, caplog):
    """Same size and a sound header, other pixels: the file was touched, so its sha256 is checked."""
    data, _ = tiny
    first = np.array(video_cache.prepare(clip_encoder, data, tmp_path, batch_size=16).video)
    (path,) = tmp_path.glob("video-clips-*.npy")
    np.save(path, first[::-1].copy())
    with caplog.at_level(logging.WARNING, logger="peftzoo_engine.cache.store"):
        again = video_cache.prepare(clip_encoder, data, tmp_path, batch_size=16)
    assert np.array_equal(np.asarray(again.video), first)
    assert any("sha256" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


def test_an_unchanged_clip_file_is_not_hashed_on_read(tiny, clip_encoder, tmp_path, monkeypatch):
    data, _ = tiny
    video_cache.prepare(clip_encoder, data, tmp_path, batch_size=16)
    from peftzoo_engine.cache import store

    monkeypatch.setattr(store, "file_digest", lambda *a, **k: pytest.fail("hashed an untouched clip file"))
    video_cache.prepare(clip_encoder, data, tmp_path, batch_size=16)


def test_an_interrupt_while_computing_features_leaves_no_entry(tiny, tmp_path, monkeypatch):
    """A KeyboardInterrupt (Ctrl-C, or SIGTERM raised by the trainer) on the 3rd batch: nothing visible, lock free."""
    data, model = tiny
    encoder = model.eeg.encoder
    real, calls = type(encoder).forward, []

    def forward(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(encoder), "forward", forward)
    with pytest.raises(KeyboardInterrupt):
        feature_cache.features("eeg", model.eeg, data, CPU, tmp_path, batch_size=8)
    assert len(calls) == 3 and entry_files(tmp_path) == []
    monkeypatch.setattr(type(encoder), "forward", real)
    feature_cache.features("eeg", model.eeg, data, CPU, tmp_path, batch_size=8)  # the lock was released
    assert len(entry_files(tmp_path)) == 2


def test_an_interrupt_while_writing_clips_leaves_no_entry(tiny, clip_encoder, tmp_path, monkeypatch):
    data, _ = tiny
    real = video_cache.clip_batches

    def interrupted(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 2:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(video_cache, "clip_batches", interrupted)
    with pytest.raises(KeyboardInterrupt):
        video_cache.prepare(clip_encoder, data, tmp_path, batch_size=8)
    assert entry_files(tmp_path) == []
    monkeypatch.setattr(video_cache, "clip_batches", real)
    video_cache.prepare(clip_encoder, data, tmp_path, batch_size=8)
    assert len(entry_files(tmp_path)) == 2


def test_a_cache_dir_that_is_a_file_is_one_clear_user_error(tiny, clip_encoder, tmp_path):
    from peftzoo_engine.cache.store import CacheDirError
    from registry.errors import UserError

    data, model = tiny
    (tmp_path / "file").write_text("x")
    for directory in (tmp_path / "file", tmp_path / "file" / "below"):
        with pytest.raises(CacheDirError, match="train.cache_dir") as error:
            feature_cache.features("eeg", model.eeg, data, CPU, directory, batch_size=16)
        assert isinstance(error.value, UserError) and str(directory) in str(error.value)
        with pytest.raises(CacheDirError, match="train.cache_dir"):
            video_cache.prepare(clip_encoder, data, directory, batch_size=16)
