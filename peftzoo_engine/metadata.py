"""The metadata stored with the run's trainable weights."""

from __future__ import annotations

from typing import Any

from peftzoo_engine.summary import strategies_summary
from peftzoo_engine.weights import sha256_of
from peftzoo_model.model import DualEncoderCLIP
from recipes.schema import Recipe, dump


def weights_metadata(recipe: Recipe, model: DualEncoderCLIP) -> dict[str, Any]:
    """The recipe, the base checkpoints (path and hash) and the strategies that produced the weights."""
    return {
        "recipe": dump(recipe),
        "base_checkpoints": {
            side: base_checkpoint(tower.encoder) for side, tower in (("eeg", model.eeg), ("video", model.video))
        },
        "strategies": strategies_summary(model),
        "strategy_configs": {
            side: [s.model_dump(mode="json") for s in getattr(recipe, side).strategy] for side in ("eeg", "video")
        },
    }


def base_checkpoint(encoder) -> dict[str, str | None]:
    """The file the encoder's pretrained weights came from, and its hash. Built-in encoders keep it in
    `cfg.checkpoint`; a plugin encoder may have no `cfg` at all (then: none recorded)."""
    path = getattr(getattr(encoder, "cfg", None), "checkpoint", None)
    return {"path": path, "sha256": sha256_of(path) if isinstance(path, str) else None}
