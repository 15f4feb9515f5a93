"""A third-party plugin installed with pip is listed and trained with, without touching the core."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_python, tiny_recipe


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """examples/plugin pip-installed (from a copy of its folder) into a fresh site directory."""
    work = tmp_path_factory.mktemp("plugin")
    source = work / "src"
    shutil.copytree(ROOT / "examples" / "plugin", source)
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
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return site


def test_plugin_is_listed_and_loads(plugin_site):
    out = run_python("-m", "registry", "--json", "--check", env={"PYTHONPATH": str(plugin_site)})
    assert out.returncode == 0, out.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(out.stdout)}
    for key in (("strategies", "ln_tuning"), ("heads", "norm_linear")):
        assert rows[key]["distribution"] == "peftzoo_plugin_example"
        assert rows[key]["status"] == "ok"
        assert rows[key]["description"]
    assert rows[("strategies", "head_only")]["status"] == "ok"


def test_plugin_trains_in_a_recipe(plugin_site, tmp_path):
    recipe = tiny_recipe(**{"eeg.strategy": "ln_tuning", "eeg.head": "norm_linear", "train.epochs": 4})
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = run_python(
        "-m", "recipes.run", str(path), "--output-dir", str(tmp_path / "runs"), env={"PYTHONPATH": str(plugin_site)}
    )
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[-1].removeprefix("run: "))
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["strategies"]["eeg"].startswith("ln_tuning:")
    evals = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert evals[-1]["val/eeg_to_video/R@1"] > 2 * evals[-1]["val/chance_R@1"]
    from safetensors import safe_open

    with safe_open(str(run_dir / "trainable.safetensors"), "pt") as f:
        encoder_keys = [k for k in f.keys() if k.startswith("eeg.encoder.")]  # noqa: SIM118 - safetensors' safe_open has keys() but no __contains__/__iter__
    assert encoder_keys and all("norm" in k for k in encoder_keys)


def test_plugin_strategy_gets_the_strategy_test_suite(plugin_site):
    """The strategy tests are parametrized over what is installed: with the plugin, ln_tuning runs them."""
    out = run_python(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_strategies.py",
        "-k",
        "ln_tuning",
        env={"PYTHONPATH": str(plugin_site)},
    )
    assert out.returncode == 0, out.stdout[-3000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert "8 passed" in summary, summary  # 4 contract tests x 2 encoder families
