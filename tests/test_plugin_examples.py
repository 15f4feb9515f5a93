"""The example plugins of every kind (examples/every_kind), pip-installed as a third party would, used end to end.

Each test here once met a place where the core special-cased its built-ins (issue #10); docs/plugins.md
lists which test shows which special case gone.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import ROOT, run_python, tiny_recipe

EXAMPLES = ROOT / "examples" / "every_kind"


BROKEN = ROOT / "examples" / "broken_plugins"
_SITES: dict[str, Path] = {}


def plugin_site(tmp_path_factory) -> Path:
    """examples/every_kind and examples/broken_plugins pip-installed (from copies, entry points only) into one
    site directory, once per test session: a third party's install, on PYTHONPATH of the subprocesses."""
    base = str(tmp_path_factory.getbasetemp())
    if base not in _SITES:
        work = tmp_path_factory.mktemp("plugins")
        copies = []
        for source in (EXAMPLES, BROKEN):
            shutil.copytree(source, work / source.name)
            copies.append(str(work / source.name))
        site = work / "site"
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--target",
                str(site),
                *copies,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        _SITES[base] = site
    return _SITES[base]


@pytest.fixture(scope="module")
def examples_site(tmp_path_factory) -> Path:
    return plugin_site(tmp_path_factory)


def write_npz_folder(folder: Path) -> None:
    """The tiny recipe's synthetic pairs, written as a user would for `npz_folder`: one .npz per pair."""
    import registry

    data = registry.build("datasets", tiny_recipe()["data"], seed=0)
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"sfreq": data.sfreq, "channels": data.channels, "fps": data.fps}))
    for i in range(len(data)):
        np.savez(
            folder / f"{i:04d}.npz",
            eeg=np.asarray(data.eeg[i]),
            video=np.asarray(data.video[i]),
            group=int(data.groups[i]),
        )


def example_recipe(data_path: Path, **changes) -> dict:
    return tiny_recipe(
        **{
            "data": {"name": "npz_folder", "path": str(data_path), "val_fraction": 0.25},
            "eeg.strategy": {"name": "vera", "r": 16, "targets": ["qkv", "fc1"]},
            "eeg.head": "glu",
            "loss": "dcl",
            "train.epochs": 3,
            "train.lr": 3e-3,
            **changes,
        }
    )


# One process trains straight, then trains again and is stopped by SIGTERM at step 5 (mid-epoch 2);
# a second, fresh process resumes it. VeRA's frozen projections are not in the weights file, so the
# resumed process must draw the same ones.
TRAIN_AND_STOP = textwrap.dedent("""
    import os, signal, sys
    from peftzoo_examples.dcl import DecoupledContrastiveLoss as Loss
    from peftzoo_tools.run import main
    recipe, out = sys.argv[1], sys.argv[2]
    assert main([recipe, "--output-dir", out + "/straight", "--quiet"]) == 0
    real, calls = Loss.forward, {"n": 0}
    def forward_then_sigterm(self, *a, **k):
        value = real(self, *a, **k)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 5:
                os.kill(os.getpid(), signal.SIGTERM)
        return value
    Loss.forward = forward_then_sigterm
    sys.exit(main([recipe, "--output-dir", out + "/stopped", "--quiet"]))
""")


