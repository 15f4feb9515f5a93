"""The code's own promises, checked like behaviour: ruff's lint and format (pyproject.toml), and no function
above cyclomatic complexity 25 as radon counts it (boolean operators and comprehensions included, stricter
than ruff's mccabe). The tools come with the `lint` extra that `make test` installs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = [
    "registry",
    "encoders",
    "adapters",
    "recipes",
    "peftzoo_model",
    "peftzoo_data",
    "peftzoo_engine",
    "peftzoo_trained",
    "peftzoo_tools",
    "peftzoo_conformance",
]
MAX_COMPLEXITY = 25


def tool(name: str) -> str:
    """The tool beside this interpreter (the venv's), or skip where the lint extra is absent (fail on CI)."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"{name} is missing on CI; `make test` installs peftzoo[test], which pulls in peftzoo[lint]",
                pytrace=False,
            )
        pytest.skip(f"{name} is not installed (pip install 'peftzoo[lint]')")
    return found


def test_ruff_lint_passes():
    result = subprocess.run([tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ruff_format_leaves_every_file_as_it_is():
    result = subprocess.run(
        [tool("ruff"), "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, "run `ruff format .`:\n" + result.stdout[-4000:] + result.stderr[-2000:]


def test_no_function_above_the_complexity_limit():
    tool("radon")
    from radon.complexity import cc_visit

    over = []
    for package in LIBRARY:
        for path in sorted((ROOT / package).rglob("*.py")):
            for block in cc_visit(path.read_text()):
                if block.complexity > MAX_COMPLEXITY:
                    over.append(f"{path.relative_to(ROOT)}:{block.lineno} {block.fullname} ({block.complexity})")
    assert not over, f"functions above cyclomatic complexity {MAX_COMPLEXITY} (radon): " + "; ".join(over)
