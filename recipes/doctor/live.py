"""Checks while training: the doctor's cheap checks, run by the training loop as it goes.

The loop owns one `LiveDoctor` and calls it at four places (nothing else; every method is cheap):

    doctor = LiveDoctor(recipe_dict, total_steps)      # recipe_dict: yaml.safe_load(dump(recipe))
    doctor.start(model)                                # before the first step: fingerprints of encoder tensors
    for line in doctor.after_step(step, finite): run.log(line)     # each step: a Python bool, no tensor work
    for line in doctor.observe(record): run.log(line)  # each metrics line the loop writes (train/epoch/eval)
    for line in doctor.after_eval(epoch, step, model=model, eeg=eeg, video=video): run.log(line)

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

from recipes.doctor import embedding_checks, loss_checks, stability, temperature, throughput
from recipes.doctor.findings import Finding
from recipes.doctor.run_reader import RunRecord

logger = logging.getLogger("recipes.doctor")


class LiveDoctor:
    """Accumulates a run's metrics lines and reports each finding the first time it appears."""

    def __init__(self, recipe: dict[str, Any], total_steps: int, splits: dict[str, int] | None = None):
        self.record = RunRecord(path=Path("."), info={"steps": int(total_steps), "splits": dict(splits or {})},
                                recipe=recipe, lines=[])
        self.reported: set[str] = set()
        self.first_nonfinite: int | None = None
        self._fingerprints: dict[str, tuple[float, float]] = {}
        self._epoch = 0

    # -- the four calls ----------------------------------------------------------------------------
    def start(self, model: torch.nn.Module) -> None:
        """Remember each trainable encoder tensor's (sum, sum of squares) to tell later whether it moved."""
        self._fingerprints = {n: _fingerprint(p) for n, p in model.named_parameters()
                              if p.requires_grad and ".encoder." in f".{n}"}

    def after_step(self, step: int, finite: bool) -> list[dict[str, Any]]:
        """Per step: only notes the first non-finite one (step counted from 1)."""
        if finite or self.first_nonfinite is not None:
            return []
        self.first_nonfinite = step
        cause, fix = stability.likely_cause(self.record)
        return self._report([Finding("nonfinite_steps", "warning",
                                     f"step {step} had a NaN or inf loss or gradient and was skipped; likely cause: {cause}", fix)],
                            step, first_step=step)

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
        return self._report([f for f in findings if f.severity != "info"], step)

    def after_eval(self, epoch: int, step: int, model: torch.nn.Module | None = None,
                   eeg: torch.Tensor | None = None, video: torch.Tensor | None = None) -> list[dict[str, Any]]:
        """At each evaluation: embedding checks on the validation embeddings; whether encoder tensors moved."""
        findings: list[Finding] = []
        for side, z in (("eeg", eeg), ("video", video)):
            if z is not None:
                head = getattr(getattr(model, side, None), "head", None) if model is not None else None
                findings += embedding_checks.check_embeddings(side, z.detach().float().cpu(), head, f" (validation, epoch {epoch})")
        if model is not None and self._fingerprints and step > 0:
            params = dict(model.named_parameters())
            still = [n for n, fp in self._fingerprints.items() if n in params and _fingerprint(params[n]) == fp]
            if still:
                scales = (self.record.recipe.get("train") or {}).get("lr_scales") or {}
                fix = ("train.lr_scales.adapter: 1.0 (it is 0)" if scales.get("adapter") == 0 else
                       "check that the adapter is called (an encoder calling F.linear bypasses LoRA) and its lr is above 0")
                findings.append(Finding("frozen_adapter", "error",
                                        f"{len(still)} of {len(self._fingerprints)} trainable encoder tensors have not moved "
                                        f"after {step} steps ({', '.join(still[:3])}{' ...' if len(still) > 3 else ''})", fix))
        return self._report(findings, step)

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


@torch.no_grad()
def _fingerprint(p: torch.Tensor) -> tuple[float, float]:
    x = p.detach().double()
    return float(x.sum()), float((x * x).sum())
