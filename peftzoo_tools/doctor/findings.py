"""What the doctor reports: a Finding (code, severity, evidence, fix) and the fixed list of codes.

The codes and severities are a contract (docs/reference/doctor-codes.md): scripts and tests match on them, so
a code is never renamed. Evidence is a sentence with the numbers and epochs it rests on; the fix
names a recipe key and value wherever one exists, and where the fix is a recipe change, `overrides`
holds it as dotted recipe keys -> values (tests/test_doctor.py applies each and checks that the
finding goes away).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")

# Ordered root causes first, symptoms (flat_loss) last: rank() keeps this order within a severity.
CODES: dict[str, str] = {
    "eeg_units": "EEG amplitude is far from the microvolt range the encoders expect",
    "no_negatives": "the loss masked (almost) every negative: pairs' stimulus ids leave nothing to contrast",
    "nonnegative_embeddings": (
        "embeddings pass a ReLU-like activation last: no coordinate is negative, every cosine >= 0"
    ),
    "frozen_adapter": "a trainable encoder tensor never moved: the adapter or unfrozen weights do nothing",
    "nonfinite_steps": "steps with a NaN or inf loss or gradient were skipped",
    "divergence": "the training loss spikes far above its running median or rises after warm-up",
    "temperature_at_clamp": "the logit scale sits at its maximum (the clamp) for most of training",
    "temperature_collapsed": "the logit scale fell below about 2: logits too flat to separate pairs",
    "embedding_collapse": "embeddings of different inputs are (nearly) the same vector",
    "same_group_negatives": "pairs of one recording or stimulus are used as each other's negatives",
    "overfitting": "the training loss keeps falling while validation retrieval falls",
    "data_bound": "the training step waits for the data loader much of the time",
    "flat_loss": "the training loss stays at ln(batch size) and retrieval at chance: nothing is learned",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One diagnosed problem of a run."""

    code: str
    severity: Severity
    evidence: str
    fix: str
    overrides: dict = dataclasses.field(default_factory=dict, compare=False)
    """The fix as recipe overrides (`train.lr: 0.001`), when it is a recipe change; empty otherwise."""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}; known: {', '.join(CODES)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; known: {', '.join(SEVERITIES)}")

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity, "evidence": self.evidence, "fix": self.fix}

    def demoted(self, why: str) -> Finding:
        """This finding as `info`, with the reason: a symptom whose cause another finding names."""
        return dataclasses.replace(self, severity="info", evidence=f"{self.evidence} ({why})")


def rank(findings: list[Finding]) -> list[Finding]:
    """Most severe first; within a severity, in the order of CODES (root causes before symptoms)."""
    order = list(CODES)
    return sorted(findings, key=lambda f: (-SEVERITIES.index(f.severity), order.index(f.code)))


def fmt(x: float, digits: int = 3) -> str:
    """A number for evidence text: 3 significant digits, no noise."""
    return f"{x:.{digits}g}"
