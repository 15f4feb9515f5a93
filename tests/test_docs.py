"""The documentation: the site builds with `mkdocs build --strict` (a broken link or anchor fails it), and
the README stays short with links that lead somewhere."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250


def _need_mkdocs() -> None:
    """Skip without mkdocs (the `docs` extra); in CI (CI=true) its absence is a failure, not a skip."""
    if importlib.util.find_spec("mkdocs") is not None and importlib.util.find_spec("material") is not None:
        return
    reason = "mkdocs and mkdocs-material are not installed (pip install -e '.[docs]'; the test extra includes them)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}, and CI=true: the docs must be checked in CI")
    pytest.skip(reason)


def test_site_builds_strictly(tmp_path):
    _need_mkdocs()
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml")]
    done = subprocess.run(
        [*command, "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()
    for page in ("reference/run-directory", "reference/doctor-codes", "benchmarks", "plugins", "changelog"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page
    changelog = (tmp_path / "site" / "changelog" / "index.html").read_text(encoding="utf-8")
    assert "peftzoo_engine" in changelog, "docs/changelog.md must include CHANGELOG.md"


def test_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; at most {README_MAX_LINES}"
    assert "make run" in text and "make test" in text
    start, end = lines.index("<!-- walkthrough:start -->"), lines.index("<!-- walkthrough:end -->")
    assert start < end
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+://", t) and not t.startswith("#")]
    assert local, "the README links into the docs"
    missing = [t for t in local if t and not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
