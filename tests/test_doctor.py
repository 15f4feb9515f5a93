"""The doctor names every planted fault and stays quiet on healthy runs (issue #14).

Each planted run is a few seconds of tiny encoders on small data, trained in this process by the
real `peftzoo_tools.run` entry point and shared by the tests through a module-scoped cache; faults that
need a component (a head ending in ReLU, a slow data set) come from a test plugin registered by
entry points (tests/doctor_faults/).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import registry
from peftzoo_tools.doctor import diagnose
from peftzoo_tools.doctor.cli import main as doctor_main
from peftzoo_tools.doctor.live import LiveDoctor
from peftzoo_tools.run import main as run_main
from tests.conftest import ROOT, run_dir_in, run_python, tiny_recipe

# Small but learning: 192 training pairs, 6 steps an epoch, a train line every step.
BASE = {"train.log_every": 1, "train.epochs": 6, "train.lr": 5e-3, "data.n": 256}

ENTRY_POINTS = """[peftzoo.heads]
relu_linear = doctor_faults:ReluLinearHead

[peftzoo.datasets]
slow_synthetic = doctor_faults:SlowSynthetic

[peftzoo.strategies]
train_mode_only = doctor_faults:TrainModeOnlyAdapter
"""


@pytest.fixture(scope="module")
def fault_plugin(tmp_path_factory):
    """tests/doctor_faults as an installed distribution (dist-info with entry points) on sys.path."""
    site = tmp_path_factory.mktemp("fault_site")
    shutil.copy(ROOT / "tests" / "doctor_faults" / "doctor_faults.py", site)
    info = site / "doctor_faults-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: doctor-faults\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path.insert(0, str(site))
    registry.refresh()
    yield site
    sys.path.remove(str(site))
    registry.refresh()


def _synthetic(n: int, seed: int = 0):
    from peftzoo_data.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(n=n, seconds=1, frames=4, height=20, width=20), seed)


def _arrays(root: Path, eeg: np.ndarray, video: np.ndarray, channels: list[str]) -> Path:
    root.mkdir(parents=True)
    np.save(root / "eeg.npy", eeg.astype(np.float32))
    np.save(root / "video.npy", video.astype(np.uint8))
    (root / "meta.json").write_text(json.dumps({"sfreq": 200, "channels": channels, "fps": 8}))
    return root


def shuffled_pairs(root: Path) -> Path:
    """Every EEG window paired with another window's clip: nothing links the two sides."""
    data = _synthetic(256)
    perm = np.random.default_rng(1).permutation(256)
    return _arrays(root, np.asarray(data.eeg), np.asarray(data.video)[perm], data.channels)


def eeg_in_millivolts(root: Path) -> Path:
    """EEG given in millivolts (volts are refused before training by peftzoo_data.checks; millivolts
    only warned about there, so such runs exist)."""
    data = _synthetic(256)
    return _arrays(root, np.asarray(data.eeg) * 1e-3, np.asarray(data.video), data.channels)


def repeated_stimuli_without_groups(root: Path) -> Path:
    """4 consecutive windows of one stimulus (as SEED-DV's 5 clips of a concept), and no groups.npy."""
    data = _synthetic(64)
    rng = np.random.default_rng(2)
    eeg = np.repeat(np.asarray(data.eeg), 4, axis=0)
    eeg = eeg + rng.standard_normal(eeg.shape).astype(np.float32) * 5
    video = np.repeat(np.asarray(data.video), 4, axis=0).astype(np.int16)
    video = np.clip(video + rng.integers(-6, 7, video.shape), 0, 255)
    return _arrays(root, eeg, video, data.channels)


