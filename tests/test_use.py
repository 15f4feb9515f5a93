"""Using a finished run: recipes.load, evaluation with intervals, embed, retrieve, bundles, the peftzoo command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import recipes
import registry
from peftzoo_tools.evaluate import bootstrap_ci, evaluate, per_pair_values, ranks, split_report
from tests.conftest import run_dir_in, tiny_recipe

LABRAM = {"name": "labram_base", "depth": 1, "embed_dim": 100, "conv_channels": 4, "num_heads": 2}


def write_arrays(
    root: Path, n: int = 96, group_size: int = 4, channels: list[str] | None = None, split: bool = True
) -> Path:
    """An arrays directory (docs/reference/arrays.md) from the planted synthetic data, with groups and a
    train/val/test split of whole groups (test: the last quarter of the groups)."""
    data = registry.build(
        "datasets",
        {"name": "synthetic", "n": n, "seconds": 1, "frames": 4, "height": 20, "width": 20, "group_size": group_size},
        seed=3,
    )
    root.mkdir(parents=True)
    np.save(root / "eeg.npy", np.asarray(data.eeg))
    np.save(root / "video.npy", np.asarray(data.video))
    np.save(root / "groups.npy", data.groups)
    if split:
        g = data.groups.max() + 1
        labels = np.where(data.groups < g // 2, "train", np.where(data.groups < 3 * g // 4, "val", "test"))
        np.save(root / "split.npy", labels)
    (root / "meta.json").write_text(json.dumps({"sfreq": data.sfreq, "channels": channels or data.channels, "fps": 8}))
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A short run on arrays with a test split, keeping its best epoch: LaBraM (from a base file) with
    prefix tuning, which cannot merge, and a tiny video encoder with LoRA, which can."""
    from peftzoo_tools.run import main as run_main

    root = tmp_path_factory.mktemp("use")
    torch.manual_seed(0)
    torch.save(registry.build("encoders", LABRAM).state_dict(), root / "labram.pth")
    arrays = write_arrays(root / "arrays")
    recipe = tiny_recipe(
        **{
            "data": {"name": "arrays", "path": str(arrays)},
            "eeg.encoder": {**LABRAM, "checkpoint": str(root / "labram.pth")},
            "eeg.strategy": [{"name": "prefix", "length": 4}],
            "video.strategy": [{"name": "lora", "r": 2}],
            "train": {"epochs": 2, "batch_size": 16, "lr": 1e-2, "select": {"metric": "val/eeg_to_video/R@1"}},
        }
    )
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert run_main([str(root / "recipe.yaml"), "--output-dir", str(root / "runs"), "--quiet"]) == 0
    return run_dir_in(root / "runs")


