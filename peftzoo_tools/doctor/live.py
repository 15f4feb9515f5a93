"""Checks while training: the doctor's cheap checks, run by the training loop as it goes.

`LiveDoctorCallback` is a training callback (peftzoo_engine/callbacks.py) that the run command passes to
`train()`; it runs a `LiveDoctor` on the process that writes the run directory, at these hooks only
(every call is cheap):

    on_run_start        doctor.start(model, eeg=data.eeg): EEG units, encoder fingerprints
    on_step_end         doctor.after_step(step, finite): a Python bool, no tensor work
    on_log              doctor.observe(line) for train, epoch and eval lines
    on_evaluation_end   doctor.after_eval(epoch, step, model=model, loader=val_loader, device=device)

Each method returns `diagnosis` lines for metrics.jsonl (`{"type": "diagnosis", "epoch", "step",
"code", "severity", "evidence", "fix"}`) and logs a warning the first time a code appears; a code is
reported once per run. Per step the doctor only counts (the first non-finite step); the metric
checks run on the epoch and eval lines (lists of a few hundred numbers), the embedding checks on
the validation embeddings evaluation computed anyway, and the frozen-adapter check compares two
sums per encoder tensor once per evaluation. benchmarks/doctor_live.py measures the cost.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from peftzoo_engine.callbacks import Callback
from peftzoo_model.metrics import eval_mode
from peftzoo_tools.doctor import data_checks, embedding_checks, loss_checks, stability, temperature, throughput
from peftzoo_tools.doctor.diagnose import EXPLAINS_FLAT_LOSS
from peftzoo_tools.doctor.findings import Finding
from peftzoo_tools.doctor.run_reader import RunRecord

logger = logging.getLogger("peftzoo_tools.doctor")


class LiveDoctor:
    """Accumulates a run's metrics lines and reports each finding the first time it appears."""

    def __init__(self, recipe: dict[str, Any], total_steps: int, splits: dict[str, int] | None = None):
        self.record = RunRecord(
            path=Path("."), info={"steps": int(total_steps), "splits": dict(splits or {})}, recipe=recipe, lines=[]
        )
        self.reported: set[str] = set()
        self.first_nonfinite: int | None = None
        self._fingerprints: dict[str, tuple[float, float]] = {}
        self._epoch = 0

    @classmethod
    def for_recipe(cls, recipe, total_steps: int, splits: dict[str, int] | None = None) -> LiveDoctor:
        """From a validated recipe (pydantic), as the trainer holds it."""
        return cls(recipe.model_dump(mode="json"), total_steps, splits)

    def emit(self, run, lines: list[dict[str, Any]]) -> None:
        """Write diagnosis lines to a RunDir's metrics.jsonl."""
        for line in lines:
            run.log(line)

    def log(self, run, record: dict[str, Any]) -> None:
        """run.log(record), then the checks that record may trigger, their diagnosis lines logged after it."""
        run.log(record)
        self.emit(run, self.observe(record))

    # -- the four calls ----------------------------------------------------------------------------
    def start(self, model: torch.nn.Module, eeg=None) -> list[dict[str, Any]]:
        """Before the first step: remember each trainable encoder tensor's (sum, sum of squares) to tell
        later whether it moved, and check the EEG's units on up to 256 windows of `eeg` (N, C, T)."""
        self._fingerprints = {
            n: _fingerprint(p) for n, p in model.named_parameters() if p.requires_grad and ".encoder." in f".{n}"
        }
        return self._report(data_checks.check_eeg_units(eeg), 0) if eeg is not None else []

    def after_step(self, step: int, finite: bool) -> list[dict[str, Any]]:
        """Per step: only notes the first non-finite one (step counted from 1)."""
        if finite or self.first_nonfinite is not None:
            return []
        self.first_nonfinite = step
        cause, fix = stability.likely_cause(self.record)
        return self._report(
            [
                Finding(
                    "nonfinite_steps",
                    "warning",
                    f"step {step} had a NaN or inf loss or gradient and was skipped; likely cause: {cause}",
                    fix,
                )
            ],
            step,
            first_step=step,
        )

    def observe(self, line: dict[str, Any]) -> list[dict[str, Any]]:
        """Each metrics line the loop logs; checks the curves after each epoch and evaluation line."""
        self.record.lines.append(line)
        self._epoch = int(line.get("epoch", self._epoch) or 0)
        if line.get("type") not in ("epoch", "eval"):
            return []
        step = int(line.get("step", 0) or 0)
        findings = throughput.check_data_bound(self.record)
        if step > self.record.warmup_steps():
            findings += loss_checks.check_divergence(self.record)
            findings += temperature.check_temperature(self.record)
            findings += loss_checks.check_overfitting(self.record)
        if line.get("type") == "eval" and step >= 0.8 * self.record.total_steps():
            # Early in training a loss near ln(B) is where every run starts: judged in the last fifth only.
            findings += loss_checks.check_flat_loss(self.record)
        causes = [c for c in EXPLAINS_FLAT_LOSS if c in self.reported]
        if causes:  # a flat loss is what those look like from the curve: not a second alarm
            findings = [f for f in findings if f.code != "flat_loss"]
        return self._report([f for f in findings if f.severity != "info"], step)

    def after_eval(
        self,
        epoch: int,
        step: int,
        model: torch.nn.Module | None = None,
        eeg: torch.Tensor | None = None,
        video: torch.Tensor | None = None,
        loader=None,
        device: torch.device | str = "cpu",
    ) -> list[dict[str, Any]]:
        """At each evaluation: embedding checks on validation embeddings (given, or of the first batch of
        `loader`: one batch more per evaluation); whether the encoder tensors moved since start()."""
        if step < 0.5 * self.record.total_steps():
            # A fresh head on similar encoder features starts near-collapsed and spreads out as it
            # trains (seen at epoch 1 of tiny runs): judged in the second half of training only.
            eeg = video = loader = None
        if eeg is None and video is None and loader is not None and model is not None:
            eeg, video = _first_batch_embeddings(model, loader, device)
        findings = self._embedding_findings(epoch, model, eeg, video)
        if model is not None and self._fingerprints and step > 0:
            findings += self._frozen_findings(model, step)
        return self._report(findings, step)

    def _embedding_findings(self, epoch: int, model, eeg, video) -> list[Finding]:
        findings: list[Finding] = []
        for side, z in (("eeg", eeg), ("video", video)):
            if z is None:
                continue
            head = getattr(getattr(model, side, None), "head", None) if model is not None else None
            found = embedding_checks.check_embeddings(
                side, z.detach().float().cpu(), head, f" (validation, epoch {epoch})"
            )
            # EEG in volts is a constant to the encoder; an lr far too high throws the heads onto one
            # direction: the collapse is their symptom (diagnose.EXPLAINS_COLLAPSE), not a second alarm.
            if "divergence" in self.reported or (side == "eeg" and "eeg_units" in self.reported):
                found = [f for f in found if f.code != "embedding_collapse"]
            findings += found
        return findings

    def _frozen_findings(self, model, step: int) -> list[Finding]:
        """frozen_adapter when a side none of whose trainable encoder tensors moved (see adapter_checks)."""
        params = dict(model.named_parameters())
        still = [n for n, fp in self._fingerprints.items() if n in params and _fingerprint(params[n]) == fp]
        sides = {n.split(".", 1)[0] for n in self._fingerprints}
        whole = [side for side in sides if all(n in still for n in self._fingerprints if n.startswith(f"{side}."))]
        if not whole:
            return []
        scales = (self.record.recipe.get("train") or {}).get("lr_scales") or {}
        fix = (
            "train.lr_scales.adapter: 1.0 (it is 0)"
            if scales.get("adapter") == 0
            else ("check that the adapter is called (an encoder calling F.linear bypasses LoRA) and its lr is above 0")
        )
        evidence = (
            f"{len(still)} of {len(self._fingerprints)} trainable encoder tensors have not moved "
            f"after {step} steps ({', '.join(still[:3])}{' ...' if len(still) > 3 else ''})"
        )
        return [Finding("frozen_adapter", "error", evidence, fix)]

    # -- reporting ---------------------------------------------------------------------------------
    def _report(self, findings: list[Finding], step: int, **extra: Any) -> list[dict[str, Any]]:
        lines = []
        for f in findings:
            if f.code in self.reported:
                continue
            self.reported.add(f.code)
            logger.warning("doctor: %s (%s): %s; fix: %s", f.code, f.severity, f.evidence, f.fix)
            lines.append({"type": "diagnosis", "epoch": self._epoch, "step": step, **f.to_json(), **extra})
        return lines


