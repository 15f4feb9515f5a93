"""Training callbacks: code that runs at fixed points of training, without the engine knowing it.

`train(..., callbacks=[...])` calls each callback's hooks in list order (Lightning's callback hooks,
trimmed to what a run here has). Every hook is optional; each gets the run's `TrainContext`
(peftzoo_engine/context.py: recipe, model, data, run directory, progress, ...):

    on_run_start(ctx)                       after the run directory is started or resumed, before the first step
    on_epoch_start(ctx)                     before an epoch's first step (after a mid-epoch resume: its next one)
    on_step_end(ctx, loss, finite)          after each optimizer step: `loss` is the step's loss tensor (reading it
                                            with .item() waits for the device), `finite` whether the step was taken
    on_epoch_end(ctx, record)               after an epoch, with its metrics line (`type: epoch`)
    on_evaluation_end(ctx, metrics)         after each validation, with its metrics (`val/...`)
    on_log(ctx, record)                     after each line written to metrics.jsonl (train, epoch, eval, stage,
                                            diagnosis), so a logger sees everything under the same names
    on_run_end(ctx, status)                 at the end: completed, interrupted or failed
    state_dict() / load_state_dict(state)   what the callback must carry over a resume: saved in every checkpoint
                                            (tensors and plain values, read back with weights_only=True) and
                                            given back before on_run_start of the resumed run

A callback writes its own lines with `ctx.log(record)`. Hooks run on every process of a distributed
run; `ctx.run.writes` is true on the one that writes the run directory.

Plugins register callbacks under the entry-point group `peftzoo.callbacks`; a recipe names them in
`train.callbacks` (a name, or {name, options}), validated like every other component.
"""

from __future__ import annotations

from typing import Any

import torch

from peftzoo_engine.context import HOOKS, Callbacks, TrainContext, default_key

__all__ = ["HOOKS", "STATUSES", "Callback", "Callbacks", "TrainContext", "default_key"]

STATUSES = ("completed", "interrupted", "failed")


def _does_nothing(hook):
    """Mark a base hook, so that a callback that keeps it costs no call (peftzoo_engine/context.py)."""
    hook.does_nothing = True
    return hook


class Callback:
    """A base with every hook doing nothing; subclassing it is optional (hooks are looked up by name)."""

    @_does_nothing
    def on_run_start(self, ctx: TrainContext) -> None: ...

    @_does_nothing
    def on_epoch_start(self, ctx: TrainContext) -> None: ...

    @_does_nothing
    def on_step_end(self, ctx: TrainContext, loss: torch.Tensor, finite: bool) -> None: ...

    @_does_nothing
    def on_epoch_end(self, ctx: TrainContext, record: dict[str, Any]) -> None: ...

    @_does_nothing
    def on_evaluation_end(self, ctx: TrainContext, metrics: dict[str, Any]) -> None: ...

    @_does_nothing
    def on_log(self, ctx: TrainContext, record: dict[str, Any]) -> None: ...

    @_does_nothing
    def on_run_end(self, ctx: TrainContext, status: str) -> None: ...