@pytest.fixture(scope="module")
def trained(examples_site, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("e2e")
    write_npz_folder(work / "pairs")
    recipe = work / "examples.yaml"
    # step_log (a plugin training callback) records every step; its count is checkpoint state
    recipe.write_text(yaml.safe_dump(example_recipe(work / "pairs", **{"train.callbacks": [{"name": "step_log"}]})))
    env = {"PYTHONPATH": str(examples_site)}
    first = run_python("-c", TRAIN_AND_STOP, str(recipe), str(work), env=env)
    straight, stopped = (
        next(p for p in (work / d).iterdir() if not p.name.startswith(".")) for d in ("straight", "stopped")
    )
    resumed = run_python("-m", "recipes.run", "--resume", str(stopped), "--quiet", env=env)
    return {"work": work, "env": env, "first": first, "resumed": resumed, "straight": straight, "stopped": stopped}


def metrics(run_dir: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["type"] == kind]


def test_examples_train_stop_and_resume_exactly(trained):
    first, resumed = trained["first"], trained["resumed"]
    assert first.returncode == 143, first.stderr[-3000:]  # 128 + SIGTERM
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight, stopped = trained["straight"], trained["stopped"]
    assert json.loads((stopped / "run.json").read_text())["status"] == "completed"
    assert metrics(stopped, "eval") == metrics(straight, "eval")
    last = metrics(straight, "eval")[-1]
    assert last["val/eeg_to_video/R@1"] > 2 * last["val/chance_R@1"], last  # it learned, through vera + glu + dcl
    from safetensors.torch import load_file

    a, b = load_file(str(straight / "trainable.safetensors")), load_file(str(stopped / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.endswith("lambda_b") for k in a)
    assert list((trained["work"] / "pairs" / ".npz_folder_cache").iterdir())  # packed once, memory-mapped


def step_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]


def test_example_callback_records_every_step_once_and_its_state_survives_the_resume(trained):
    """A plugin callback (examples' step_log, named in train.callbacks) sees every optimizer step; its
    count is saved in the checkpoint at the SIGTERM and given back to the resumed process, so the resumed
    run's log equals the straight run's: each step once, counted on from where it stopped."""
    assert trained["resumed"].returncode == 0, trained["resumed"].stderr[-3000:]
    straight, stopped = step_log(trained["straight"]), step_log(trained["stopped"])
    total = json.loads((trained["straight"] / "run.json").read_text())["steps"]
    steps = [line for line in straight if "step" in line]
    assert [line["step"] for line in steps] == list(range(1, total + 1))
    assert all(line["count"] == line["step"] for line in steps)
    assert straight[-1] == {"end": "completed", "count": total}
    # the stopped run: steps 1..5, its interruption, then the resumed process from step 6 with the count at 5
    assert {"end": "interrupted", "count": 5} in stopped
    resumed_steps = [line for line in stopped if "step" in line]
    assert [line["step"] for line in resumed_steps] == list(range(1, total + 1))
    assert all(line["count"] == line["step"] for line in resumed_steps)  # a fresh count would restart at 1
    assert stopped[-1] == {"end": "completed", "count": total}
    assert [(a["step"], a["loss"]) for a in steps] == [(b["step"], b["loss"]) for b in resumed_steps]


def test_a_recipe_naming_an_unknown_callback_is_refused_with_a_suggestion(examples_site, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(**{"train.callbacks": ["step_logg"]})))
    out = run_python(
        "-m", "recipes.run", str(recipe), "--output-dir", str(tmp_path / "runs"), env={"PYTHONPATH": str(examples_site)}
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "train.callbacks.0.name: 'step_logg' is not a training callback; did you mean 'step_log'?" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "runs").exists()


