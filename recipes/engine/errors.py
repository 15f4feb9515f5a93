"""The engine's exceptions."""

from __future__ import annotations

import signal
from pathlib import Path

from recipes.errors import RecipeError


class NonFiniteError(RecipeError):
    """Too many consecutive steps with a NaN or inf loss or gradient."""


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT arrived; a checkpoint at the current step was written."""

    def __init__(self, signum: int, checkpoint: Path):
        self.signum, self.checkpoint = signum, checkpoint
        super().__init__(f"{signal.Signals(signum).name}: checkpoint written to {checkpoint}")
