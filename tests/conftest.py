"""Shared helpers: the repository layout, ../shared lookup, subprocess runs, small recipes."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"

# Small, fast recipe on the tiny encoders; tests copy and edit it.
TINY_RECIPE: dict[str, Any] = {
    "name": "tiny_test",
    "seed": 0,
    "data": {"name": "synthetic", "n": 160, "seconds": 1, "frames": 4, "height": 20, "width": 20, "val_fraction": 0.25},
    "eeg": {
        "encoder": {"name": "tiny_eeg", "dim": 32, "depth": 1, "heads": 2},
        "strategy": "head_only",
        "head": "linear",
    },
    "video": {
        "encoder": {"name": "tiny_video", "dim": 32, "depth": 1, "heads": 2, "frames": 4, "size": 16},
        "strategy": "head_only",
        "head": "linear",
    },
    "embed_dim": 32,
    "loss": "clip",
    "train": {"epochs": 2, "batch_size": 32, "lr": 1e-3},
}


def tiny_recipe(**changes: Any) -> dict[str, Any]:
    """A deep copy of TINY_RECIPE with dotted-key changes applied: tiny_recipe(**{"train.lr": 0})."""
    out = copy.deepcopy(TINY_RECIPE)
    for key, value in changes.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def shared_path(*parts: str) -> Path:
    """A path under ../shared; skipped where it is absent (a user's clone), failed on CI."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing on CI; CI checks out ../shared beside the project")
        pytest.skip(f"{path} is absent (../shared is only beside the project in the team's checkouts and CI)")
    return path


def run_python(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300):
    """Run `python *args` in a fresh interpreter of this environment; returns CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd or ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def reg():
    import registry

    return registry.default()


def run_dir_in(root: Path) -> Path | None:
    """The one run directory under an --output-dir (hidden entries such as .cache are not runs)."""
    runs = [p for p in Path(root).iterdir() if not p.name.startswith(".")] if Path(root).is_dir() else []
    assert len(runs) <= 1, runs
    return runs[0] if runs else None


def load_run(run_dir: Path, checkpoint: str | None = None):
    """The run's validated recipe and its model with the trained weights loaded (best when kept)."""
    from peftzoo_trained.loading import rebuild_run

    recipe, model, _, _ = rebuild_run(Path(run_dir), checkpoint)
    return recipe, model