# One process evaluates the resumed run, exports it as a bundle and merged, and compares embeddings.
EVALUATE_AND_EXPORT = textwrap.dedent("""
    import json, sys
    import torch
    import recipes
    from peftzoo_tools.evaluate import main as evaluate
    from peftzoo_trained.export import main as export
    run, work = sys.argv[1], sys.argv[2]
    assert evaluate([run, "--split", "val", "--no-plot", "--resamples", "20"]) == 0
    trained = recipes.load(run, device="cpu")
    x = torch.randn(4, len(trained.channels), 200) * 20

    def diff(path):
        with torch.no_grad():
            return float((recipes.load(path, device="cpu").embed_eeg(x) - trained.embed_eeg(x)).abs().max())

    result = {"bundle_exit": export([run, "--bundle", work + "/bundle"]),
              "merged_exit": export([run, "--merged", work + "/merged"])}
    result["bundle_diff"] = diff(work + "/bundle") if result["bundle_exit"] == 0 else None
    result["merged_diff"] = diff(work + "/merged") if result["merged_exit"] == 0 else None

    # --native: vera's own export() hook; read back by the format's documented formula onto the plain
    # base encoder (the run's frozen Linears without the VeRA wrappers), independently of the plugin
    result["native_exit"] = export([run, "--native", work + "/native"])
    if result["native_exit"] == 0:
        import copy
        from safetensors.torch import load_file
        manifest = json.load(open(work + "/native/manifest.json"))
        result["native_sides"] = manifest["sides"]
        config = json.load(open(work + "/native/eeg/vera/vera_config.json"))
        tensors = load_file(work + "/native/eeg/vera/vera_adapter.safetensors")
        run_encoder = trained.model.eeg.encoder
        plain = copy.deepcopy(run_encoder)
        for name in config["modules"]:
            plain.set_submodule(name, plain.get_submodule(name).base)

        def vera_hook(name):
            t = {k: tensors[f"{name}.{k}"] for k in ("lambda_d", "lambda_b", "vera_A", "vera_B")}
            return lambda module, args, out: (
                out + t["lambda_b"] * ((args[0] @ t["vera_A"].T * t["lambda_d"]) @ t["vera_B"].T))

        with torch.no_grad():
            base_out = plain(x, channels=list(trained.channels))
            for name in config["modules"]:
                plain.get_submodule(name).register_forward_hook(vera_hook(name))
            run_out = run_encoder(x, channels=list(trained.channels))
            result["native_adapter_effect"] = float((run_out - base_out).abs().max())
            result["native_diff"] = float((plain(x, channels=list(trained.channels)) - run_out).abs().max())
    print(json.dumps(result))
""")


@pytest.fixture(scope="module")
def evaluated(trained) -> dict:
    """The resumed run evaluated on its val split and exported as a bundle, in one process."""
    assert trained["resumed"].returncode == 0
    out = run_python("-c", EVALUATE_AND_EXPORT, str(trained["stopped"]), str(trained["work"]), env=trained["env"])
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_examples_evaluate_to_their_training_metrics(trained, evaluated):
    run = trained["stopped"]
    evaluated_val = json.loads((run / "eval" / "val.json").read_text())
    last = metrics(run, "eval")[-1]
    for key in ("val/eeg_to_video/R@1", "val/video_to_eeg/R@1"):
        assert evaluated_val[key] == pytest.approx(last[key], abs=1e-6), key


def test_bundle_of_a_plugin_strategy_embeds_as_the_run(evaluated):
    assert evaluated["bundle_exit"] == 0 and evaluated["bundle_diff"] < 1e-5


def test_merged_export_keeps_a_plugin_strategy(evaluated):
    assert evaluated["merged_exit"] == 0, "export --merged refused the run"
    assert evaluated["merged_diff"] < 1e-5


def test_native_export_of_a_plugin_strategy_reads_back_as_the_run(evaluated):
    """export --native calls vera's own export() hook (no built-in special case): its files, in the manifest,
    read back onto the plain base encoder give the run's encoder outputs."""
    assert evaluated["native_exit"] == 0, "export --native refused the run"
    assert list(evaluated["native_sides"]) == ["eeg"]  # the video side is head_only: nothing to write
    (adapter,) = evaluated["native_sides"]["eeg"]["adapters"]
    assert adapter["strategy"] == "vera" and adapter["format"] == "vera" and adapter["directory"] == "eeg/vera"
    assert set(adapter["files"]) == {"eeg/vera/vera_adapter.safetensors", "eeg/vera/vera_config.json"}
    assert evaluated["native_adapter_effect"] > 1e-4  # the adapter matters
    assert evaluated["native_diff"] < 1e-5


