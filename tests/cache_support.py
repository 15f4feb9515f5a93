"""Helpers of the cache tests: a tiny model with its data, arrays directories, the entries in a cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

import registry
from peftzoo_data import arrays
from peftzoo_data.base import PairedData
from recipes import schema
from recipes.compose import compose
from tests.conftest import tiny_recipe

PAIRS = 40


def tiny_model(pairs: int = PAIRS):
    """(synthetic data of `pairs` pairs, the tiny recipe's model in eval mode)."""
    reg = registry.default()
    recipe = schema.validate(tiny_recipe(**{"data.n": pairs}), reg)
    data = reg.build("datasets", recipe.data, seed=0)
    torch.manual_seed(0)
    return data, compose(recipe, data, reg).eval()


def write_arrays(root: Path, data: PairedData, eeg: np.ndarray | None = None) -> Path:
    """An arrays directory (docs/reference/arrays.md) holding `data` (or other EEG of the same shape)."""
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "eeg.npy", data.eeg if eeg is None else eeg)
    np.save(root / "video.npy", data.video)
    (root / "meta.json").write_text(json.dumps({"sfreq": data.sfreq, "channels": list(data.channels), "fps": data.fps}))
    return root


def load_arrays(root: Path) -> PairedData:
    return arrays.load(root, 0.25, 0)


def entry_files(cache_dir: Path) -> list[str]:
    """Names of the files in a cache directory, its bookkeeping (.locks, .hashes) aside."""
    return sorted(p.name for p in Path(cache_dir).iterdir() if p.is_file()) if Path(cache_dir).is_dir() else []
