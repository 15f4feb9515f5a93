"""Negatives and leakage as two ideas (issue 19, section 1-2): stimulus.npy says which pairs are never each
other's negatives, groups.npy which pairs a split never cuts; a run with (almost) no negatives is refused
before its run directory exists, and the share the loss masks is logged as it trains.

The study folder is the cross-subject protocol: every subject sees the same clips (one video per stimulus,
byte-identical across subjects), two recordings per subject, a split by subject.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from peftzoo_data.arrays import load
from peftzoo_data.negatives import expected_negatives
from peftzoo_data.sampler import GroupDisjointBatches, ShuffledBatches
from peftzoo_tools.run import main as run_main
from tests.conftest import run_dir_in, tiny_recipe

SUBJECTS, RUNS, STIMULI = 6, 2, 16


def study(root: Path, *, stimulus_file: bool = True, train_subjects=(0, 1, 2, 3), one_train_recording=False) -> Path:
    """SUBJECTS x RUNS recordings, each showing STIMULI // RUNS of the clips; subject 4 is val, 5 test.

    EEG of a stimulus is the synthetic data's planted mix for that clip plus each subject's own noise."""
    from peftzoo_data.synthetic import SyntheticConfig, generate

    clips = generate(SyntheticConfig(n=STIMULI, seconds=1, frames=4, height=20, width=20), 0)
    rng = np.random.default_rng(1)
    eeg, video, stim, group, split = [], [], [], [], []
    for s in range(SUBJECTS):
        for r in range(RUNS):
            for k in range(r, STIMULI, RUNS):
                eeg.append(np.asarray(clips.eeg[k]) + rng.standard_normal(clips.eeg.shape[1:]).astype(np.float32) * 8)
                video.append(np.asarray(clips.video[k]))
                stim.append(k)
                group.append(s * RUNS + r)
                label = "val" if s == 4 else "test" if s == 5 else "train" if s in train_subjects else "val"
                if one_train_recording and label == "train" and (s, r) != (0, 0):
                    label = "test"
                split.append(label)
    root.mkdir(parents=True)
    np.save(root / "eeg.npy", np.stack(eeg).astype(np.float32))
    np.save(root / "video.npy", np.stack(video).astype(np.uint8))
    np.save(root / "groups.npy", np.asarray(group, dtype=np.int64))
    np.save(root / "split.npy", np.asarray(split))
    meta = {
        "sfreq": 200,
        "channels": clips.channels,
        "fps": 4,
        "group_names": [f"sub-{s:02d}_run-{r}" for s in range(SUBJECTS) for r in range(RUNS)],
    }
    if stimulus_file:
        np.save(root / "stimulus.npy", np.asarray(stim, dtype=np.int64))
        meta["stimuli"] = [f"clip{k:02d}" for k in range(STIMULI)]
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def train(recipe: dict, out: Path) -> tuple[int, str, Path | None]:
    path = out / "recipe.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = run_main([str(path), "--output-dir", str(out / "runs"), "-q"])
    return code, err.getvalue(), run_dir_in(out / "runs")


def arrays_recipe(root: Path, **changes) -> dict:
    return tiny_recipe(**{"data": {"name": "arrays", "path": str(root)}, "train.batch_size": 16, **changes})


def test_the_first_run_of_issue_19_is_refused_before_training(tmp_path):
    """Split by subject, one recording in train, groups.npy by recording and masking on: every negative
    would be masked (the loss exactly 0). Refused with the numbers and the fix; no run directory."""
    root = study(tmp_path / "one_recording", stimulus_file=False, one_train_recording=True)
    code, err, run = train(arrays_recipe(root), tmp_path / "out")
    assert code == 2 and run is None, err
    assert err.startswith("error: too few negatives: 8 training pairs of 1 distinct stimulus id"), err
    assert "0.00 unmasked negatives per anchor on average" in err and "100% of the logits masked" in err
    assert "give each pair its stimulus id" in err and "stimulus.npy" in err and "Traceback" not in err
    # The same split with the stimuli named: pairs of 8 different clips, nothing to refuse.
    named = study(tmp_path / "named", one_train_recording=True)
    code, err, run = train(arrays_recipe(named, **{"train.epochs": 1, "train.batch_size": 8}), tmp_path / "out_named")
    assert code == 0 and run is not None, err


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """(arrays folder, run directory) of the cross-subject study trained 12 epochs with masking by stimulus."""
    tmp = tmp_path_factory.mktemp("study")
    root = study(tmp / "study")
    recipe = arrays_recipe(
        root, **{"train.epochs": 12, "train.lr": 5e-3, "train.log_every": 1, "train.sampler": "random"}
    )
    code, err, run = train(recipe, tmp / "out")
    assert code == 0, err
    return root, run


def test_a_cross_subject_study_with_shared_stimuli_trains_above_chance(study_run):
    """Stimuli shared across subjects, split by subject: accepted, masking by stimulus, and held-out
    subjects' clips are retrieved well above chance; the masked share logged matches the prediction."""
    root, run = study_run
    data = load(root, 0.2, 0)
    assert len(np.unique(data.stimulus[data.split("train")])) == STIMULI
    assert set(data.stimulus[data.split("val")]) == set(data.stimulus[data.split("train")])  # shared across the split
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [x for x in lines if x.get("type") == "eval"]
    last = evals[-1]
    chance = last["val/chance_R@1"]
    assert chance == pytest.approx(1 / STIMULI)
    assert last["val/eeg_to_video/R@1"] >= 4 * chance, [e["val/eeg_to_video/R@1"] for e in evals]
    shares = [x["train/masked_share"] for x in lines if x.get("type") == "train"]
    predicted = expected_negatives(data.stimulus[data.split("train")], 16, True, False).masked_share
    assert len(shares) >= 12 and abs(np.mean(shares) - predicted) < 0.02, (np.mean(shares), predicted)
    per_epoch = [x["train/masked_share"] for x in lines if x.get("type") == "epoch"]
    assert len(per_epoch) == 12 and abs(np.mean(per_epoch) - predicted) < 0.02, (per_epoch, predicted)


