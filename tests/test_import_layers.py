"""The layers import one way and no sibling modules import each other in a cycle: the import-linter
contracts in pyproject.toml ([tool.importlinter]) hold. .ci/run runs `lint-imports` too; this test makes a
plain pytest run check them (function-local imports included: import-linter reads every import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def lint_imports() -> subprocess.CompletedProcess:
    try:
        import importlinter  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("import-linter is missing on CI; it comes with the test extra: pip install -e '.[test]'")
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    script = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run(
        [sys.executable, "-c", script, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_the_import_contracts_hold():
    out = lint_imports()
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in out.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    """The contract really checks: a copy of the tree where the registry imports the engine is refused."""
    copy = tmp_path / "tree"
    for name in ("pyproject.toml", *(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())):
        source = ROOT / name
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            subprocess.run(["cp", "-r", str(source), str(copy / name)], check=True)
        else:
            (copy / name).write_text(source.read_text())
    kinds = copy / "registry" / "kinds.py"
    kinds.write_text(kinds.read_text() + "\n\ndef _engine():\n    from peftzoo_engine import trainer  # upward\n")
    script = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    lint_imports()  # skips where import-linter is absent
    out = subprocess.run(
        [sys.executable, "-c", script, "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(copy)},
    )
    assert out.returncode != 0
    assert "registry is not allowed to import peftzoo_engine" in out.stdout
    assert "registry.kinds -> peftzoo_engine.trainer" in out.stdout
    assert Path(copy / "registry" / "kinds.py").read_text().endswith("# upward\n")