OBSERVED = ("train", "epoch", "eval")
"""The metrics lines the doctor reads (its own diagnosis lines and stage lines are not curves)."""


class LiveDoctorCallback(Callback):
    """The live doctor as a training callback: diagnosis lines in metrics.jsonl while the run trains."""

    def __init__(self) -> None:
        self.doctor: LiveDoctor | None = None

    def on_run_start(self, ctx) -> None:
        if not ctx.run.writes:
            return
        splits = {k: int(len(v)) for k, v in ctx.data.splits.items()}
        self.doctor = LiveDoctor.for_recipe(ctx.recipe, ctx.total_steps, splits)
        self._emit(ctx, self.doctor.start(ctx.model, eeg=ctx.data.eeg))

    def on_step_end(self, ctx, loss, finite: bool) -> None:
        if self.doctor is not None and not finite:
            self._emit(ctx, self.doctor.after_step(ctx.progress.step, finite))

    def on_log(self, ctx, record: dict[str, Any]) -> None:
        if self.doctor is not None and record.get("type") in OBSERVED:
            self._emit(ctx, self.doctor.observe(record))

    def on_evaluation_end(self, ctx, metrics: dict[str, Any]) -> None:
        if self.doctor is None:
            return
        with ctx.precision.autocast():  # one validation batch's embeddings
            lines = self.doctor.after_eval(
                ctx.progress.epoch, ctx.progress.step, model=ctx.model, loader=ctx.stage.val_loader, device=ctx.device
            )
        self._emit(ctx, lines)

    @staticmethod
    def _emit(ctx, lines: list[dict[str, Any]]) -> None:
        for line in lines:
            ctx.log(line)


@torch.no_grad()
def _first_batch_embeddings(model, loader, device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    batch = next(iter(loader), None)
    if batch is None:
        return None, None
    with eval_mode(model):
        eeg, video, _ = model.embed_batch(batch, torch.device(device))
    return eeg, video


@torch.no_grad()
def _fingerprint(p: torch.Tensor) -> tuple[float, float]:
    x = p.detach().double()
    return float(x.sum()), float((x * x).sum())
