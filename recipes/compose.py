"""Recipe -> dual-encoder CLIP model, every part asked of the registry by name.

Before anything trains, each encoder's `input_spec` is checked against the data (sampling rate,
window length, channel names, frame layout), so a mismatch is one clear error here rather than a
shape error deep inside a model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel

from adapters.strategies.base import StrategyError, apply_strategies, strategy_key
from encoders.base import Encoder, InputSpecError
from peftzoo_data.base import PairedData
from peftzoo_model.model import DualEncoderCLIP, Tower
from registry.component import name_of
from registry.core import Registry

logger = logging.getLogger(__name__)


def check_data(encoder: Encoder, data: PairedData, side: str) -> None:
    """Check the data against the encoder's declared `modality` and `input_spec` (the encoder
    contract, docs/plugins.md): a plugin encoder need not subclass the built-in bases."""
    name = name_of(encoder)  # the registry name: the contract requires no `name` attribute
    modality = getattr(encoder, "modality", None)
    if modality != side:
        raise InputSpecError(
            f"{side}.encoder {name!r} declares modality {modality!r}; the {side} side takes an encoder with "
            f"modality = {side!r} (set the class attribute, or pick a {side} encoder)"
        )
    if modality == "eeg":
        encoder.input_spec.check(sfreq=data.sfreq, channels=data.channels, n_samples=data.eeg.shape[-1], encoder=name)
    else:
        encoder.input_spec.check(frame_shape=tuple(data.video.shape[1:]), encoder=name)


def planned_steps(recipe: BaseModel, data: PairedData | None, epochs: int) -> int | None:
    """Optimizer steps `epochs` of the recipe's training take on `data` (full batches only)."""
    if data is None:
        return None
    n = len(data.split("train"))
    batch = min(recipe.train.batch_size, n) or 1
    return (n // batch) // recipe.train.accum_freq * epochs


def build_tower(
    side: BaseModel,
    side_name: str,
    data: PairedData | None,
    embed_dim: int,
    reg: Registry,
    total_steps: int | None = None,
) -> Tower:
    encoder = reg.build("encoders", side.encoder)
    # What the encoder had before any strategy: the rest of its trainable parameters are adapters'.
    encoder.pretrained_parameter_names = frozenset(n for n, _ in encoder.named_parameters())
    if data is not None:
        check_data(encoder, data, side_name)
    strategies = [reg.build("strategies", s) for s in side.strategy]
    for strategy in strategies:
        strategy.total_steps = total_steps
    applied: dict = {}
    try:
        report = apply_strategies(encoder, strategies, applied)
    except StrategyError as exc:
        raise StrategyError(f"{side_name}.strategy: {exc}") from None
    head = reg.build("heads", side.head, in_dim=encoder.feature_dim, out_dim=embed_dim)
    logger.info("%s: %s (%s), head %s", side_name, side.encoder.name, report.summary(), side.head.name)
    tower = Tower(encoder, head, report, strategies)
    tower.applied = applied
    return tower


def stage_plan(recipe: BaseModel) -> list:
    """The training stages: the recipe's `train.stages`, or one stage of `train.epochs`."""
    if recipe.train.stages:
        return list(recipe.train.stages)
    return [SimpleNamespace(epochs=recipe.train.epochs, lr=None, eeg=None, video=None)]


def switch_stage(model: DualEncoderCLIP, stage, reg: Registry, total_steps: int | None) -> None:
    """Apply the strategies a stage names for each side (on top of what earlier stages applied)."""
    for side in ("eeg", "video"):
        change = getattr(stage, side, None)
        if change is None:
            continue
        tower = getattr(model, side)
        strategies = [reg.build("strategies", s) for s in change.strategy]
        for strategy in strategies:
            strategy.total_steps = total_steps
        try:
            tower.report = apply_strategies(tower.encoder, strategies, tower.applied)
        except StrategyError as exc:
            raise StrategyError(f"train.stages: {side}.strategy: {exc}") from None
        tower.strategies = [tower.applied[strategy_key(s)][0] for s in strategies]
    model.follow_renames()
    model.ever_trainable |= set(model.trainable_parameters())


def compose(recipe: BaseModel, data: PairedData | None, reg: Registry) -> DualEncoderCLIP:
    """Build the model a validated recipe describes, checked against `data` (None: no data checks,
    for exporting; the model then has no EEG channel names)."""
    steps = planned_steps(recipe, data, stage_plan(recipe)[0].epochs)
    eeg = build_tower(recipe.eeg, "eeg", data, recipe.embed_dim, reg, steps)
    video = build_tower(recipe.video, "video", data, recipe.embed_dim, reg, steps)
    loss = reg.build("losses", recipe.loss)
    model = DualEncoderCLIP(eeg, video, loss, channels=data.channels if data is not None else [])
    model.ever_trainable = set(model.trainable_parameters())
    return model


def compose_all_stages(
    recipe: BaseModel, data: PairedData | None, reg: Registry, steps_of: Callable[[Any], int | None] | None = None
) -> DualEncoderCLIP:
    """The model as training leaves it: composed, then every stage's strategies applied in order (as
    peftzoo_engine.trainer does, from the first), so a run's weights file fits it. `steps_of(stage)` gives
    the steps a stage's strategies schedule over (None: unknown, as when loading a finished run)."""
    model = compose(recipe, data, reg)
    for stage in stage_plan(recipe):
        switch_stage(model, stage, reg, steps_of(stage) if steps_of is not None else None)
    return model
