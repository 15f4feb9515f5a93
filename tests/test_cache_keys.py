"""Cache keys follow the data's content, the code and library versions, the device type and dtype."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

import encoders
from peftzoo_engine import feature_cache, video_cache
from peftzoo_engine.cache import code, content
from tests.cache_support import load_arrays, tiny_model, write_arrays

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


def counting(monkeypatch, module):
    """Count calls of `module.compute` (the features really computed, not read)."""
    calls = []
    real = module.compute
    monkeypatch.setattr(module, "compute", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    return calls


def test_a_rewrite_with_preserved_mtime_gets_new_features(tiny, tmp_path, monkeypatch):
    """Same path, same size, same mtime (cp -p, rsync -t of another data set): other content, other features."""
    data, model = tiny
    root = write_arrays(tmp_path / "pairs", data)
    cache = tmp_path / "cache"
    first = feature_cache.features("eeg", model.eeg, load_arrays(root), CPU, cache, batch_size=16)
    stat = (root / "eeg.npy").stat()
    other = np.ascontiguousarray(data.eeg[::-1])  # the same shape and size, other pairs in each row
    np.save(root / "eeg.npy", other)
    os.utime(root / "eeg.npy", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (root / "eeg.npy").stat().st_size == stat.st_size and (
        root / "eeg.npy"
    ).stat().st_mtime_ns == stat.st_mtime_ns
    calls = counting(monkeypatch, feature_cache)
    again = feature_cache.features("eeg", model.eeg, load_arrays(root), CPU, cache, batch_size=16)
    assert calls == ["eeg"]
    assert torch.allclose(again, first.flip(0), atol=1e-5) and not torch.allclose(again, first)


def test_the_same_content_at_another_path_reuses_the_features(tiny, tmp_path, monkeypatch):
    data, model = tiny
    root = write_arrays(tmp_path / "pairs", data)
    cache = tmp_path / "cache"
    first = feature_cache.features("eeg", model.eeg, load_arrays(root), CPU, cache, batch_size=16)
    copy = shutil.copytree(root, tmp_path / "elsewhere" / "copy")  # new inodes and path: hashed once, same key
    calls = counting(monkeypatch, feature_cache)
    again = feature_cache.features("eeg", model.eeg, load_arrays(copy), CPU, cache, batch_size=16)
    assert calls == [] and torch.equal(first, again)


def test_the_data_file_is_hashed_once_and_again_only_when_it_changes(tiny, tmp_path, monkeypatch):
    data, _ = tiny
    root = write_arrays(tmp_path / "pairs", data)
    hashed = []
    real = content.file_digest
    monkeypatch.setattr(content, "file_digest", lambda path, **k: hashed.append(path.name) or real(path, **k))
    eeg = load_arrays(root).eeg
    first = content.identity(eeg, "fp", tmp_path / "cache")
    assert content.identity(eeg, "fp", tmp_path / "cache") == first and hashed == ["eeg.npy"]
    np.save(root / "eeg.npy", data.eeg + 1)
    second = content.identity(load_arrays(root).eeg, "fp", tmp_path / "cache")
    assert hashed == ["eeg.npy", "eeg.npy"] and second[0]["sha256"] != first[0]["sha256"]


def test_part_of_a_mapped_file_is_keyed_by_its_own_bytes(tiny, tmp_path):
    data, _ = tiny
    eeg = load_arrays(write_arrays(tmp_path / "pairs", data)).eeg
    whole, part = content.identity(eeg, "fp", tmp_path / "c")[0], content.identity(eeg[:10], "fp", tmp_path / "c")[0]
    assert whole["sha256"] != part["sha256"] and part["shape"][0] == 10
    assert part["sha256"] == content.array_digest(np.array(eeg[:10]))


def test_in_memory_data_is_keyed_by_its_content(tiny, tmp_path):
    """Synthetic data of one config gets one key; other bytes under the same fingerprint (an edit of the
    generating code) get another; data without a fingerprint is not cached on disk."""
    data, _ = tiny
    first = content.identity(data.eeg, data.fingerprint, tmp_path)[0]
    assert content.identity(data.eeg.copy(), data.fingerprint, tmp_path)[0] == first
    assert content.identity(data.eeg * 2, data.fingerprint, tmp_path)[0] != first
    assert content.identity(data.eeg, None, tmp_path) is None


def test_a_library_version_change_invalidates(tiny, tmp_path, monkeypatch):
    data, model = tiny
    feature_cache.features("eeg", model.eeg, data, CPU, tmp_path, batch_size=16)
    calls = counting(monkeypatch, feature_cache)
    feature_cache.features("eeg", model.eeg, data, CPU, tmp_path, batch_size=16)
    assert calls == []
    monkeypatch.setattr(torch, "__version__", "99.0")
    feature_cache.features("eeg", model.eeg, data, CPU, tmp_path, batch_size=16)
    assert calls == ["eeg"]


def test_an_edit_of_the_encoders_code_invalidates(tiny, tmp_path, monkeypatch):
    data, model = tiny
    encoder_module = type(model.eeg.encoder).__module__
    before = code.code_identity([model.eeg.encoder])
    assert before[encoder_module].startswith("sha256:") and before["timm"].startswith("timm==")
    feature_cache.features("eeg", model.eeg, data, CPU, tmp_path, batch_size=16)
    real = code.module_identity
    monkeypatch.setattr(code, "module_identity", lambda name: "sha256:edited" if name == encoder_module else real(name))
    calls = counting(monkeypatch, feature_cache)
    feature_cache.features("eeg", model.eeg, data, CPU, tmp_path, batch_size=16)
    assert calls == ["eeg"]


def test_device_type_and_dtype_are_in_the_key(tiny, tmp_path):
    data, model = tiny
    keys = {
        feature_cache.cache_key(
            feature_cache.key_spec("eeg", model.eeg, data, torch.device(device), dtype, tmp_path)[0]
        )
        for device in ("cpu", "cuda")
        for dtype in (None, torch.bfloat16)
    }
    assert len(keys) == 4


def test_clips_follow_content_and_device(tmp_path, monkeypatch):
    data, _ = tiny_model(8)
    root = write_arrays(tmp_path / "pairs", data)
    encoder = encoders.build("tiny_video", dim=8, depth=1, heads=2, frames=4, size=16)
    first = video_cache.prepare(encoder, load_arrays(root), tmp_path / "cache", batch_size=4)
    stat = (root / "video.npy").stat()
    np.save(root / "video.npy", np.ascontiguousarray(data.video[::-1]))
    os.utime(root / "video.npy", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = video_cache.prepare(encoder, load_arrays(root), tmp_path / "cache", batch_size=4)
    assert (
        np.array_equal(np.asarray(again.video), np.asarray(first.video)[::-1])
        and again.fingerprint != first.fingerprint
    )
    specs = [video_cache.key_spec(encoder.preprocessing, data, torch.device(d), tmp_path)[0] for d in ("cpu", "cuda")]
    assert video_cache.cache_key(specs[0]) != video_cache.cache_key(specs[1])