def half_mispaired(root: Path) -> Path:
    """192 training pairs, half of them given another training pair's clip (as a misaligned trigger
    would), and 128 correctly paired validation pairs (split.npy). The clean half teaches the shared
    signal first; memorizing the mispaired half later pulls the heads away from it. (Clean tiny
    splits of the synthetic data do not overfit: its signal is shared by every pair.)"""
    from peftzoo_data.synthetic import SyntheticConfig, generate

    data = generate(SyntheticConfig(n=320, seconds=1, frames=4, height=20, width=20, eeg_noise_uv=3, video_noise=3), 0)
    video = np.asarray(data.video).copy()
    wrong = np.random.default_rng(1).choice(192, 96, replace=False)
    video[wrong] = video[np.roll(wrong, 1)]
    root = _arrays(root, np.asarray(data.eeg), video, data.channels)
    np.save(root / "split.npy", np.array(["train"] * 192 + ["val"] * 128))
    return root


def arrays_data(root: Path) -> dict:
    return {"name": "arrays", "path": str(root), "val_fraction": 0.25}


CASES = {
    "flat_loss": lambda tmp: {"data": arrays_data(shuffled_pairs(tmp / "shuffled"))},
    "nonnegative_embeddings": lambda tmp: {"eeg.head": "relu_linear"},
    "frozen_adapter": lambda tmp: {"eeg.strategy": "lora", "train.lr_scales.adapter": 0},
    "temperature_at_clamp": lambda tmp: {"loss": {"name": "clip", "temperature": 0.01, "learnable_temperature": False}},
    "temperature_collapsed": lambda tmp: {"loss": {"name": "clip", "temperature": 1.0, "learnable_temperature": False}},
    "embedding_collapse": lambda tmp: {"data.video_signal": 0, "data.video_noise": 0},
    "data_bound": lambda tmp: {
        "data.name": "slow_synthetic",
        "data.delay_s": 0.004,
        "train.feature_cache": False,
        "train.epochs": 3,
    },
    "same_group_negatives": lambda tmp: {"data": arrays_data(repeated_stimuli_without_groups(tmp / "repeated"))},
    # lr 1e30 on the heads (not the temperature): the first update throws the embeddings to inf.
    "nonfinite_steps": lambda tmp: {"train.lr": 1e30, "train.lr_scales.loss": 0},
    "eeg_units": lambda tmp: {"data": arrays_data(eeg_in_millivolts(tmp / "millivolts"))},
    # Heads trained 4 epochs at a sound lr, then a second stage at 6x that lr: the loss spikes from 3.1
    # to 5.2 and the heads collapse (a fixed temperature, as ImageBind, so only the heads diverge).
    "divergence": lambda tmp: {
        "loss": {"name": "clip", "temperature": 0.07, "learnable_temperature": False},
        "train.lr": 0.05,
        "train.epochs": None,
        "train.stages": [{"epochs": 4}, {"epochs": 4, "lr": 0.3}],
    },
    # Large heads without weight decay, 40 epochs on half-mispaired training pairs: validation R@1
    # peaks (0.195 at epoch 16) and falls (0.121 at epoch 40) while the training loss keeps falling.
    "overfitting": lambda tmp: {
        "data": {"name": "arrays", "path": str(half_mispaired(tmp / "mispaired"))},
        "train.epochs": 40,
        "eval.every_epochs": 2,
        "train.log_every": 3,
        "train.weight_decay": 0.0,
        "eeg.head": {"name": "mlp", "hidden": [512]},
        "video.head": {"name": "mlp", "hidden": [512]},
    },
}


# Codes the live checks can see during training (the others need the data or the finished weights).
LIVE_SEES = {
    "eeg_units",
    "nonnegative_embeddings",
    "frozen_adapter",
    "temperature_at_clamp",
    "temperature_collapsed",
    "embedding_collapse",
    "data_bound",
    "nonfinite_steps",
    "flat_loss",
    "divergence",
    "overfitting",
}


def train(recipe: dict, out: Path) -> Path:
    path = out / "recipe.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run_main([str(path), "--output-dir", str(out / "runs"), "-q"])
    run = run_dir_in(out / "runs")
    assert run is not None, "no run directory was made"
    return run