def test_eegnet_trains_in_a_recipe(examples_site, tmp_path):
    write_npz_folder(tmp_path / "pairs")
    recipe = example_recipe(
        tmp_path / "pairs",
        **{"eeg.encoder": {"name": "eegnet", "f1": 4, "f2": 16}, "eeg.strategy": "full", "train.epochs": 2},
    )
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    out = run_python(
        "-m",
        "recipes.run",
        str(tmp_path / "r.yaml"),
        "--output-dir",
        str(tmp_path / "runs"),
        "--quiet",
        env={"PYTHONPATH": str(examples_site)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = Path(out.stdout.strip().splitlines()[-1].removeprefix("run: "))
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    # EEGNet's BatchNorm statistics trained with it: evaluating the saved run gives training's numbers
    out = run_python(
        "-m",
        "recipes.evaluate",
        str(run_dir),
        "--split",
        "val",
        "--no-plot",
        "-q",
        env={"PYTHONPATH": str(examples_site)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    evaluated, last = json.loads((run_dir / "eval" / "val.json").read_text()), metrics(run_dir, "eval")[-1]
    for key in ("val/loss", "val/eeg_to_video/R@1"):
        assert evaluated[key] == pytest.approx(last[key], abs=1e-5), key


def load_example_module(name: str):
    """An example module imported from its file, without installing it (no entry points in this process)."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / "peftzoo_examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_weight_decay_follows_the_encoders_no_weight_decay():
    import registry
    from adapters.heads.linear import LinearHead
    from adapters.strategies.full import Full
    from peftzoo_engine.grouping import param_groups
    from peftzoo_model.model import DualEncoderCLIP, Tower

    eegnet = load_example_module("eegnet")
    encoder = eegnet.EEGNet.from_config(eegnet.EEGNetConfig(f1=4, f2=8))
    report = Full(Full.Config()).apply(encoder)
    video = registry.build(
        "encoders", {"name": "tiny_video", "dim": 16, "depth": 1, "heads": 2, "frames": 2, "size": 16}
    )
    head = LinearHead(LinearHead.Config(), in_dim=8, out_dim=8)
    from adapters.strategies.base import StrategyReport

    frozen = StrategyReport("head_only", [], 0, False)
    model = DualEncoderCLIP(
        Tower(encoder, head, report),
        Tower(video, LinearHead(LinearHead.Config(), in_dim=16, out_dim=8), frozen),
        registry.build("losses", "clip"),
        channels=["Cz"],
    )
    no_decay = {n for g in param_groups(model, 0.05) if g["weight_decay"] == 0 for n in g["names"]}
    assert {f"eeg.encoder.{n}" for n in encoder.no_weight_decay()} <= no_decay
    assert "eeg.encoder.spatial_weight" in no_decay  # 2-D: the name rules alone would decay it


@pytest.mark.parametrize("lora", [{"name": "lora"}, {"name": "lora", "targets": ["q", "k", "v"], "use_dora": True}])
def test_adapting_one_layer_twice_is_refused_as_a_clash(lora):
    import registry
    from adapters.strategies.base import StrategyError, apply_strategies

    vera = load_example_module("vera")
    encoder = registry.build("encoders", {"name": "tiny_eeg", "dim": 16, "depth": 1, "heads": 2})
    with pytest.raises(StrategyError, match=r"(?s)(vera.*lora|lora.*vera).*blocks\.0\.attn\.qkv"):
        apply_strategies(encoder, [vera.VeRA(vera.VeRAConfig(r=4), name="vera"), registry.build("strategies", lora)])


def test_a_plugin_video_encoders_own_preprocess_is_used_when_it_trains():
    """A video encoder with its own `preprocess` (no declared uint8/normalize split) trains on frames
    its preprocess made: the clip cache leaves the data alone and the model calls that preprocess;
    the built-in tiny_video (split declared) still gets clips at input size, normalized only."""
    import registry
    from adapters.heads.linear import LinearHead
    from adapters.strategies.base import apply_strategies
    from peftzoo_data.base import PairTorchDataset
    from peftzoo_engine import video_cache
    from peftzoo_model.model import DualEncoderCLIP, Tower

    spec = tiny_recipe()["video"]["encoder"]
    builtin = registry.build("encoders", spec)
    calls = []

    class InvertingVideo(type(builtin)):  # a plugin's own preprocess: inverted colours, then the usual steps
        def preprocess(self, frames):
            calls.append(tuple(frames.shape))
            return super().preprocess(255 - frames)

    data = registry.build("datasets", tiny_recipe()["data"], seed=0)
    plugin = InvertingVideo.from_config(builtin.cfg)
    plugin.load_state_dict(builtin.state_dict())
    assert video_cache.prepare(builtin, data, None, batch_size=8).video_at_input_size
    assert video_cache.prepare(plugin, data, None, batch_size=8) is data  # no clips bypassing its preprocess

    eeg = registry.build("encoders", {"name": "tiny_eeg", "dim": 16, "depth": 1, "heads": 2})
    towers = []
    for encoder, dim in ((eeg, eeg.feature_dim), (plugin, plugin.feature_dim)):
        report = apply_strategies(encoder, [registry.build("strategies", "full")])
        towers.append(Tower(encoder, LinearHead(LinearHead.Config(), in_dim=dim, out_dim=8), report))
    model = DualEncoderCLIP(*towers, registry.build("losses", "clip"), channels=list(data.channels))
    model.cached = {}
    batch = torch.utils.data.default_collate([PairTorchDataset(data, np.arange(4))[i] for i in range(4)])
    _, v, _ = model.embed_batch(batch, torch.device("cpu"))
    assert calls and calls[-1][0] == 4  # its preprocess ran on the batch's frames
    with torch.no_grad():
        expected = model.video.head(plugin(builtin.preprocess(255 - batch["video"])))
    assert torch.allclose(v, torch.nn.functional.normalize(expected, dim=-1), atol=1e-5)


# -- the video encoder plugin (r2plus1d) end to end, with an EEG encoder that has no `checkpoint` option ---------
R2PLUS1D_SMALL = {
    "name": "r2plus1d",
    "widths": [4, 8, 8, 16],
    "layers": [1, 1, 1, 1],
    "stem_width": 4,
    "frames": 4,
    "size": 16,
}

# `checkpoint` is optional in the encoder contract: this plugin (registered in a dist-info of its own) has none.
PLAIN_ENCODER = '''
    from pydantic import create_model

    from peftzoo_examples.eegnet import EEGNet, EEGNetConfig
    from registry.component import ComponentConfig

    PlainConfig = create_model("PlainConfig", __base__=ComponentConfig,
                               **{n: (f.annotation, f) for n, f in EEGNetConfig.model_fields.items()
                                  if n != "checkpoint"})

    class PlainEEGNet(EEGNet):
        """EEGNet with no `checkpoint` option: always randomly initialized."""
        description = "EEGNet without a checkpoint option"
        Config = PlainConfig

        @classmethod
        def from_config(cls, config, *, name=None, **context):
            return cls(config)
'''

# One process trains straight, then again, stopped by SIGTERM at the video encoder's 6th training call
# (mid-epoch 2); a fresh process resumes it, another evaluates and exports it.
VIDEO_TRAIN_AND_STOP = textwrap.dedent("""
    import os, signal, sys
    from peftzoo_examples.r2plus1d import R2Plus1D
    from peftzoo_tools.run import main
    recipe, out = sys.argv[1], sys.argv[2]
    assert main([recipe, "--output-dir", out + "/straight", "--quiet"]) == 0
    real, calls = R2Plus1D.forward, {"n": 0}
    def forward_then_sigterm(self, clip):
        if self.training:
            calls["n"] += 1
            if calls["n"] == 6:
                os.kill(os.getpid(), signal.SIGTERM)
        return real(self, clip)
    R2Plus1D.forward = forward_then_sigterm
    sys.exit(main([recipe, "--output-dir", out + "/stopped", "--quiet"]))
""")

VIDEO_EVALUATE_AND_EXPORT = textwrap.dedent("""
    import json, sys
    import torch
    import recipes
    from peftzoo_tools.evaluate import main as evaluate
    from peftzoo_trained.export import main as export
    from peftzoo_engine.weights import read_metadata
    run, work = sys.argv[1], sys.argv[2]
    assert evaluate([run, "--split", "val", "--no-plot", "--resamples", "20"]) == 0
    trained = recipes.load(run, device="cpu")
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (3, 6, 24, 30, 3), dtype=torch.uint8, generator=g)
    eeg = torch.randn(3, len(trained.channels), 200) * 20
    result = {"base": read_metadata(run + "/trainable.safetensors")["base_checkpoints"]}
    for how in ("bundle", "merged", "native"):
        result[how + "_exit"] = export([run, "--" + how, work + "/" + how])
    with torch.no_grad():
        bundle = recipes.load(work + "/bundle")
        result["bundle_diff"] = max(float((bundle.embed_video(frames) - trained.embed_video(frames)).abs().max()),
                                    float((bundle.embed_eeg(eeg) - trained.embed_eeg(eeg)).abs().max()))
    print(json.dumps(result))
""")


@pytest.fixture(scope="module")
def video_trained(examples_site, tmp_path_factory) -> dict:
    from tests.test_registry import make_distribution

    work = tmp_path_factory.mktemp("video")
    make_distribution(
        work / "site",
        "zoo_plain_encoder",
        {"peftzoo.encoders": {"plain_eegnet": "zoo_plain_encoder:PlainEEGNet"}},
        {"zoo_plain_encoder": PLAIN_ENCODER},
    )
    recipe = tiny_recipe(
        **{
            "eeg.encoder": {"name": "plain_eegnet", "f1": 4, "f2": 16},
            "video.encoder": R2PLUS1D_SMALL,
            "video.strategy": {"name": "last_k", "k": 2},
            "train.lr": 3e-3,
        }
    )
    (work / "r.yaml").write_text(yaml.safe_dump(recipe))
    env = {"PYTHONPATH": f"{work / 'site'}:{examples_site}"}
    first = run_python("-c", VIDEO_TRAIN_AND_STOP, str(work / "r.yaml"), str(work), env=env)
    assert first.returncode == 143, first.stderr[-3000:]  # 128 + SIGTERM
    straight, stopped = (
        next(p for p in (work / d).iterdir() if not p.name.startswith(".")) for d in ("straight", "stopped")
    )
    resumed = run_python("-m", "recipes.run", "--resume", str(stopped), "--quiet", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = run_python("-c", VIDEO_EVALUATE_AND_EXPORT, str(stopped), str(work), env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return {
        "work": work,
        "straight": straight,
        "stopped": stopped,
        "exports": json.loads(out.stdout.strip().splitlines()[-1]),
        "stderr": out.stderr,
    }


def test_video_encoder_plugin_trains_stops_and_resumes_exactly(video_trained):
    """r2plus1d (not subclassing the built-in bases, its own preprocess run per batch) trains with last_k;
    a run stopped mid-epoch and resumed in a fresh process ends where the uninterrupted one does."""
    from safetensors.torch import load_file

    straight, stopped = video_trained["straight"], video_trained["stopped"]
    assert json.loads((stopped / "run.json").read_text())["status"] == "completed"
    assert len(metrics(straight, "eval")) == 2 and metrics(stopped, "eval") == metrics(straight, "eval")
    a, b = load_file(str(straight / "trainable.safetensors")), load_file(str(stopped / "trainable.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("video.encoder.layer4.0.conv2") for k in a)  # last_k's blocks of the plugin encoder


def test_video_encoder_plugin_evaluates_and_exports_as_the_run(video_trained):
    run = video_trained["stopped"]
    evaluated_val = json.loads((run / "eval" / "val.json").read_text())
    last = metrics(run, "eval")[-1]
    for key in ("val/eeg_to_video/R@1", "val/video_to_eeg/R@1", "val/loss"):
        assert evaluated_val[key] == pytest.approx(last[key], abs=1e-5), key
    exports = video_trained["exports"]
    assert exports["bundle_exit"] == 0 and exports["bundle_diff"] < 1e-5
    assert exports["native_exit"] == 2  # last_k has no export() hook: named, nothing written
    assert "video: strategy last_k offers no export() hook" in video_trained["stderr"]
    assert not (video_trained["work"] / "native").exists()


def test_an_encoder_without_a_checkpoint_option_trains_and_exports(video_trained):
    """#10: the trainer read `encoder.cfg.checkpoint` for the weights' metadata; bundles built and loaded
    encoders with `checkpoint: None` and called the built-in base's `convert_state_dict`; embed_eeg called
    the base's `check_input`. The EEG side here is a plugin encoder without the option (nor those methods):
    its run, its bundle's embeddings (compared above) and the merged export's refusal."""
    exports = video_trained["exports"]
    assert exports["base"]["eeg"] == {"path": None, "sha256": None}  # weights written, no base file recorded
    assert exports["merged_exit"] == 2  # its merged recipe could not point at the merged weights: said, nothing written
    assert "eeg: encoder plain_eegnet has no `checkpoint` option" in video_trained["stderr"]
    assert not (video_trained["work"] / "merged").exists()


def test_an_encoders_trained_buffers_are_saved_with_its_weights(tmp_path):
    """BatchNorm statistics move in training without a gradient: the weights file keeps them and
    load_trainable puts them back, so the loaded encoder gives the trained one's outputs."""
    from adapters.strategies.full import Full
    from peftzoo_engine.weights import load_trainable, read_state, save_trainable

    eegnet = load_example_module("eegnet")
    channels = ["Fp1", "Fp2", "Cz", "Oz"]

    def build():
        torch.manual_seed(0)
        encoder = eegnet.EEGNet.from_config(eegnet.EEGNetConfig(f1=4, f2=8))
        Full(Full.Config()).apply(encoder)
        return encoder

    encoder = build()
    before = encoder.temporal[1].running_mean.clone()
    encoder.train()(torch.randn(8, 4, 200) * 20, channels=channels)  # a training forward
    assert not torch.equal(before, encoder.temporal[1].running_mean)  # the statistics moved
    save_trainable(encoder, tmp_path / "w.safetensors", {})
    saved = read_state(tmp_path / "w.safetensors")
    assert torch.equal(saved["temporal.1.running_mean"], encoder.temporal[1].running_mean)
    loaded = build()
    assert "temporal.1.running_var" in load_trainable(loaded, tmp_path / "w.safetensors")
    x = torch.randn(3, 4, 200) * 20
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x, channels=channels), encoder.eval()(x, channels=channels))


def test_video_encoder_plugin_loads_torchvisions_r2plus1d_weights(tmp_path):
    """The default architecture takes torchvision's r2plus1d_18 state dict (its key layout), giving
    torchvision's features; a file of another architecture is one error naming the mismatch."""
    import torchvision

    from registry.errors import UserError

    r2plus1d = load_example_module("r2plus1d")
    torch.manual_seed(0)
    # torchvision's r2plus1d_18 builder with one block per stage (half the size; the layout is the same), random weights
    video = torchvision.models.video.resnet
    reference = video.VideoResNet(video.BasicBlock, [video.Conv2Plus1D] * 4, [1, 1, 1, 1], video.R2Plus1dStem).eval()
    torch.save(reference.state_dict(), tmp_path / "r2plus1d_18.pth")
    reference.fc = torch.nn.Identity()
    options = r2plus1d.R2Plus1DConfig(checkpoint=str(tmp_path / "r2plus1d_18.pth"), frames=4, layers=[1, 1, 1, 1])
    encoder = r2plus1d.R2Plus1D.from_config(options).eval()
    clip = encoder.preprocess(torch.randint(0, 256, (2, 7, 60, 80, 3), dtype=torch.uint8))
    assert clip.shape == (2, 3, 4, 112, 112) and clip.dtype == torch.float32
    with torch.no_grad():  # a small clip: the parity is in the weights, not the input size
        assert torch.allclose(encoder(clip[:1, :, :2, :32, :32]), reference(clip[:1, :, :2, :32, :32]), atol=1e-5)
    with pytest.raises(
        UserError, match=r"does not fit this architecture \(widths \[8, 8, 8, 8\].*other shapes \['layer1"
    ):
        r2plus1d.R2Plus1D.from_config(options.model_copy(update={"widths": [8, 8, 8, 8]}))


@pytest.mark.parametrize("strategy", ["bitfit", {"name": "last_k", "k": 2}, {"name": "full", "layer_decay": 0.8}])
def test_strategies_read_a_plugin_encoder_through_the_contracts_defaults(strategy):
    """bitfit, last_k and full's layer decay used the built-in base's methods (bias_parameters, final_norm,
    layer_ids); on an encoder without them they now take the documented defaults
    (adapters/strategies/encoder_parts.py)."""
    import registry
    from adapters.strategies.base import apply_strategies

    r2plus1d = load_example_module("r2plus1d")
    options = {k: v for k, v in R2PLUS1D_SMALL.items() if k != "name"}
    encoder = r2plus1d.R2Plus1D.from_config(r2plus1d.R2Plus1DConfig(**options))
    assert not hasattr(encoder, "final_norm") and not hasattr(encoder, "layer_ids")
    built = registry.build("strategies", strategy)
    report = apply_strategies(encoder, [built])
    if built.name == "bitfit":  # the BatchNorm biases (the convolutions have none)
        assert report.trainable and all(n.endswith(".bias") for n in report.trainable)
    elif built.name == "last_k":  # the last two residual blocks, no final norm
        assert {n.split(".")[0] + "." + n.split(".")[1] for n in report.trainable} == {"layer3.0", "layer4.0"}
    else:  # stem at layer 0 (lr x 0.8^5), layer4 (block 4 of 4 after the stem) at 0.8^1
        assert report.lr_scale["stem.0.weight"] == pytest.approx(0.8**5)
        assert report.lr_scale["layer4.0.conv2.0.0.weight"] == pytest.approx(0.8)


def test_a_checkpoint_restores_running_statistics():
    """A resume gets the BatchNorm statistics the interrupted run had reached, not the initial ones."""
    import registry
    from adapters.heads.linear import LinearHead
    from adapters.strategies.base import StrategyReport
    from adapters.strategies.full import Full
    from peftzoo_engine.checkpoint import CheckpointError, restore_weights
    from peftzoo_engine.weights import statistics_buffers
    from peftzoo_model.model import DualEncoderCLIP, Tower

    eegnet = load_example_module("eegnet")

    def model():
        torch.manual_seed(0)
        encoder = eegnet.EEGNet.from_config(eegnet.EEGNetConfig(f1=4, f2=8))
        report = Full(Full.Config()).apply(encoder)
        video = registry.build(
            "encoders", {"name": "tiny_video", "dim": 16, "depth": 1, "heads": 2, "frames": 2, "size": 16}
        )
        frozen = StrategyReport("head_only", [], 0, False)
        return DualEncoderCLIP(
            Tower(encoder, LinearHead(LinearHead.Config(), in_dim=8, out_dim=8), report),
            Tower(video, LinearHead(LinearHead.Config(), in_dim=16, out_dim=8), frozen),
            registry.build("losses", "clip"),
            channels=["Cz"],
        )

    trained = model()
    trained.eeg.encoder.train()(torch.randn(8, 4, 200) * 20, channels=["Fp1", "Fp2", "Cz", "Oz"])
    statistics = {n: b.clone() for n, b in statistics_buffers(trained).items()}
    assert "eeg.encoder.temporal.1.running_mean" in statistics
    checkpoint = {"trained": {}, "statistics": statistics, "strategies": {}}
    resumed = model()
    restore_weights(checkpoint, resumed)
    for name, value in statistics_buffers(resumed).items():
        assert torch.equal(value, statistics[name]), name
    with pytest.raises(CheckpointError, match="statistics this model lacks"):
        restore_weights({**checkpoint, "statistics": {"eeg.encoder.nowhere.running_mean": torch.zeros(1)}}, resumed)
