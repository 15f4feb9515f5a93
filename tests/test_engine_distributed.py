"""#9.10: under torchrun each process seeds its global RNG with seed + rank after the model is built,
so dropout and drop-path draw different masks on each process's slice of the batch."""

from __future__ import annotations

import re

import yaml

from tests.conftest import tiny_recipe
from tests.test_distributed import launch_two


def test_processes_draw_different_dropout_masks(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            tiny_recipe(
                **{
                    "train.epochs": 1,
                    "data.n": 40,
                    "train.batch_size": 16,
                    "eeg.strategy": {"name": "lora", "targets": ["q", "v"], "dropout": 0.2},
                }
            )
        )
    )
    results = launch_two("tests.distributed_dropout_worker", str(recipe), "--output-dir", str(tmp_path / "runs"), "-q")
    assert [code for code, _ in results] == [0, 0], results
    masks = [re.search(r"dropout mask: ([01]+)", out).group(1) for _, out in results]
    assert masks[0] != masks[1]
