"""EEG and video backbones: the encoder contract, channel names, checkpoints, preprocessing.

    encoders.build("tiny_eeg", checkpoint=None, depth=1)  # -> an EEGEncoder module

An EEG encoder is called as `encoder(x, channels=names)`, a video encoder as `encoder(clip)`; both
return pooled features (B, feature_dim).
"""

from __future__ import annotations

from typing import Any

import registry
from encoders import base
from encoders.base import *  # noqa: F401,F403  the encoder contract, re-exported as base.__all__ names it
from encoders.base import Encoder


def build(name: str, checkpoint: str | None = None, **options: Any) -> Encoder:
    """Build the registered encoder `name` with architecture overrides and optional local weights."""
    spec = {"name": name, **options}
    if checkpoint is not None:
        spec["checkpoint"] = str(checkpoint)
    return registry.build("encoders", spec)


__all__ = ["build"]
__all__ += base.__all__  # one list of the contract's names (the form type checkers read)
