"""Where training is, and what of it a checkpoint must hold to continue exactly from there."""

from __future__ import annotations

from typing import Any


class Progress:
    """Counters of the run; `state()` is saved in checkpoints and set back on resume."""

    SAVED = (
        "step",
        "epoch",
        "last_eval",
        "best",
        "skipped_in_a_row",
        "skipped_total",
        "stage",
        "stage_start",
        "batch_in_epoch",
        "selection",
        "stopped_early",
    )

    def __init__(self) -> None:
        self.step, self.epoch, self.last_eval, self.best, self.warned_wait = 0, 0, {}, None, False
        self.skipped_in_a_row = self.skipped_total = 0
        self.stage = 0
        self.stage_start = 0  # step at which the current stage began (its schedule counts from there)
        self.batch_in_epoch = 0  # batches of the current epoch already trained (mid-epoch checkpoints)
        self.stop_signal: int | None = None
        self.phase = "setup"  # what training is doing, for signals (peftzoo_engine/signals.py)
        self.selection: dict = {}  # train.select's best and early stopping's count (peftzoo_engine/selection.py)
        self.stopped_early = False
        self.doctor = None  # peftzoo_tools.doctor.live.LiveDoctor on the writing process; not saved

    def state(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.SAVED}

    def load_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
