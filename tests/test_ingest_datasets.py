"""Dataset components over ingestion: `recordings` (an ingest spec inline in a recipe's data:,
ingested once into the cache) and `seed_dv` (a small generated copy of the SEED-DV layout)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import run_dir_in, run_python, tiny_recipe
from ingest_helpers import cfr, export, need, planted_raw, write_video

from registry.errors import UserError

need("mne")
av = need("av")

EVENTS = [(1.0, "movie/a"), (4.0, "movie/b"), (7.0, "movie/a"), (10.0, "movie/b")]


@pytest.fixture
def study(tmp_path: Path) -> Path:
    (tmp_path / "rec").mkdir()
    (tmp_path / "stim").mkdir()
    for s in (1, 2, 3):
        export(planted_raw(250.0, 13.0, EVENTS), tmp_path / "rec" / f"sub-0{s}_raw.fif")
    for name in ("a", "b"):
        write_video(tmp_path / "stim" / f"{name}.mp4", cfr(20, 10))
    return tmp_path


def recordings_block(study: Path, cache: Path) -> dict:
    return {
        "name": "recordings",
        "base": str(study),
        "cache_dir": str(cache),
        "recordings": {"files": "rec/*.fif", "entities": r"sub-(?P<subject>\d+)"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 1},
        "video": {"clips": "stim/{stim}.mp4", "frames": 4, "short_side": 16},
        "split": {"by": "subject", "val": ["03"]},
        "preview": 1,
    }


def test_recordings_component_ingests_once_into_the_cache(study, tmp_path, reg, monkeypatch):
    from peftzoo_data.ingest import pipeline

    block = recordings_block(study, tmp_path / "cache")
    config = reg.get("datasets", "recordings").Config.model_validate({k: v for k, v in block.items() if k != "name"})
    data = reg.get("datasets", "recordings").from_config(config, seed=0)
    assert data.eeg.shape == (12, 6, 200) and data.video.shape == (12, 4, 16, 22, 3)
    assert data.sfreq == 200.0 and data.channels == ["FP1", "FZ", "CZ", "PZ", "O1", "O2"]
    assert len(data.split("val")) == 4 and data.fingerprint.startswith("recordings-")
    (cached,) = (tmp_path / "cache").iterdir()
    assert (cached / "preview.png").is_file() and (cached / "ingest_report.json").is_file()
    calls = []
    monkeypatch.setattr(pipeline, "ingest_recording", lambda *a, **k: calls.append(a) or pytest.fail("re-ingested"))
    again = reg.get("datasets", "recordings").from_config(config, seed=0)
    assert calls == [] and again.fingerprint == data.fingerprint
    np.testing.assert_array_equal(np.asarray(again.eeg), np.asarray(data.eeg))


def test_a_recipe_trains_straight_from_raw_recordings(study, tmp_path):
    import yaml

    recipe = tiny_recipe(**{"train.epochs": 1, "train.batch_size": 4, "eeg.encoder.name": "tiny_eeg"})
    recipe["data"] = recordings_block(study, tmp_path / "cache")
    recipe["video"]["encoder"].update(frames=4, size=16)
    path = tmp_path / "raw.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = run_python("-m", "recipes.run", str(path), "--output-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr[-3000:]
    run = run_dir_in(tmp_path / "runs")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("val/eeg_to_video/R@1" in x for x in lines)


def test_a_mistake_in_the_inline_spec_is_located_under_data(study, tmp_path, reg):
    from recipes import schema
    from recipes.errors import RecipeError

    recipe = tiny_recipe()
    recipe["data"] = {**recordings_block(study, tmp_path / "cache"), "window": {"seconds": 1.5}}
    with pytest.raises(RecipeError, match=r"data.window: seconds 1.5 is not a whole number; LaBraM reads 1-s patches"):
        schema.validate(recipe, reg)


def _seed_dv_copy(root: Path, subjects: int, concepts: int) -> np.ndarray:
    """SEED-DV's layout, `concepts` per block: EEG/subN.npy (7, 62, T) with a 50 uV pulse 0.5 s into
    every clip on Cz; Video/<k>_10min.mp4 at 24 fps whose gray level encodes the block position."""
    from peftzoo_data import seed_dv

    (root / "EEG").mkdir(parents=True)
    (root / "Video").mkdir()
    (root / "meta_info").mkdir()
    rng = np.random.default_rng(0)
    labels = np.stack([rng.permutation(concepts) + 1 for _ in range(7)])  # 1-based, shuffled per block
    np.save(root / "meta_info" / "All_video_label.npy", labels)
    samples = int(concepts * 13 * 200)
    starts = seed_dv.clip_starts(concepts)
    for s in range(subjects):
        eeg = rng.standard_normal((7, 62, samples)).astype(np.float32) * 2
        for t in starts.ravel():
            eeg[:, seed_dv.CHANNELS.index("CZ"), int(round((t + 0.5) * 200))] += 50
        np.save(root / "EEG" / f"sub{s + 1}.npy", eeg)
    for name in seed_dv.VIDEO_NAMES:
        with av.open(str(root / "Video" / name), "w") as container:
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = 32, 18, "yuv420p"
            stream.codec_context.time_base = Fraction(1, 24)
            for i in range(concepts * 13 * 24):
                level = 40 * (i // (13 * 24)) + 20  # the position of the concept on screen
                frame = av.VideoFrame.from_ndarray(np.full((18, 32, 3), level, np.uint8), format="rgb24")
                frame.pts = i
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return labels - 1


def test_seed_dv_layout(tmp_path, reg):
    labels = _seed_dv_copy(tmp_path / "SEED-DV", subjects=2, concepts=2)
    component = reg.get("datasets", "seed_dv")
    config = component.Config.model_validate(
        {
            "root": str(tmp_path / "SEED-DV"),
            "concepts_per_block": 2,
            "frames": 6,
            "short_side": 18,
            "fold": 3,
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    data = component.from_config(config, seed=0)
    n = 2 * 7 * 2 * 5
    assert data.eeg.shape == (n, 62, 400) and data.video.shape == (n, 6, 18, 32, 3) and data.sfreq == 200.0
    assert [int(np.argmax(p[data.channels.index("CZ")])) for p in data.eeg] == [100] * n
    (cached,) = (tmp_path / "cache").iterdir()
    blocks, concepts = np.load(cached / "blocks.npy"), np.load(cached / "concepts.npy")
    assert set(blocks[data.split("test")]) == {3} and set(blocks[data.split("val")]) == {2}
    assert set(blocks[data.split("train")]) == {0, 1, 4, 5, 6}
    # pair order: subject, block, position, clip; concept ids follow the block's shuffled order
    assert concepts[:10].tolist() == [labels[0, 0]] * 5 + [labels[0, 1]] * 5
    # frames of position p come from its 13-s span of the block video
    levels = data.video[:, :, 0, 0, 0].astype(int)
    position = (np.arange(n) // 5) % 2
    assert np.all(np.abs(levels - (40 * position[:, None] + 20)) < 6)
    # stimulus ids (negatives): one per (block, concept), shared by subjects; groups (leakage): the blocks
    assert len(np.unique(data.stimulus)) == 14 and data.stimulus[0] == data.stimulus[70]
    assert (
        np.array_equal(data.groups, blocks) and data.stimulus_name(data.stimulus[0]) == f"block0/concept{concepts[0]}"
    )
    by_block = component.from_config(
        component.Config.model_validate({**config.model_dump(), "groups": "block"}), seed=0
    )
    assert len(list((tmp_path / "cache").iterdir())) == 1 and len(np.unique(by_block.stimulus)) == 7  # no rebuild
    for g in np.unique(data.groups):
        assert (
            len({s for s in ("train", "val", "test") if np.isin(np.flatnonzero(data.groups == g), data.split(s)).any()})
            == 1
        )
    (tmp_path / "SEED-DV" / "Video" / "7th_10min.mp4").unlink()
    with pytest.raises(UserError, match=r"Video lacks \['7th_10min.mp4'\]; SEED-DV has one video per block"):
        component.from_config(config, seed=0)


def test_recordings_config_is_the_ingest_spec_plus_cache_keys():
    """One source of truth: every section of an ingest spec is a key of the `recordings` data block
    with the same type and default, and the block adds only the dataset and cache keys."""
    from peftzoo_data.base import DatasetConfig
    from peftzoo_data.ingest.spec import IngestSpec
    from peftzoo_data.recordings import RecordingsConfig, ingest_spec

    spec_fields, block_fields = IngestSpec.model_fields, RecordingsConfig.model_fields
    for name, field in spec_fields.items():
        assert name in block_fields, name
        if name != "split":  # the block may leave the split to val_fraction
            assert block_fields[name].annotation == field.annotation and block_fields[name].default == field.default, (
                name
            )
    assert set(block_fields) - set(spec_fields) == set(DatasetConfig.model_fields) | {"cache_dir", "base"}
    block = {
        "recordings": {"files": "rec/*.fif"},
        "video": {"clips": "stim/{stim}.mp4"},
        "eeg": {"bads": "drop"},
        "events": {"source": "trigger", "mask": 255},
    }
    spec = ingest_spec(RecordingsConfig.model_validate({**block, "val_fraction": 0.25}), seed=3)
    assert spec == IngestSpec.model_validate(
        {**block, "split": {"by": "fraction", "val": 0.25, "test": 0.0, "seed": 3}}
    )
    with pytest.raises(Exception, match="split by block needs block ids"):
        RecordingsConfig.model_validate({**block, "split": {"by": "block", "fold": 0}})
