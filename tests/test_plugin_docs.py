"""The smallest example of every kind in docs/plugins.md, copied out of the page as a reader would, installed
as a plugin distribution, passes the conformance kit and trains (issue 22, section 4).

Before: the page's `Spectrum` encoder passed the kit, then `recipes.run` failed with
`AttributeError: 'Spectrum' object has no attribute 'name'` (the core read an attribute the contract does
not require); the kit had no end-to-end check to notice.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_python, tiny_recipe

PAGE = ROOT / "docs" / "plugins.md"
GROUPS = {"encoders", "strategies", "heads", "losses", "datasets"}


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()  # FixedInfoNCE: fixed_info_nce


def page_examples() -> dict[str, tuple[str, str]]:
    """kind -> (the section's first python block, the class it registers: the one with a `description`)."""
    found = {}
    for section in re.split(r"^## ", PAGE.read_text(), flags=re.MULTILINE):
        group = re.match(r"\w+ \(`peftzoo\.(\w+)`\)", section)
        if not group or group.group(1) not in GROUPS:
            continue
        block = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
        assert block, f"docs/plugins.md: no python example in the {group.group(1)} section"
        tree = ast.parse(block.group(1))
        classes = [
            node.name
            for node in tree.body
            if isinstance(node, ast.ClassDef)
            and any(
                isinstance(s, ast.Assign) and any(getattr(t, "id", None) == "description" for t in s.targets)
                for s in node.body
            )
        ]
        assert len(classes) == 1, (group.group(1), classes)
        found[group.group(1)] = (block.group(1), classes[0])
    return found


@pytest.fixture(scope="module")
def docs_site(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The page's examples as the distribution `peftzoo-docs-examples`, pip-installed into a site directory;
    returns (site, kind -> registered name)."""
    examples = page_examples()
    assert set(examples) == GROUPS, sorted(examples)
    work = tmp_path_factory.mktemp("docs_plugins")
    package = work / "src" / "peftzoo_docs_examples"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    names, entry_points = {}, []
    for kind, (code, cls) in sorted(examples.items()):
        (package / f"{kind}.py").write_text(code)
        names[kind] = f"docs_{snake(cls)}"
        target = f"peftzoo_docs_examples.{kind}:{cls}"
        entry_points.append(f'[project.entry-points."peftzoo.{kind}"]\n{names[kind]} = "{target}"\n')
    (work / "src" / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "peftzoo-docs-examples"\nversion = "0.1.0"\n\n'
        + "\n".join(entry_points)
        + '\n[tool.setuptools]\npackages = ["peftzoo_docs_examples"]\n'
    )
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
            str(work / "src"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return site, names


def test_every_smallest_example_passes_the_kit_end_to_end_included(docs_site):
    site, names = docs_site
    out = run_python(
        "-m",
        "peftzoo_conformance",
        "-v",
        "--peftzoo-distribution",
        "peftzoo-docs-examples",
        env={"PYTHONPATH": str(site)},
        timeout=2400,
    )  # generous: every component trains end to end
    assert out.returncode == 0, out.stdout[-5000:]
    passed = set(re.findall(r"test_conformance\.py::(\S+) PASSED", out.stdout))
    for kind, name in names.items():
        assert f"test_trains_in_a_recipe[{kind}-{name}]" in passed, (kind, sorted(passed))
    assert f"test_encoder_output_dtype_and_device[{names['encoders']}]" in passed
    assert f"test_loss_temperatures_and_batch_sizes[{names['losses']}]" in passed
    assert f"test_strategy_trainable_tensors_get_gradients[{names['strategies']}]" in passed


def test_every_smallest_example_trains_in_one_recipe(docs_site, tmp_path):
    """All five in one recipe, through the documented command: the encoder without a `name` attribute included."""
    site, names = docs_site
    recipe = tiny_recipe(
        **{
            "data": {"name": names["datasets"], "n": 32},
            "eeg.encoder": {"name": names["encoders"], "dim": 16},
            "eeg.head": names["heads"],
            "video.strategy": names["strategies"],
            "video.head": names["heads"],
            "loss": names["losses"],
            "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3},
        }
    )
    path = tmp_path / "docs.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {"PYTHONPATH": str(site)}
    out = run_python("-m", "recipes.run", str(path), "--output-dir", str(tmp_path / "runs"), "-q", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    run = Path(out.stdout.strip().splitlines()[-1].removeprefix("run: "))
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["strategies"]["video"].startswith(f"{names['strategies']}:")
    out = run_python("-m", "recipes.evaluate", str(run), "--split", "val", "--no-plot", "-q", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 0 <= json.loads((run / "eval" / "val.json").read_text())["val/eeg_to_video/R@1"] <= 1