def test_an_old_groups_folder_reads_as_before_and_says_so(tmp_path, caplog):
    """No stimulus.npy: groups.npy keeps both meanings (the split never cuts it, and its pairs are not each
    other's negatives), and the log says which meaning it was given."""
    root = study(tmp_path / "old", stimulus_file=False)
    with caplog.at_level(logging.INFO, logger="peftzoo_data.arrays"):
        data = load(root, 0.2, 0)
    assert data.stimulus is None and np.array_equal(data.stimulus_ids, data.groups)
    assert "read as before, with both meanings" in caplog.text
    assert data.stimulus_name(3) == "sub-01_run-1"  # group names stand for the stimulus names
    from peftzoo_data.base import PairTorchDataset

    item = PairTorchDataset(data, data.split("train"), load_eeg=False, load_video=False)[0]
    assert int(item["stimulus"]) == int(item["group"])


def test_expected_negatives_match_the_samplers():
    """The closed form preflight uses agrees with what the real samplers and masking give."""
    ids = np.repeat(np.arange(10), [1, 2, 3, 4, 5, 6, 7, 8, 9, 15])
    batch = 8
    masked = []
    for epoch in range(200):
        sampler = ShuffledBatches(len(ids), batch, seed=0)
        sampler.set_epoch(epoch)
        for b in sampler:
            g = ids[b]
            masked.append(((g[:, None] != g[None, :]).sum(axis=1)).mean())
    found = expected_negatives(ids, batch, masked=True, disjoint=False)
    assert abs(np.mean(masked) - found.mean) < 0.05 * found.mean, (np.mean(masked), found.mean)
    disjoint = GroupDisjointBatches(ids, batch, seed=0)
    assert all(len(set(ids[b])) == batch for b in disjoint)
    assert expected_negatives(ids, batch, masked=True, disjoint=True).mean == batch - 1
    assert expected_negatives(np.zeros(20, dtype=np.int64), batch, masked=True, disjoint=False).too_few


def test_a_stimulus_file_of_the_wrong_shape_or_names_is_one_message(tmp_path):
    from peftzoo_data.base import DataError

    root = study(tmp_path / "bad")
    np.save(root / "stimulus.npy", np.zeros(3, dtype=np.int64))
    with pytest.raises(DataError, match=r"stimulus.npy must be integers of shape \(96,\)"):
        load(root, 0.2, 0)
    np.save(root / "stimulus.npy", np.arange(96, dtype=np.int64))
    with pytest.raises(DataError, match=r"stimuli names 16 ids but the ids run from 0 to 95"):
        load(root, 0.2, 0)


def test_the_loss_masks_by_stimulus_not_by_group():
    """A batch's `stimulus` is what the loss masks: two recordings of one clip are not negatives."""
    from peftzoo_model.losses.clip import ClipLoss, ClipLossConfig

    loss = ClipLoss(ClipLossConfig())
    e = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    stimulus = torch.tensor([0, 0, 1, 2])
    loss(e, e, stimulus)
    assert loss.log_values()["train/masked_share"] == pytest.approx(2 / 12)
    loss.eval()
    loss(e, e, stimulus)  # evaluation is not counted
    assert "train/masked_share" not in loss.log_values()