@pytest.fixture(scope="module")
def planted(tmp_path_factory, fault_plugin):
    """code -> run directory with that fault planted, trained on first use."""
    made: dict[str, Path] = {}

    def get(code: str) -> Path:
        if code not in made:
            tmp = tmp_path_factory.mktemp(code)
            changes = {**BASE, **CASES[code](tmp)}
            recipe = tiny_recipe(**{k: v for k, v in changes.items() if v is not None})
            if changes.get("train.epochs", 1) is None:
                recipe["train"].pop("epochs")
            recipe["name"] = code
            made[code] = train(recipe, tmp)
        return made[code]

    return get


# Measured, not planted: how long a step waited for data depends on the machine's load (a CI machine beside
# other work sees data_bound in any run), so the tests leave it out unless it is the fault they planted.
TIMING_CODES = {"data_bound"}


def loud(report, keep: set[str] = frozenset()) -> set[str]:
    """The warnings and errors, less the timing codes (unless kept)."""
    return {f.code for f in report.findings if f.severity != "info" and (f.code not in TIMING_CODES or f.code in keep)}


@pytest.mark.parametrize("code", list(CASES))
def test_doctor_names_the_planted_fault(planted, code):
    run = planted(code)
    report = diagnose(run)
    assert loud(report, keep={code}) == {code}, [f.to_json() for f in report.findings]
    for f in report.findings:
        assert f.evidence and f.fix
    # The live checks ran inside training: each code they could see is a diagnosis line, no other.
    live = {d["code"] for d in report.run.of_type("diagnosis") if d["severity"] != "info"} - (TIMING_CODES - {code})
    assert live <= {code}, live
    if code in LIVE_SEES:
        assert live == {code}


def test_an_lr_too_high_from_the_start_is_divergence(tmp_path):
    """lr 0.3 from the first step: the loss jumps during warm-up (3.7 to 5.8 at step 2) and the heads
    collapse; the doctor names the spike, and the collapse it causes only as explained by it."""
    recipe = tiny_recipe(
        **{**BASE, "loss": {"name": "clip", "temperature": 0.07, "learnable_temperature": False}, "train.lr": 0.3}
    )
    recipe["name"] = "lr_from_start"
    report = diagnose(train(recipe, tmp_path))
    assert loud(report) == {"divergence"}, [f.to_json() for f in report.findings]
    found = next(f for f in report.findings if f.code == "divergence")
    assert "spike" in found.evidence and "train.lr" in found.fix


def test_healthy_bundled_recipe_gets_no_warning(tmp_path):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert run_main(["head_only_tiny", "--output-dir", str(tmp_path), "-q"]) == 0
    report = diagnose(run_dir_in(tmp_path))
    assert report.run.evals and not loud(report), [f.to_json() for f in report.findings]


def test_healthy_small_run_gets_no_warning(planted, tmp_path):
    recipe = tiny_recipe(**BASE)
    report = diagnose(train(recipe, tmp_path))
    assert not loud(report), [f.to_json() for f in report.findings]


