"""Ingest writes the two ideas apart (issue 19, section 1): groups.npy is the leakage unit a split never cuts,
stimulus.npy and meta["stimuli"] say which pairs are never each other's negatives, so a split by subject with
the same clips shown to every subject (the cross-subject protocol) is accepted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ingest_helpers import cfr, export, need, planted_raw, write_video

need("mne")
need("av")

from peftzoo_data.arrays import load  # noqa: E402
from peftzoo_data.ingest import IngestError, ingest  # noqa: E402

EVENTS = [(1.0, "movie/a"), (4.0, "movie/b"), (7.0, "movie/a")]


def spec(**sections) -> dict:
    out = {
        "recordings": {"files": "rec/*.fif", "entities": r"sub-(?P<subject>\d+)_run-(?P<block>\d+)"},
        "events": {"match": r"movie/(?P<stim>\w+)"},
        "window": {"seconds": 1},
        "video": {"clips": "stim/{stim}.mp4", "frames": 2, "short_side": 16},
        "split": {"by": "subject", "val": ["02"], "test": ["03"]},
        "preview": 0,
    }
    out.update(sections)
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """3 subjects x 2 runs, each showing clips a, b, a."""
    root = tmp_path_factory.mktemp("study")
    (root / "rec").mkdir()
    (root / "stim").mkdir()
    for s in (1, 2, 3):
        for r in (1, 2):
            export(planted_raw(200.0, 9.0, EVENTS), root / "rec" / f"sub-0{s}_run-{r}_raw.fif")
    for name in ("a", "b"):
        write_video(root / "stim" / f"{name}.mp4", cfr(20, 10))
    return root


def test_a_split_by_subject_with_shared_stimuli_writes_both_ideas(tmp_path, study):
    report = ingest(spec(), tmp_path / "out", base=study, quiet=True)
    assert report["split_sizes"] == {"train": 6, "val": 6, "test": 6}
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["negatives_by"] == "stimulus" and meta["stimuli"] == ["a", "b"] and meta["groups_by"] == "recording"
    data = load(tmp_path / "out", 0.2, 0)
    assert data.stimulus.tolist() == [0, 1, 0] * 6 and len(np.unique(data.groups)) == 6
    assert [data.stimulus_name(i) for i in data.stimulus[:3]] == ["a", "b", "a"]
    for split in ("train", "val", "test"):  # every subject saw both clips: stimuli cross the split, recordings never
        assert set(data.stimulus[data.split(split)]) == {0, 1}
    assert data.group_name(data.groups[0]) == meta["group_names"][0]


def test_negatives_by_none_or_a_label_and_unknown_labels(tmp_path, study):
    ingest(spec(negatives={"by": "none"}), tmp_path / "none", base=study, quiet=True)
    data = load(tmp_path / "none", 0.2, 0)
    assert data.stimulus.tolist() == list(range(18)) and data.stimulus_name(1) == "b"
    ingest(spec(negatives={"by": "block"}), tmp_path / "block", base=study, quiet=True)
    assert json.loads((tmp_path / "block" / "meta.json").read_text())["stimuli"] == ["1", "2"]
    with pytest.raises(
        IngestError,
        match=r"negatives.by: concept is unknown .* use stimulus, none, or a label the pairs "
        r"carry \(.*subject",
    ):
        ingest(spec(negatives={"by": "concept"}), tmp_path / "bad", base=study, quiet=True)


def test_grouping_by_stimulus_under_a_split_by_subject_points_at_negatives(tmp_path, study):
    """The old way of saying "clips of one stimulus are not negatives" makes the stimulus the leakage
    unit, which a split by subject must cut: refused, naming the section that says it now."""
    with pytest.raises(IngestError) as err:
        ingest(spec(groups={"by": "stimulus"}), tmp_path / "out", base=study, quiet=True)
    text = str(err.value)
    assert "split by subject cuts a group (pairs of one group in test, train, val)" in text
    assert "negatives: {by: stimulus}" in text and "np.str_" not in text