def fails(capsys, fn, argv, *fragments) -> str:
    """fn(argv) exits 2 with one `error:` line holding every fragment."""
    assert fn([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


# -- metrics -------------------------------------------------------------------------------------
def test_nonfinite_rows_rank_last_and_are_counted():
    """#9.2: a NaN row scored rank 0 (R@1 = 1.0); it ranks last now, and evaluation counts it."""
    sim = torch.eye(4)
    sim[1] = float("nan")
    assert ranks(sim).tolist() == [1, 4, 1, 1]
    sim[2, 2] = float("inf")  # an inf partner is not a hit either
    assert ranks(sim).tolist() == [1, 4, 4, 1]
    eeg = torch.full((6, 3), float("nan"))  # a diverged model
    report = split_report(eeg, torch.nn.functional.normalize(torch.randn(6, 3), dim=1), np.arange(6), "val")
    assert report["val/eeg_to_video/R@1"] == 0 and report["val/video_to_eeg/R@1"] == 0
    assert report["val/eeg_to_video/mean_rank"] == 6 and report["val/nonfinite"] == 6


def test_training_evaluation_reports_nonfinite():
    class Nan(torch.nn.Module):
        loss = staticmethod(lambda e, v, g: torch.tensor(0.0))

        def embed_batch(self, batch, device):
            e = torch.eye(4)[batch["index"]]
            e[0] = float("nan")
            return e, torch.eye(4)[batch["index"]], batch["group"]

    metrics = evaluate(Nan(), [{"index": torch.arange(4), "group": torch.arange(4)}], torch.device("cpu"))
    assert metrics["val/nonfinite"] == 1 and metrics["val/eeg_to_video/R@1"] == 0.75


def test_planted_split_gives_expected_r1_and_group_intervals():
    """40 pairs in 10 groups of 4: the last 2 groups' EEG points at the next pair's video (rank 2),
    every other pair at its own: R@1 = 0.8 exactly, inside its 95% interval."""
    n = 40
    video = torch.eye(n)
    target = torch.arange(n)
    target[32:] = torch.tensor([33, 34, 35, 36, 37, 38, 39, 32])
    eeg = torch.eye(n)[target] * 0.9 + torch.eye(n) * 0.1  # partner second best for the last 8
    groups = np.arange(n) // 4
    report = split_report(eeg, video, groups, "test", resamples=1000, seed=0)
    assert report["test/eeg_to_video/R@1"] == pytest.approx(0.8)
    assert report["test/eeg_to_video/R@5"] == 1.0 and report["test/n"] == n and report["test/chance_R@1"] == 1 / n
    low, high = report["test/ci95"]["test/eeg_to_video/R@1"]
    assert low < 0.8 < high and low >= 0.5 and high <= 1.0
    assert report["test/per_group"]["0"] == 1.0 and report["test/per_group"]["9"] == 0.0
    # Groups, not pairs, are resampled: 8 misses in 2 whole groups vary more than 8 scattered misses.
    values = per_pair_values(eeg @ video.t())
    by_group = bootstrap_ci(values, groups)["eeg_to_video/R@1"]
    by_pair = bootstrap_ci(values, np.arange(n))["eeg_to_video/R@1"]
    assert by_group[1] - by_group[0] > by_pair[1] - by_pair[0]
    assert bootstrap_ci(values, groups) == bootstrap_ci(values, groups)  # seeded
    assert bootstrap_ci(values, np.zeros(n))["eeg_to_video/R@1"] is None  # one group: no interval


# -- load, evaluate, embed -----------------------------------------------------------------------
def test_load_reproduces_training_validation(run):
    """The rebuilt model (the best epoch's weights, which it takes by default) scores the run's own
    validation split exactly as training did at that epoch."""
    from peftzoo_tools.evaluate import main as evaluate_main

    model = recipes.load(run, device="cpu")
    assert model.weights == "best" and model.channels and len(model.channels) == 19
    assert evaluate_main([str(run), "--split", "val", "--no-plot", "-q"]) == 0
    ours = json.loads((run / "eval" / "val.json").read_text())
    best = json.loads((run / "run.json").read_text())["best"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in lines if "val/eeg_to_video/R@1" in r and r["epoch"] == best["epoch"]][-1]
    assert ours["val/eeg_to_video/R@1"] == best["value"]
    for key in ("val/eeg_to_video/R@1", "val/video_to_eeg/R@5", "val/eeg_to_video/mean_rank", "val/n"):
        assert ours[key] == pytest.approx(last[key], abs=1e-6), key
    assert ours["val/loss"] == pytest.approx(last["val/loss"], abs=1e-4)


def test_evaluate_test_split_writes_metrics_intervals_and_figure(run, capsys):
    from peftzoo_tools.embed import embed_pairs, resolve_data
    from peftzoo_tools.evaluate import main as evaluate_main

    assert evaluate_main([str(run), "--resamples", "200", "-q"]) == 0
    out = capsys.readouterr().out
    assert "test/eeg_to_video/R@1 = " in out and "95% CI" in out and "weights: best" in out
    report = json.loads((run / "eval" / "test.json").read_text())
    assert (run / "eval" / "test.png").stat().st_size > 10_000
    expected = {
        f"test/{d}/{m}"
        for d in ("eeg_to_video", "video_to_eeg")
        for m in ("R@1", "R@5", "R@10", "mean_rank", "median_rank")
    }
    assert expected | {"test/chance_R@1", "test/n", "test/per_group", "test/ci95", "test/nonfinite"} <= set(report)
    assert (
        report["test/n"] == 24 and report["test/chance_R@1"] == pytest.approx(1 / 24) and report["test/nonfinite"] == 0
    )
    assert len(report["test/per_group"]) == 6  # 6 test groups of 4
    for key, (low, high) in report["test/ci95"].items():
        assert low <= report[key] <= high, key
    # The numbers are those of recipes.load's embeddings of the test pairs.
    model = recipes.load(run, device="cpu")
    data, _ = resolve_data(model, None)
    e, v = embed_pairs(model, data, data.split("test"))
    again = split_report(e, v, data.groups[data.split("test")], "test", resamples=200)
    assert again["test/eeg_to_video/R@1"] == report["test/eeg_to_video/R@1"]
    assert again["test/video_to_eeg/mean_rank"] == report["test/video_to_eeg/mean_rank"]


def test_best_weights_are_used_when_present_and_say_so(run, tmp_path, capsys):
    from peftzoo_engine.weights import save_trainable
    from peftzoo_tools.evaluate import main as evaluate_main

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    best = recipes.load(copy, device="cpu")
    with torch.no_grad():
        for p in best.model.eeg.head.parameters():
            p.mul_(-1)  # planted: another set of weights
    save_trainable(best.model, copy / "best.safetensors", {"epoch": 1, "metric": "val/eeg_to_video/R@1", "value": 0.5})
    data = registry.build("datasets", {"name": "arrays", "path": str(run.parent.parent / "arrays")})
    loaded, last = recipes.load(copy, device="cpu"), recipes.load(copy, device="cpu", checkpoint="last")
    assert loaded.weights == "best" and last.weights == "last"
    assert torch.allclose(
        loaded.embed_eeg(data.eeg[:4]), best.model.eeg(torch.from_numpy(np.array(data.eeg[:4])), channels=data.channels)
    )
    assert not torch.allclose(loaded.embed_eeg(data.eeg[:4]), last.embed_eeg(data.eeg[:4]))
    assert evaluate_main([str(copy), "--no-plot", "-q"]) == 0
    assert json.loads((copy / "eval" / "test.json").read_text())["test/weights"] == "best"
    (copy / "best.safetensors").unlink()
    fails(capsys, evaluate_main, [copy, "--checkpoint", "best"], "best.safetensors is missing", "train.select")
    assert recipes.load(copy, device="cpu").weights == "last"


def test_embed_cli_writes_pairs_with_index_and_group(run, tmp_path):
    from peftzoo_tools.embed import main as embed_main

    assert embed_main([str(run), "--out", str(tmp_path / "e.npz"), "--split", "test", "-q"]) == 0
    with np.load(tmp_path / "e.npz") as f:
        assert set(f.files) == {"eeg", "video", "index", "group", "stimulus", "stimulus_name"}
        assert f["eeg"].shape == (24, 32) and f["video"].shape == (24, 32) and f["eeg"].dtype == np.float32
        assert np.allclose(np.linalg.norm(f["eeg"], axis=1), 1, atol=1e-5)
        data = registry.build("datasets", {"name": "arrays", "path": str(run.parent.parent / "arrays")})
        assert np.array_equal(f["index"], data.split("test")) and np.array_equal(
            f["group"], data.groups[data.split("test")]
        )
        model = recipes.load(run, device="cpu")
        assert np.allclose(f["eeg"], model.embed_eeg(data.eeg[data.split("test")]).numpy(), atol=1e-6)


def test_embed_eeg_matches_channels_by_name(run):
    """EEG with its rows in another order, named so, embeds the same as in the training order."""
    model = recipes.load(run, device="cpu")
    x = np.random.default_rng(0).standard_normal((3, 19, 200)).astype(np.float32) * 20
    order = np.random.default_rng(1).permutation(19)
    same = model.embed_eeg(x[:, order], channels=[model.channels[i] for i in order])
    assert torch.allclose(model.embed_eeg(x), same, atol=1e-5)
    assert model.embed_eeg(x[0]).shape == (1, 32)  # one window
    with pytest.raises(Exception, match="250 Hz.*resample"):
        model.embed_eeg(x, sfreq=250)


def test_commands_refuse_bad_input_with_one_message(run, tmp_path, capsys):
    from peftzoo_tools.embed import main as embed_main
    from peftzoo_tools.evaluate import main as evaluate_main
    from peftzoo_tools.retrieve import main as retrieve_main

    nowhere = tmp_path / "nope"
    for fn, extra in (
        (evaluate_main, []),
        (embed_main, ["--out", tmp_path / "x.npz"]),
        (retrieve_main, ["--eeg", tmp_path / "q.npy", "--gallery", tmp_path]),
    ):
        fails(capsys, fn, [nowhere, *extra], "does not exist", "run directory")
    unsplit = write_arrays(tmp_path / "unsplit", n=32, split=False)
    fails(capsys, evaluate_main, [run, "--data-path", unsplit, "--no-plot"], "no 'test' pairs", "split.npy", "--split")
    fails(capsys, embed_main, [run, "--out", tmp_path / "x.npz", "--split", "tset"], "no 'tset' pairs")
    renamed = write_arrays(tmp_path / "renamed", n=32, channels=[f"X{i}" for i in range(19)])
    fails(capsys, evaluate_main, [run, "--data-path", renamed, "--no-plot"], str(renamed), "X0")
    fails(capsys, embed_main, [run, "--out", tmp_path / "x.npz", "--data-path", renamed], "X0")
    fails(capsys, evaluate_main, [run, "--data-path", tmp_path / "none"], "not a directory")
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(Exception, match="32 channel names|19 channel names"):
        recipes.load(run, device="cpu").embed_eeg(np.zeros((2, 32, 200), np.float32))


def test_truncated_weights_file_is_one_message(run, tmp_path, capsys):
    """#15: a truncated trainable.safetensors gave a traceback."""
    from peftzoo_tools.evaluate import main as evaluate_main
    from peftzoo_trained.export import main as export_main

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for name in ("trainable.safetensors", "best.safetensors"):
        weights = copy / name
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    fails(capsys, evaluate_main, [copy, "--no-plot", "--checkpoint", "last"], "trainable.safetensors", "truncated")
    fails(capsys, evaluate_main, [copy, "--no-plot"], "best.safetensors", "truncated")
    fails(capsys, export_main, [copy, "--bundle", tmp_path / "b"], "truncated")
    assert not (tmp_path / "b").exists()


# -- retrieval -----------------------------------------------------------------------------------
def test_retrieve_returns_the_planted_partner_first(run, tmp_path, capsys):
    """A gallery whose video embeddings are the queries' EEG embeddings, shuffled and relabelled:
    each query's first hit is its planted partner's id, in both directions."""
    from peftzoo_tools.retrieve import main as retrieve_main

    rng = np.random.default_rng(0)
    queries = torch.nn.functional.normalize(torch.randn(12, 32), dim=1).numpy()
    perm = rng.permutation(12)
    ids = 1000 + np.arange(12)
    np.savez(tmp_path / "q.npz", eeg=queries, video=queries, index=np.arange(12), group=np.arange(12))
    np.savez(tmp_path / "g.npz", eeg=queries[perm], video=queries[perm], index=ids, group=ids)
    for flag in ("--eeg", "--video"):
        assert (
            retrieve_main(
                [
                    str(run),
                    flag,
                    str(tmp_path / "q.npz"),
                    "--gallery",
                    str(tmp_path / "g.npz"),
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
        assert found["direction"] == ("eeg_to_video" if flag == "--eeg" else "video_to_eeg")
        first = [q["results"][0]["item"] for q in found["queries"]]
        assert first == [int(ids[np.flatnonzero(perm == i)[0]]) for i in range(12)]
        assert all(
            len(q["results"]) == 3 and q["results"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)
            for q in found["queries"]
        )
    assert " rank " in capsys.readouterr().out
    fails(
        capsys, retrieve_main, [run, "--eeg", tmp_path / "q.npz", "--gallery", tmp_path / "g.npz", "-k", "50"], "k=50"
    )


def test_retrieve_from_raw_arrays_agrees_with_load(run, tmp_path):
    from peftzoo_tools.retrieve import main as retrieve_main

    arrays = write_arrays(tmp_path / "gallery", n=12)
    eeg = np.load(arrays / "eeg.npy")[:5]
    np.save(tmp_path / "q.npy", eeg)
    assert (
        retrieve_main(
            [
                str(run),
                "--eeg",
                str(tmp_path / "q.npy"),
                "--gallery",
                str(arrays),
                "-k",
                "2",
                "--json",
                str(tmp_path / "r.json"),
                "-q",
            ]
        )
        == 0
    )
    model = recipes.load(run, device="cpu")
    data = registry.build("datasets", {"name": "arrays", "path": str(arrays)})
    expect = model.retrieve(model.embed_eeg(eeg), model.embed_video(data.video), k=2).indices[:, 0].tolist()
    assert [q["results"][0]["item"] for q in json.loads((tmp_path / "r.json").read_text())["queries"]] == expect


# -- bundle --------------------------------------------------------------------------------------
def test_bundle_loads_alone_with_the_runs_embeddings(run, tmp_path, capsys):
    """A bundle of a run with an unmergeable strategy (prefix) and a mergeable one (LoRA) loads with
    the run, its data and the base checkpoint out of reach, and embeds as the run does."""
    from peftzoo_trained.export import main as export_main

    assert export_main([str(run), "--bundle", str(tmp_path / "b"), "-q"]) == 0
    info = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert [s["name"] for s in info["eeg"]["strategies"]] == ["prefix"] and info["video"]["merged"] == ["lora"]
    assert info["video"]["strategies"] == [] and info["data"]["channels"] and info["source"]["weights"] == "best"
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())["files"]
    assert set(manifest) == {
        "bundle.json",
        "recipe.yaml",
        "eeg_encoder.safetensors",
        "video_encoder.safetensors",
        "heads.safetensors",
    }
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left
    data = registry.build("datasets", {"name": "arrays", "path": str(run.parent.parent / "arrays")})
    x, frames = np.asarray(data.eeg[:8]), np.asarray(data.video[:8])
    model = recipes.load(run, device="cpu")
    e, v = model.embed_eeg(x), model.embed_video(frames)
    root = run.parent.parent
    hidden = root.with_name(root.name + "_away")
    root.rename(hidden)  # the run, its base checkpoint and its data are gone
    try:
        bundle = recipes.load(tmp_path / "b", device="cpu")
        assert "bundle" in bundle.weights and bundle.channels == model.channels
        with pytest.raises(Exception, match="best weights only"):
            recipes.load(tmp_path / "b", checkpoint="last")
        assert (bundle.embed_eeg(x) - e).abs().max() < 1e-5 and (bundle.embed_video(frames) - v).abs().max() < 1e-5
        assert "lora" not in " ".join(n for n, _ in bundle.model.video.encoder.named_parameters())
    finally:
        hidden.rename(root)
    from peftzoo_tools.evaluate import main as evaluate_main

    fails(capsys, evaluate_main, [tmp_path / "b", "--no-plot"], "is a bundle and holds no data", "--data-path")
    arrays = run.parent.parent / "arrays"
    assert evaluate_main([str(tmp_path / "b"), "--data-path", str(arrays), "--no-plot", "-q"]) == 0
    assert evaluate_main([str(run), "--data-path", str(arrays), "--no-plot", "-q"]) == 0  # writes run/eval/test.json
    from_bundle = json.loads((tmp_path / "b" / "eval" / "test.json").read_text())
    from_run = json.loads((run / "eval" / "test.json").read_text())
    assert from_bundle["test/eeg_to_video/R@1"] == from_run["test/eeg_to_video/R@1"]
    assert from_bundle["test/video_to_eeg/mean_rank"] == pytest.approx(from_run["test/video_to_eeg/mean_rank"])
    capsys.readouterr()
    fails(capsys, export_main, [run, "--bundle", tmp_path / "b"], "not empty")
    (tmp_path / "f").write_text("x")
    fails(capsys, export_main, [run, "--bundle", tmp_path / "f"], "existing file")
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "b", damaged)
    with open(damaged / "heads.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\0\0\0\1")
    with pytest.raises(Exception, match="manifest"):
        recipes.load(damaged)


# -- the peftzoo command -------------------------------------------------------------------------
def test_peftzoo_subcommands_wrap_the_modules(run, capsys, tmp_path):
    from peftzoo_tools.cli import COMMANDS, main

    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    for name in ("run", "resume", "evaluate", "embed", "retrieve", "export", "list"):
        assert f"  {name} " in listing
        assert main([name, "--help"]) == 0
        assert "usage:" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--split", "val", "--no-plot", "-q"]) == 0
    assert "val/eeg_to_video/R@1" in capsys.readouterr().out
    assert main(["evaluat"]) == 2 and "not a peftzoo subcommand" in capsys.readouterr().err
    assert main(["list", "--kind", "heads"]) == 0 and "linear" in capsys.readouterr().out
    assert set(COMMANDS) >= {"ingest", "sweep", "compare", "doctor", "cache"}


# -- re-checks: the median's interval, repeated stimuli, one validation group, a moved bundle -----
def test_median_rank_interval_is_the_group_bootstrap_of_the_median():
    """The vectorized interval equals a plain loop over the same group draws (lower median, as torch)."""
    from peftzoo_tools.evaluate import bootstrap_median_ci, group_draws

    rng = np.random.default_rng(1)
    r = rng.integers(1, 30, 57).astype(float)
    groups = rng.integers(0, 9, 57)
    inverse, counts = group_draws(groups, 300, seed=4)
    loop = []
    for row in counts:
        pooled = np.sort(np.concatenate([np.repeat(r[inverse == g], c) for g, c in enumerate(row)]))
        loop.append(pooled[(len(pooled) - 1) // 2])
    assert bootstrap_median_ci(r, groups, 300, seed=4, chunk=7) == pytest.approx(
        np.percentile(loop, [2.5, 97.5]).tolist()
    )
    assert bootstrap_median_ci(r, np.zeros(57), 300) is None  # one group: no interval
    report = split_report(torch.eye(12), torch.eye(12), np.arange(12) // 3, "test", resamples=100)
    assert report["test/ci95"]["test/eeg_to_video/median_rank"] == [1.0, 1.0]


def test_repeated_stimuli_are_not_counted_against_each_other():
    """A stimulus shown twice gives two pairs with identical videos (identical embeddings): without
    labels each ties with the other's partner and a perfect model scores R@1 = 0 on them."""
    from peftzoo_tools.evaluate import same_video_labels

    video = np.zeros((6, 2, 4, 4, 3), np.uint8)
    for i, stim in enumerate([0, 1, 0, 2, 1, 3]):
        video[i] += stim
    same = same_video_labels(video, np.arange(6))
    assert same.tolist() == [0, 1, 0, 2, 1, 3]
    v = torch.nn.functional.one_hot(torch.as_tensor(same), 4).float()
    pessimistic = split_report(v, v, np.arange(6), "test")
    assert pessimistic["test/eeg_to_video/R@1"] == pytest.approx(2 / 6)  # only the unrepeated stimuli
    report = split_report(v, v, np.arange(6), "test", same=same)
    assert report["test/eeg_to_video/R@1"] == 1.0 and report["test/video_to_eeg/R@1"] == 1.0
    assert report["test/distinct_videos"] == 4 and report["test/chance_R@1"] == 0.25
    # a wrong stimulus still ranks: EEG 0 pointing at stimulus 1 ranks behind both copies of it
    e = v.clone()
    e[0] = 0.9 * v[1] + 0.1 * v[0]
    assert ranks(e @ v.t(), same)[0] == 3


def test_one_group_with_repeated_videos_and_a_moved_bundle(run, tmp_path, capsys):
    """An arrays directory whose test split is one group and shows each video twice, evaluated,
    embedded and searched through a bundle that was moved to another folder after export."""
    from peftzoo_tools.embed import main as embed_main
    from peftzoo_tools.evaluate import main as evaluate_main
    from peftzoo_tools.retrieve import main as retrieve_main
    from peftzoo_trained.export import main as export_main

    source = run.parent.parent / "arrays"
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    eeg, video = np.load(source / "eeg.npy")[:8], np.load(source / "video.npy")[:8]
    video[4:] = video[:4]  # pairs 4-7 show the videos of pairs 0-3 again
    np.save(arrays / "eeg.npy", eeg)
    np.save(arrays / "video.npy", video)
    np.save(arrays / "groups.npy", np.full(8, 5, dtype=np.int64))
    np.save(arrays / "split.npy", np.array(["test"] * 8))
    shutil.copy(source / "meta.json", arrays / "meta.json")
    assert export_main([str(run), "--bundle", str(tmp_path / "b"), "-q"]) == 0
    moved = tmp_path / "elsewhere" / "bundle copy"
    moved.parent.mkdir()
    (tmp_path / "b").rename(moved)
    assert evaluate_main([str(moved), "--data-path", str(arrays), "--no-plot", "-q"]) == 0
    out = capsys.readouterr().out
    report = json.loads((moved / "eval" / "test.json").read_text())
    assert report["test/n"] == 8 and report["test/distinct_videos"] == 4 and report["test/chance_R@1"] == 0.25
    assert report["test/per_group"] == {"5": report["test/eeg_to_video/R@1"]}
    assert report["test/bootstrap"]["groups"] == 1 and all(ci is None for ci in report["test/ci95"].values())
    assert "95% CI" not in out and "test/eeg_to_video/median_rank = " in out
    model = recipes.load(moved, device="cpu")
    e, v = model.embed_eeg(eeg), model.embed_video(video)
    assert (v[4:] - v[:4]).abs().max() < 1e-6  # identical videos embed identically: they would tie
    same = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    assert report["test/eeg_to_video/R@1"] == pytest.approx(float((ranks(e @ v.t(), same) == 1).float().mean()))
    assert (
        embed_main([str(moved), "--data-path", str(arrays), "--split", "test", "--out", str(tmp_path / "e.npz"), "-q"])
        == 0
    )
    with np.load(tmp_path / "e.npz") as f:
        assert np.allclose(f["eeg"], e.numpy(), atol=1e-5) and f["group"].tolist() == [5] * 8
    np.save(tmp_path / "q.npy", eeg[:2])
    # the gallery is one item per distinct video: 4, named by the pairs' stimulus (here their group, 5, and
    # the first pair's index, since no stimulus names tell the 4 videos apart); --all-pairs keeps all 8
    assert (
        retrieve_main(
            [
                str(moved),
                "--eeg",
                str(tmp_path / "q.npy"),
                "--gallery",
                str(arrays),
                "-k",
                "4",
                "--json",
                str(tmp_path / "r.json"),
                "-q",
            ]
        )
        == 0
    )
    found = json.loads((tmp_path / "r.json").read_text())["queries"]
    assert [len(q["results"]) for q in found] == [4, 4]
    assert sorted(hit["item"] for hit in found[0]["results"]) == [0, 1, 2, 3]
    assert {hit["stimulus"] for hit in found[0]["results"]} == {f"5 (pair {i})" for i in range(4)}
    assert (
        retrieve_main(
            [
                str(moved),
                "--eeg",
                str(tmp_path / "q.npy"),
                "--gallery",
                str(arrays),
                "-k",
                "8",
                "--all-pairs",
                "--json",
                str(tmp_path / "r.json"),
                "-q",
            ]
        )
        == 0
    )
    assert [len(q["results"]) for q in json.loads((tmp_path / "r.json").read_text())["queries"]] == [8, 8]


def test_a_run_whose_validation_is_one_group_with_repeated_videos(tmp_path, capsys):
    """Training's validation metrics and `peftzoo_tools.evaluate --split val` agree on a validation split
    of one group whose pairs repeat two videos (features cached: evaluation reads the data's
    videos to see which pairs share one); the intervals are absent (one group), not made up."""
    from peftzoo_tools.evaluate import main as evaluate_main
    from peftzoo_tools.run import main as run_main

    arrays = write_arrays(tmp_path / "arrays", n=48, group_size=4)
    groups = np.load(arrays / "groups.npy")
    np.save(arrays / "split.npy", np.where(groups == 0, "val", np.where(groups == 1, "test", "train")))
    video = np.load(arrays / "video.npy")
    video[2:4] = video[0:2]  # the validation group shows 2 videos twice
    np.save(arrays / "video.npy", video)
    recipe = tiny_recipe(
        **{
            "data": {"name": "arrays", "path": str(arrays)},
            "train": {"epochs": 2, "batch_size": 8, "lr": 1e-2, "select": {"metric": "val/eeg_to_video/R@1"}},
        }
    )
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert run_main([str(tmp_path / "r.yaml"), "--output-dir", str(tmp_path / "runs"), "--quiet"]) == 0
    run = run_dir_in(tmp_path / "runs")
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in lines if "val/eeg_to_video/R@1" in r][-1]
    assert trained["val/chance_R@1"] == 0.5 and trained["val/n"] == 4
    assert evaluate_main([str(run), "--split", "val", "--checkpoint", "last", "--no-plot", "-q"]) == 0
    report = json.loads((run / "eval" / "val.json").read_text())
    for key in (
        "val/eeg_to_video/R@1",
        "val/video_to_eeg/R@1",
        "val/eeg_to_video/median_rank",
        "val/video_to_eeg/mean_rank",
    ):
        assert report[key] == pytest.approx(trained[key], abs=1e-6), key
    assert report["val/distinct_videos"] == 2 and list(report["val/per_group"]) == ["0"]
    assert all(ci is None for ci in report["val/ci95"].values())


def test_an_unfinished_run_is_named_with_the_command_that_finishes_it(tmp_path):
    """Loading a run stopped before its weights were written says how to finish it (--resume)."""
    import json as _json

    from peftzoo_trained.loading import weights_file
    from registry.errors import UserError

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    (run / "run.json").write_text(_json.dumps({"status": "interrupted"}))
    with pytest.raises(UserError, match=r"the run is interrupted .* python -m recipes.run --resume"):
        weights_file(run, None)
    (run / "run.json").write_text(_json.dumps({"status": "completed"}))
    with pytest.raises(UserError, match="give a finished run directory"):
        weights_file(run, None)