def test_evaluate_and_retrieve_name_the_stimuli(study_run, tmp_path, capsys):
    """evaluate on the held-out subject: R@k per stimulus and per recording, top-k by name with scores, a
    permutation p-value well below 0.05, the old keys kept; retrieve prints the clips' names."""
    from peftzoo_tools.embed import main as embed_main
    from peftzoo_tools.evaluate import main as evaluate_main
    from peftzoo_tools.retrieve import main as retrieve_main

    root, run = study_run
    assert evaluate_main([str(run), "--split", "test", "--resamples", "200", "--permutations", "500", "-q"]) == 0
    out = capsys.readouterr().out
    report = json.loads((run / "eval" / "test.json").read_text())
    assert {"test/eeg_to_video/R@1", "test/chance_R@1", "test/n", "test/per_group", "test/ci95"} <= set(report)
    assert report["test/n"] == 16 and report["test/chance_R@1"] == pytest.approx(1 / STIMULI)
    assert report["test/gallery"]["items"] == STIMULI and report["test/gallery"]["names"][0] == "clip00"
    assert set(report["test/per_stimulus"]) == {f"clip{k:02d}" for k in range(STIMULI)}
    assert set(report["test/per_unit"]) == {"sub-05_run-0", "sub-05_run-1"}
    assert sum(row["n"] for row in report["test/per_unit"].values()) == 16
    assert report["test/eeg_to_stimulus/R@1"] == pytest.approx(report["test/eeg_to_video/R@1"])
    perm = report["test/permutation"]
    assert (
        perm["observed"] == report["test/eeg_to_stimulus/R@1"]
        and perm["p_value"] < 0.05
        and perm["permutations"] == 500
    )
    first = report["test/top_k"][0]
    assert first["stimulus"].startswith("clip") and len(first["top"]) == 5 and first["unit"] == "sub-05_run-0"
    assert first["top"][0]["score"] >= first["top"][1]["score"]
    assert "permutation p = " in out and "clip00" in out and "sub-05_run-1" in out and "np.str_" not in out
    assert (run / "eval" / "test.png").stat().st_size > 10_000

    assert embed_main([str(run), "--out", str(tmp_path / "e.npz"), "--split", "test", "-q"]) == 0
    with np.load(tmp_path / "e.npz") as f:
        assert f["stimulus_name"][0] == first["stimulus"]
    assert (
        retrieve_main(
            [
                str(run),
                "--eeg",
                str(tmp_path / "e.npz"),
                "--gallery",
                str(root),
                "-k",
                "3",
                "--json",
                str(tmp_path / "r.json"),
                "-q",
            ]
        )
        == 0
    )
    found = json.loads((tmp_path / "r.json").read_text())
    assert found["gallery_items"] == STIMULI  # 96 pairs, 16 distinct clips
    assert found["queries"][0]["shows"] == first["stimulus"]
    assert [h["stimulus"] for h in found["queries"][0]["results"]] == [t["stimulus"] for t in first["top"][:3]]
    hits = sum(q["results"][0]["stimulus"] == q["shows"] for q in found["queries"])
    assert hits == round(report["test/eeg_to_stimulus/R@1"] * 16)
    assert "shows clip" in capsys.readouterr().out


def test_permutation_test_against_chance():
    from peftzoo_tools.evaluate import gallery_ranks, permutation_test

    target = np.arange(20) % 10
    perfect = gallery_ranks(torch.nn.functional.one_hot(torch.as_tensor(target), 10).float())
    found = permutation_test(perfect, target, permutations=999)
    assert found["observed"] == 1.0 and found["p_value"] == pytest.approx(1 / 1000)
    noise = gallery_ranks(torch.randn(20, 10, generator=torch.Generator().manual_seed(0)))
    assert permutation_test(noise, target, permutations=999)["p_value"] > 0.05
    tied = gallery_ranks(torch.zeros(3, 4))
    assert tied.tolist() == [[4] * 4] * 3  # ties count against every item (as `ranks`)


def test_gallery_by_video_or_by_stimulus_and_its_names():
    """Gallery items are the distinct videos (byte-identical clips are one) or the stimulus ids; each is named by
    its stimulus, and two videos of one stimulus name are told apart by their first pair."""
    from peftzoo_data.base import PairedData
    from peftzoo_tools.evaluate import gallery_labels, gallery_names, stimulus_report

    video = np.zeros((6, 1, 2, 2, 3), np.uint8)
    for i, v in enumerate([0, 1, 0, 2, 1, 3]):
        video[i] += v
    data = PairedData(
        eeg=np.zeros((6, 1, 4), np.float32),
        video=video,
        sfreq=200,
        channels=["Cz"],
        fps=1,
        groups=np.array([0, 0, 0, 1, 1, 1]),
        splits={"test": np.arange(6)},
        stimulus=np.array([5, 6, 5, 7, 6, 7]),
        stimuli=[f"s{i}" for i in range(8)],
        group_names=["A", "B"],
    )
    idx = np.arange(6)
    by_video = gallery_labels(data, idx, "video")
    assert by_video.tolist() == [0, 1, 0, 2, 1, 3]
    assert gallery_names(data, idx, by_video) == ["s5", "s6", "s7 (pair 3)", "s7 (pair 5)"]
    by_stimulus = gallery_labels(data, idx, "stimulus")
    assert by_stimulus.tolist() == [0, 1, 0, 2, 1, 2] and gallery_names(data, idx, by_stimulus) == ["s5", "s6", "s7"]
    e = torch.nn.functional.one_hot(torch.as_tensor(by_stimulus), 3).float()
    report = stimulus_report(
        e, e, by_stimulus, ["s5", "s6", "s7"], ["A"] * 3 + ["B"] * 3, idx, "test", k=2, permutations=99
    )
    assert report["test/eeg_to_stimulus/R@1"] == 1.0 and report["test/per_unit"]["B"] == {
        "n": 3,
        "R@1": 1.0,
        "R@5": 1.0,
        "R@10": 1.0,
    }
    assert [t["stimulus"] for t in report["test/top_k"][3]["top"]][0] == "s7"