def test_cli_json_and_exit_codes(planted, tmp_path, capsys):
    run = planted("temperature_at_clamp")
    out = run_python("-m", "recipes.doctor", str(run), "--json", "--no-model")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["code"] for r in rows if r["severity"] != "info" and r["code"] not in TIMING_CODES] == [
        "temperature_at_clamp"
    ]
    assert all(set(r) == {"code", "severity", "evidence", "fix"} for r in rows)
    assert doctor_main([str(run), "--no-model"]) == 0
    text = capsys.readouterr().out
    assert "WARNING temperature_at_clamp" in text and "loss.temperature" in text
    for bad in (tmp_path / "missing", tmp_path, run / "run.json"):
        assert doctor_main([str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "run directory" in err[0], err


def test_live_doctor_reports_each_code_once_as_diagnosis_lines(planted, caplog):
    run = planted("temperature_at_clamp")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    live = LiveDoctor(recipe, total_steps=lines[-1]["step"], splits={"train": 192})
    out = [d for line in lines for d in live.observe(line) if d["code"] not in TIMING_CODES]
    assert [d["code"] for d in out] == ["temperature_at_clamp"]
    assert out[0]["type"] == "diagnosis" and out[0]["severity"] == "warning" and "step" in out[0]
    assert "temperature_at_clamp" in caplog.text
    # Per step only the first non-finite step is reported, with its step.
    assert live.after_step(5, True) == []
    first = live.after_step(7, False)
    assert first[0]["code"] == "nonfinite_steps" and first[0]["first_step"] == 7
    assert live.after_step(8, False) == []


def test_live_doctor_embedding_and_frozen_checks():
    from peftzoo_tools.doctor.embedding_checks import check_embeddings

    torch.manual_seed(0)
    model = torch.nn.ModuleDict(
        {
            "eeg": torch.nn.ModuleDict(
                {"encoder": torch.nn.Linear(4, 4), "head": torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())}
            )
        }
    )
    live = LiveDoctor(tiny_recipe(), total_steps=10)
    live.start(model)
    healthy = torch.nn.functional.normalize(torch.randn(64, 16), dim=1)
    assert check_embeddings("eeg", healthy) == []
    relu = torch.nn.functional.normalize(torch.relu(torch.randn(64, 16)), dim=1)
    found = live.after_eval(1, 10, model=model, eeg=relu, video=healthy)
    assert {d["code"] for d in found} == {"nonnegative_embeddings", "frozen_adapter"}
    assert "ReLU" in next(d for d in found if d["code"] == "nonnegative_embeddings")["evidence"]
    assert live.after_eval(2, 20, model=model, eeg=relu) == []  # each code once


def _record(losses, evals, **recipe_train):
    """A run read from metrics lines written here: the edges of the curve checks (noise that must
    stay quiet, train.select turning overfitting into info) beside the planted runs above."""
    from peftzoo_tools.doctor.run_reader import RunRecord

    lines = [
        {"type": "train", "epoch": 1 + i // 10, "step": i + 1, "train/loss": v, "logit_scale": 14.0}
        for i, v in enumerate(losses)
    ]
    for epoch, r1 in evals:
        lines.append(
            {
                "type": "eval",
                "epoch": epoch,
                "step": epoch * 10,
                "val/eeg_to_video/R@1": r1,
                "val/video_to_eeg/R@1": r1,
                "val/chance_R@1": 0.01,
                "val/n": 100,
            }
        )
    recipe = {
        "train": {"batch_size": 32, "lr": 1e-3, "warmup_fraction": 0.1, **recipe_train},
        "loss": {"name": "clip", "max_logit_scale": 100},
    }
    return RunRecord(path=Path("."), info={"steps": len(losses), "splits": {"train": 320}}, recipe=recipe, lines=lines)


def test_divergence_on_spiking_and_rising_curves():
    from peftzoo_tools.doctor.loss_checks import check_divergence

    falling = list(np.linspace(3.4, 1.0, 60))
    assert check_divergence(_record(falling, [])) == []
    spiking = falling[:40] + [4.5] + falling[41:]
    found = check_divergence(_record(spiking, []))
    assert [f.code for f in found] == ["divergence"] and "step 41" in found[0].evidence and "train.lr" in found[0].fix
    rising = list(np.linspace(3.4, 1.0, 20)) + list(np.linspace(1.0, 3.0, 40))
    assert "rose after warm-up" in check_divergence(_record(rising, []))[0].evidence
    noisy = [v + 0.3 * (-1) ** i for i, v in enumerate(falling)]
    assert check_divergence(_record(noisy, [])) == []
    # A small batch's curve swings by +-0.7 nat: a value 2 nat above its median is within 6 robust SDs.
    swinging = [3.0 + 0.7 * (-1) ** i for i in range(60)]
    assert check_divergence(_record(swinging[:40] + [5.0] + swinging[41:], [])) == []
    # Near ln(B) a jump of 2 nat is a spike although it is less than twice the median.
    plateau = [3.1 + 0.05 * (-1) ** i for i in range(60)]
    assert "spike" in check_divergence(_record(plateau[:40] + [5.1] + plateau[41:], []))[0].evidence


def test_overfitting_needs_a_significant_fall_while_training_loss_falls():
    from peftzoo_tools.doctor.loss_checks import check_overfitting

    losses = list(np.linspace(3.0, 0.2, 80))
    peak = [(1, 0.2), (2, 0.4), (3, 0.5), (4, 0.42), (5, 0.36), (6, 0.3), (7, 0.25), (8, 0.22)]
    found = check_overfitting(_record(losses, peak))
    assert [f.code for f in found] == ["overfitting"] and found[0].severity == "warning"
    assert "epoch 3" in found[0].evidence and "train.select" in found[0].fix
    assert (
        check_overfitting(_record(losses, peak, select={"metric": "val/eeg_to_video/R@1", "mode": "max"}))[0].severity
        == "info"
    )
    wobble = [(1, 0.2), (2, 0.4), (3, 0.5), (4, 0.49), (5, 0.48), (6, 0.5), (7, 0.47), (8, 0.48)]
    assert check_overfitting(_record(losses, wobble)) == []


def test_without_the_model_the_runs_live_findings_stand_in(planted, capsys):
    run = planted("frozen_adapter")
    assert doctor_main([str(run), "--json", "--no-model"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["code"] not in TIMING_CODES]
    assert [r["code"] for r in rows] == ["frozen_adapter"] and "seen live at step" in rows[0]["evidence"]
    assert rows[0]["fix"].startswith("train.lr_scales.adapter: 1.0")


def test_frozen_adapter_is_an_error_only_when_a_whole_side_never_moved():
    from peftzoo_tools.doctor.adapter_checks import check_frozen

    init = {"eeg.encoder.a.lora_A": torch.ones(2, 2), "eeg.encoder.a.lora_B": torch.zeros(2, 2)}
    moved = {k: v + 1 for k, v in init.items()}
    assert check_frozen(init, moved, 10, {}) == []
    assert check_frozen(init, {**moved, "eeg.encoder.a.lora_B": torch.zeros(2, 2)}, 10, {})[0].severity == "info"
    found = check_frozen(init, dict(init), 10, {"train": {"lr_scales": {"adapter": 0}}})
    assert (
        found[0].severity == "error"
        and "all zero" in found[0].evidence
        and found[0].fix.startswith("train.lr_scales.adapter")
    )


def test_frozen_adapter_seen_in_the_features_when_the_weights_moved(planted, tmp_path):
    """An adapter that trains (its tensors move) but acts in training mode only: the weight check is
    silent, the features equal the base encoder's, and the doctor names frozen_adapter from them.
    A LoRA trained the same way moves the features far beyond the tolerance."""
    from peftzoo_tools.doctor import model_probe
    from peftzoo_tools.doctor.adapter_checks import FEATURE_RTOL
    from peftzoo_tools.doctor.run_reader import read_run

    changes = {**BASE, "train.epochs": 4, "eeg.strategy": "train_mode_only"}
    run = train(tiny_recipe(**changes), tmp_path / "train_mode_only")
    report = diagnose(run)
    assert loud(report) == {"frozen_adapter"}, [f.to_json() for f in report.findings]
    finding = next(f for f in report.findings if f.code == "frozen_adapter")
    assert "features equal the base encoder's" in finding.evidence and "eval mode" in finding.fix
    # The weights did move: the feature comparison, not the weight check, found it.
    probe, why = model_probe.rebuild(report.run)
    assert why is None and set(probe.base) == {"eeg"}
    names = [n for n in probe.initial if n.startswith("eeg.")]
    assert names and all(not torch.equal(probe.saved[n], probe.initial[n]) for n in names if n.endswith("1.weight"))
    # nothing the curves or live checks see (beside the load-measured timing codes)
    assert {f.code for f in diagnose(run, model=False).findings} - TIMING_CODES <= {"flat_loss"}

    healthy = train(tiny_recipe(**{**changes, "eeg.strategy": "lora"}), tmp_path / "lora")
    probe, _ = model_probe.rebuild(read_run(healthy))
    gap = model_probe.base_feature_gap(probe, "eeg", probe.data.split("val")[:32])
    print(f"trained LoRA vs base encoder: relative feature distance {gap:.3g} (tolerance {FEATURE_RTOL:g})")
    assert gap > 100 * FEATURE_RTOL  # so the feature check stays quiet on it


@pytest.mark.parametrize("d", [32, 256, 1024])
def test_embedding_collapse_rule_does_not_depend_on_the_dimension(d):
    """Measured statistics (benchmarks/embedding_spread.py) do not scale with d; the rule must not
    either: isotropic and sparse (10 active coordinates) embeddings are healthy at every d, inputs on
    one direction or one line are collapsed at every d."""
    from peftzoo_tools.doctor.embedding_checks import check_embeddings

    torch.manual_seed(0)
    unit = torch.nn.functional.normalize
    iso = unit(torch.randn(64, d), dim=1)
    sparse = torch.zeros(64, d)
    sparse[:, :10] = torch.randn(64, 10)
    shared = unit(torch.randn(d), dim=0) + 0.01 * torch.randn(64, d) / d**0.5
    line = torch.zeros(64, d)
    line[:, 0], line[:, 1] = torch.randn(64).sign(), 0.05 * torch.randn(64)
    assert check_embeddings("eeg", iso) == [] and check_embeddings("eeg", unit(sparse, dim=1)) == []
    for collapsed in (shared, line):
        assert [f.code for f in check_embeddings("eeg", unit(collapsed, dim=1))] == ["embedding_collapse"]


@pytest.mark.parametrize(
    "strategy", ["lora", "ia3", "loha", "lokr", "adalora", "bitfit", "full", "last_k", "prompt", ["lora", "bitfit"]]
)
def test_base_encoder_is_rebuilt_under_every_strategy(reg, strategy):
    """frozen_adapter's base encoder: the encoder without strategies, holding the run's starting
    weights, found under every built-in strategy's renames (peft's base_layer). Strategies that are
    the identity at the start give exactly the base features then; prompts change them from step 0."""
    from peftzoo_tools.doctor import model_probe
    from recipes import schema

    recipe = schema.validate(tiny_recipe(**{"eeg.strategy": strategy, "video.strategy": strategy}), reg)
    model_probe._seed(0)
    data = reg.build("datasets", recipe.data, seed=0)
    started = model_probe._build(recipe, data, reg).eval()
    frames = torch.from_numpy(np.array(data.video[:4]))
    eeg = torch.from_numpy(np.array(data.eeg[:4], dtype=np.float32))
    for side in ("eeg", "video"):
        base, why = model_probe.base_encoder(getattr(recipe, side).encoder, getattr(started, side).encoder, reg)
        assert base is not None, why
        encoder = getattr(started, side).encoder
        with torch.no_grad():
            if side == "eeg":
                a, b = encoder(eeg, channels=data.channels), base.eval()(eeg, channels=data.channels)
            else:
                a, b = encoder(encoder.preprocess(frames)), base.eval()(base.preprocess(frames))
        assert torch.equal(a, b) != (strategy == "prompt"), side


def _written_run(root: Path, epochs: int, steps: int, status: str = "interrupted", batch: int = 32) -> Path:
    """A run directory written by hand: 6 steps an epoch, a loss at ln(B) and R@1 at chance for
    `steps` steps of a plan of `epochs` epochs (what an interrupted or still running run leaves)."""
    root.mkdir(parents=True)
    recipe = tiny_recipe(**{"train.epochs": epochs, "train.batch_size": batch, "train.log_every": 1})
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (root / "run.json").write_text(json.dumps({"status": status, "splits": {"train": 192, "val": 64}}))
    lines = [{"type": "stage", "epoch": 0, "step": 0, "stage": 0, "epochs": epochs}]
    per_epoch = 192 // batch
    for step in range(1, steps + 1):
        lines.append(
            {"type": "train", "epoch": (step - 1) // per_epoch + 1, "step": step, "train/loss": float(np.log(batch))}
        )
        if step % per_epoch == 0:
            epoch = step // per_epoch
            lines.append({"type": "epoch", "epoch": epoch, "step": step, "data_wait_frac": 0.0, "skipped_steps": 0})
            lines.append(
                {
                    "type": "eval",
                    "epoch": epoch,
                    "step": step,
                    "val/eeg_to_video/R@1": 1 / 64,
                    "val/video_to_eeg/R@1": 1 / 64,
                    "val/chance_R@1": 1 / 64,
                    "val/n": 64,
                }
            )
    (root / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def test_flat_loss_waits_for_the_planned_warmup_and_enough_steps(tmp_path):
    """Probe #14: a 200-epoch run stopped (SIGTERM) at step 12 was judged against a warm-up of 10% of
    the 12 steps it reached, not of the 1200 it planned, and got flat_loss as an error while its lr
    was still ramping; a run of 6 steps in all (batch 128 on 192 pairs) got the same. Both are info
    now; the same curve over 36 steps of a 6-epoch plan is still an error."""
    stopped = diagnose(_written_run(tmp_path / "stopped", epochs=200, steps=12), model=False)
    assert stopped.run.warmup_steps() == 120
    assert [(f.code, f.severity) for f in stopped.findings] == [("flat_loss", "info")]
    assert "warm-up (step 12 of 120" in stopped.findings[0].evidence
    short = diagnose(_written_run(tmp_path / "short", epochs=6, steps=6, status="completed", batch=128), model=False)
    assert [(f.code, f.severity) for f in short.findings] == [("flat_loss", "info")], [
        f.to_json() for f in short.findings
    ]
    full = diagnose(_written_run(tmp_path / "full", epochs=6, steps=36, status="completed"), model=False)
    assert [(f.code, f.severity) for f in full.findings] == [("flat_loss", "error")]
    assert full.run.warmup_steps() == 4  # 10% of 6 epochs x 6 steps, as peftzoo_engine.optim computes it


def test_not_a_run_names_what_the_directory_is_and_the_run_to_give(tmp_path, capsys):
    """Probe #14: an --output-dir holding a run, a sweep directory and an export all got the generic
    'no run.json or recipe.yaml'; each now says what it is and which run to give."""
    run = _written_run(tmp_path / "out" / "a-run", epochs=6, steps=6)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.json").write_text("[]")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "manifest.json").write_text(json.dumps({"source": {"run": str(run)}}))
    expected = {"out": str(run), "sweep": "sweep directory", "export": f"exported from ({run})"}
    for name, needle in expected.items():
        assert doctor_main([str(tmp_path / name), "--no-model"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "run directory" in err[0] and needle in err[0], err


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """Probe #14: `python -m recipes.doctor RUN | head -1` ended in a BrokenPipeError traceback."""
    import subprocess

    run = _written_run(tmp_path / "run", epochs=6, steps=36, status="completed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "recipes.doctor", str(run), "--no-model"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the doctor writes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err, err


def test_bad_device_and_sample_are_one_error_line(tmp_path, capsys):
    """Probe #14: `--device cuda` on a machine without CUDA (or a misspelt device) ended in a
    RuntimeError traceback; `--sample -5` was silently raised to 4."""
    run = _written_run(tmp_path / "run", epochs=6, steps=36, status="completed")
    bad = ["nonsense"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in bad:
        assert doctor_main([str(run), "--device", device]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: --device") and "cpu" in err[0], err
    with pytest.raises(SystemExit) as stop:
        doctor_main([str(run), "--sample", "-5"])
    assert stop.value.code == 2 and "--sample -5" in capsys.readouterr().err


def test_a_failed_run_says_why_it_failed(tmp_path, capsys):
    """Probe #14: a run that failed (run.json `error`, e.g. a stage refused at its boundary) was
    diagnosed from its curves alone; the doctor now says first why it stopped."""
    run = _written_run(tmp_path / "run", epochs=6, steps=12, status="failed")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "error": "train.stages: eeg.strategy: lora: refused"}))
    assert doctor_main([str(run), "--no-model"]) == 0
    out = capsys.readouterr().out
    assert "(failed, 12 steps)" in out and "note: the run failed: train.stages: eeg.strategy: lora: refused" in out, out


def test_no_negatives_explains_a_forced_run_and_masking_is_never_the_advice(tmp_path, monkeypatch):
    """Issue 19's first run, forced past the preflight check: a split by subject whose train split is one
    recording, groups.npy by recording, masking on, a built-in LoRA. Every negative is masked and the loss
    is exactly 0: the doctor says no_negatives (an error), not frozen_adapter (only info, explained by it).
    Fixed by hand as the user did (masking off, random batches), it never advises turning masking back on."""
    from recipes import preflight
    from tests.test_negatives import study

    root = study(tmp_path / "one_recording", stimulus_file=False, one_train_recording=True)
    monkeypatch.setattr(preflight, "check_negatives", lambda *args, **kwargs: None)  # what the check now refuses
    base = {**BASE, "data": {"name": "arrays", "path": str(root)}, "train.batch_size": 8, "eeg.strategy": "lora"}
    run = train(tiny_recipe(**base), tmp_path / "forced")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_lines = [x for x in lines if x.get("type") == "train"]
    assert train_lines and all(x["train/loss"] == 0 and x["train/masked_share"] == 1.0 for x in train_lines)
    report = diagnose(run)
    assert loud(report) == {"no_negatives"}, [f.to_json() for f in report.findings]
    (found,) = [f for f in report.findings if f.code == "no_negatives"]
    assert "0.00 unmasked negatives per anchor" in found.evidence and "stimulus.npy" in found.fix
    frozen = [f for f in report.findings if f.code == "frozen_adapter"]  # the LoRA's B never moved: said as info
    assert frozen and all(f.severity == "info" for f in frozen)
    assert any("explained by no_negatives" in f.evidence for f in frozen)
    live_only = diagnose(run, model=False)  # without the data: the logged masked share says it
    assert loud(live_only) == {"no_negatives"} and "100% of the off-diagonal logits" in live_only.findings[0].evidence

    by_hand = train(
        tiny_recipe(**{**base, "loss": {"name": "clip", "mask_same_group": False}, "train.sampler": "random"}),
        tmp_path / "by_hand",
    )
    report = diagnose(by_hand)
    for f in report.findings:
        assert "mask_same_group: true" not in f.fix, f.to_json()
    (same,) = [f for f in report.findings if f.code == "same_group_negatives"]
    assert "would leave 0.00 negatives per anchor" in same.fix and "stimulus.npy" in same.fix


@pytest.mark.parametrize("code", list(CASES))
def test_applying_a_findings_own_fix_makes_it_go_away(planted, tmp_path, code):
    """Each planted fault whose fix is a recipe change (Finding.overrides), trained again with that change:
    the finding is gone (or only info). Codes whose fix is a data change carry no overrides."""
    found = [f for f in diagnose(planted(code)).findings if f.code == code and f.severity != "info"]
    assert found
    overrides = {k: v for f in found for k, v in f.overrides.items()}
    if not overrides:
        assert code in {"flat_loss", "same_group_negatives", "eeg_units", "embedding_collapse"}, code
        return
    changes = {**BASE, **CASES[code](tmp_path), **overrides}
    recipe = tiny_recipe(**{k: v for k, v in changes.items() if v is not None})
    if changes.get("train.epochs", 1) is None:
        recipe["train"].pop("epochs")
    recipe["name"] = f"{code}_fixed"
    report = diagnose(train(recipe, tmp_path / "fixed"))
    assert code not in loud(report, keep={code}), (overrides, [f.to_json() for f in report.findings])
