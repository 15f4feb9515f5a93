"""diagnose(RUN): every check over one run, findings ranked, symptoms tied to their causes."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from peftzoo_tools.doctor import (
    adapter_checks,
    data_checks,
    embedding_checks,
    loss_checks,
    negatives_checks,
    stability,
    temperature,
    throughput,
)
from peftzoo_tools.doctor.findings import Finding, rank
from peftzoo_tools.doctor.run_reader import RunRecord, read_run

logger = logging.getLogger(__name__)

# Validation pairs embedded by the trained and the base encoder for frozen_adapter (a few dozen: cheap, no grad).
FEATURE_SAMPLE = 32

METRIC_CHECKS = (
    negatives_checks.check_masked_share,
    loss_checks.check_flat_loss,
    loss_checks.check_divergence,
    loss_checks.check_overfitting,
    stability.check_nonfinite,
    temperature.check_temperature,
    throughput.check_data_bound,
)

# A flat loss is what these causes look like from the loss curve: said once, as the cause.
EXPLAINS_FLAT_LOSS = (
    "no_negatives",
    "eeg_units",
    "nonnegative_embeddings",
    "embedding_collapse",
    "temperature_collapsed",
    "nonfinite_steps",
    "divergence",
)
# A loss with no negatives is exactly 0: no gradient reaches the adapter, so its tensors stay as initialized.
EXPLAINS_FROZEN = ("no_negatives",)
# Collapsed embeddings are what these look like from the model (eeg_units: on the EEG side only).
EXPLAINS_COLLAPSE = ("eeg_units", "divergence")


@dataclasses.dataclass
class Report:
    run: RunRecord
    findings: list[Finding]
    notes: list[str]


def metric_findings(run: RunRecord) -> list[Finding]:
    return [f for check in METRIC_CHECKS for f in check(run)]


def model_findings(run: RunRecord, sample: int = 256, device: str = "cpu") -> tuple[list[Finding], list[str]]:
    """Findings that need the data and the rebuilt model; notes say what could not be checked."""
    from peftzoo_tools.doctor.model_probe import embed, rebuild, sample_indices

    probe, why = rebuild(run, device)
    if probe is None:
        return [], [why]
    data = probe.data
    out: list[Finding] = []
    train_idx = data.split("train")
    out += data_checks.check_eeg_units(data.eeg)
    out += negatives_checks.check_data(data.stimulus_ids, train_idx, run.recipe, data.stimulus is not None)
    out += data_checks.check_group_masking(data.stimulus_ids, train_idx, run.recipe)
    out += adapter_checks.check_frozen(probe.initial, probe.saved, run.total_steps(), run.recipe)
    notes = [f"{side}: base encoder features not compared ({why})" for side, why in probe.base_missing.items()]
    val_idx = data.split("val")
    out += feature_findings(probe, val_idx if len(val_idx) else train_idx, run.total_steps())
    if len(val_idx) >= 4:
        chosen = val_idx[sample_indices(len(val_idx), sample)]
        eeg, video = embed(probe, chosen)
        where = f" ({len(chosen)} validation pairs)"
        out += embedding_checks.check_embeddings("eeg", eeg, probe.model.eeg.head, where)
        out += embedding_checks.check_embeddings("video", video, probe.model.video.head, where)
    else:
        notes.append(f"the validation split has {len(val_idx)} pairs: embedding checks skipped")
    if len(data) >= 2 * data_checks.MIN_ADJACENT + 1:
        starts = sample_indices(len(data) - 1, max(sample // 2, data_checks.MIN_ADJACENT))
        pairs = np.stack([starts, starts + 1], axis=1).reshape(-1)
        eeg, video = embed(probe, pairs)
        out += data_checks.check_adjacent({"eeg": eeg, "video": video}, data.stimulus_ids[pairs], run.recipe)
    return out, notes


def feature_findings(probe, indices: np.ndarray, steps: int) -> list[Finding]:
    """frozen_adapter from features: each side that trains encoder tensors, compared with its base
    encoder on FEATURE_SAMPLE pairs; not for a side whose tensors all stayed put (already an error)."""
    from peftzoo_tools.doctor.model_probe import base_feature_gap, sample_indices

    whole = adapter_checks.unchanged_sides(probe.initial, probe.saved)
    out = []
    chosen = indices[sample_indices(len(indices), FEATURE_SAMPLE)] if len(indices) else indices
    for side in sorted(probe.base):
        if side in whole or not len(chosen):
            continue
        names = [n for n in probe.initial if n.startswith(f"{side}.")]
        moved = sum(
            1 for n in names if n in probe.saved and not torch.equal(probe.saved[n].float(), probe.initial[n].float())
        )
        gap = base_feature_gap(probe, side, chosen)
        out += adapter_checks.check_features(side, gap, len(chosen), moved, steps)
    return out


def tie_symptoms(findings: list[Finding]) -> list[Finding]:
    """Demote symptoms to info where a finding of their cause is present: flat_loss under any of
    EXPLAINS_FLAT_LOSS; collapsed EEG embeddings under eeg_units (EEG in volts is ~1e-5 in every
    channel: the encoder sees a constant); frozen_adapter under no_negatives (a loss with every negative
    masked is exactly 0 and sends no gradient); collapsed embeddings of either side under divergence (an lr
    far too high throws a head's outputs onto one direction: the planted lr jump in tests/test_doctor.py
    spikes the loss, then both sides collapse and the loss sits at ln(B); lowering the lr fixes both)."""
    findings = _one_no_negatives(findings)
    findings = _tie_frozen(findings)
    # Collapse first, so that a flat loss names the root cause, not a collapse explained itself.
    for symptom in ("embedding_collapse", "flat_loss"):
        findings = _tie_symptom(findings, symptom)
    return findings


def _one_no_negatives(findings: list[Finding]) -> list[Finding]:
    """One no_negatives: the data's numbers where the data were read (the last said), else the live count."""
    said = [f for f in findings if f.code == "no_negatives"]
    if len(said) <= 1:
        return findings
    return [f for f in findings if f.code != "no_negatives" or f is said[-1]]


