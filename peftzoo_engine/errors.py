"""The engine's exceptions."""

from __future__ import annotations

import signal
from pathlib import Path

from recipes.errors import RecipeError


class NonFiniteError(RecipeError):
    """Too many consecutive steps with a NaN or inf loss or gradient."""


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT arrived; `checkpoint` is the one to resume from (written at the current step
    when the signal came during the optimizer steps; None when none was written yet)."""

    def __init__(self, signum: int, checkpoint: Path | None):
        self.signum, self.checkpoint = signum, checkpoint
        super().__init__(f"{signal.Signals(signum).name}: resume from {checkpoint or 'nothing (no checkpoint yet)'}")
