"""The metadata stored with the run's trainable weights."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from recipes.model import DualEncoderCLIP
from recipes.schema import dump
from recipes.weights import sha256_of


def weights_metadata(recipe: BaseModel, model: DualEncoderCLIP) -> dict[str, Any]:
    """The recipe, the base checkpoints (path and hash) and the strategies that produced the weights."""
    return {
        "recipe": dump(recipe),
        "base_checkpoints": {
            side: {"path": tower.encoder.cfg.checkpoint, "sha256": sha256_of(tower.encoder.cfg.checkpoint)}
            for side, tower in (("eeg", model.eeg), ("video", model.video))
        },
        "strategies": {"eeg": model.eeg.report.summary(), "video": model.video.report.summary()},
        "strategy_configs": {side: [s.model_dump(mode="json") for s in getattr(recipe, side).strategy] for side in ("eeg", "video")},
    }