def _active_codes(findings: list[Finding]) -> set[str]:
    """Codes of the findings still in force (not demoted to info): only those explain a symptom."""
    return {f.code for f in findings if f.severity != "info"}


def _tie_frozen(findings: list[Finding]) -> list[Finding]:
    """A frozen adapter under EXPLAINS_FROZEN: a loss with no negatives is 0 and sends the adapter no gradient."""
    causes = [c for c in EXPLAINS_FROZEN if c in _active_codes(findings)]
    if not causes:
        return findings
    return [
        f.demoted(f"explained by {', '.join(causes)}: no loss, no gradient; fix that first")
        if f.code == "frozen_adapter" and f.severity != "info"
        else f
        for f in findings
    ]


def _causes(f: Finding, codes: set[str]) -> list[str]:
    """The findings in force that explain symptom `f`; eeg_units explains only a collapse of the EEG side."""
    if f.code == "flat_loss":
        return [c for c in EXPLAINS_FLAT_LOSS if c in codes]
    return [c for c in EXPLAINS_COLLAPSE if c in codes and (c != "eeg_units" or f.evidence.startswith("eeg "))]


def _tie_symptom(findings: list[Finding], symptom: str) -> list[Finding]:
    """Demote each in-force `symptom` finding that a finding of its cause explains."""
    codes = _active_codes(findings)
    out = []
    for f in findings:
        causes = _causes(f, codes) if f.code == symptom and f.severity != "info" else []
        out.append(f.demoted(f"explained by {', '.join(causes)}; fix that first") if causes else f)
    return out


def diagnose(path: str | Path, model: bool = True, sample: int = 256, device: str = "cpu") -> Report:
    """All findings for the run at `path`, most severe first (NotARunError if it is not a run)."""
    run = read_run(path)
    findings = metric_findings(run)
    notes = list(run.notes)
    checked_model = False
    if model:
        more, why = model_findings(run, sample, device)
        findings += more
        notes += why
        checked_model = not why or not any("model checks skipped" in w for w in why)
    if not checked_model:
        findings += seen_live(run, {f.code for f in findings})
    return Report(run, rank(tie_symptoms(findings)), notes)


# What only the rebuilt model or the data shows; without them, what the live checks saw is reported.
MODEL_CODES = ("eeg_units", "nonnegative_embeddings", "frozen_adapter", "embedding_collapse", "same_group_negatives")


def seen_live(run: RunRecord, have: set[str]) -> list[Finding]:
    """Findings of MODEL_CODES from the run's own `diagnosis` lines (peftzoo_tools.doctor.live)."""
    out, seen = [], set(have)
    for line in run.of_type("diagnosis"):
        code = line.get("code")
        if code in MODEL_CODES and code not in seen and line.get("severity") in ("info", "warning", "error"):
            seen.add(code)
            out.append(
                Finding(
                    code,
                    line["severity"],
                    f"{line.get('evidence', '')} (seen live at step {line.get('step')})",
                    str(line.get("fix", "")),
                )
            )
    return out
