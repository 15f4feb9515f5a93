"""nonfinite_steps: steps the trainer skipped because the loss or gradient was NaN or inf (fact 3 of
docs/reference/doctor-codes.md).

The trainer skips such a step (no optimizer update), counts it per epoch (`skipped_steps` in the
epoch lines, `skipped_steps` in run.json) and stops after `train.max_nonfinite_steps` in a row. Under
fp16 the GradScaler skips steps with inf *gradients* by design while it finds its scale; the trainer
counts only a non-finite *loss* there, so every counted step is a real one. Severity: error when the
run stopped on them, warning when more than 1% of steps were lost, info below that (an isolated bad
batch costs nothing measurable).
"""

from __future__ import annotations

from peftzoo_tools.doctor.findings import Finding, fmt
from peftzoo_tools.doctor.run_reader import RunRecord

WARN_SHARE = 0.01


def likely_cause(run: RunRecord) -> tuple[str, str]:
    """(cause, fix) from the recipe and what the run recorded."""
    return _cause(run)[:2]


def _cause(run: RunRecord) -> tuple[str, str, dict]:
    """(cause, fix, the fix as recipe overrides where it is one)."""
    precision = str(run.info.get("precision") or run.get("train.precision", ""))
    lr = run.get("train.lr")
    if "16" in precision and "bfloat" not in precision and "bf16" not in precision:
        return (
            "fp16 autocast (its range ends at 65504; Adam on fp16 goes NaN, openai/CLIP #40)",
            "train.precision: bf16 on a GPU that has it (else fp32), and train.grad_clip_norm: 1.0",
            {},
        )
    try:
        high = float(lr) >= 1e-2
    except (TypeError, ValueError):
        high = False
    if high:
        # a hundredth, but no higher than 1e-3: lr 1e30 / 100 is still out of range
        lower = float(f"{min(float(lr) / 100, 1e-3):.3g}")
        return (
            f"a learning rate of {lr}, high enough to throw weights out of range",
            f"lower train.lr (try train.lr: {lower:g}) and set train.grad_clip_norm: 1.0",
            {"train.lr": lower, "train.grad_clip_norm": 1.0},
        )
    return (
        "not the precision or an extreme lr: look for NaN or inf in the data (np.isfinite on eeg.npy) "
        "or a loss spike before it",
        "check the data for non-finite values; set train.grad_clip_norm: 1.0; lower train.lr",
        {},
    )


def check_nonfinite(run: RunRecord) -> list[Finding]:
    per_epoch = [(int(e.get("epoch", 0)), int(e.get("skipped_steps") or 0)) for e in run.epochs]
    skipped = max(sum(n for _, n in per_epoch), int(run.info.get("skipped_steps") or 0))
    error = str(run.info.get("error") or "")
    stopped = run.info.get("status") == "failed" and "NaN or inf" in error
    live = [d for d in run.of_type("diagnosis") if d.get("code") == "nonfinite_steps" and "first_step" in d]
    if not skipped and not stopped:
        return []
    cause, fix, overrides = _cause(run)
    steps = max(run.total_steps(), 1)
    where = []
    if live:
        where.append(f"the first at step {live[0]['first_step']}")
    elif per_epoch and any(n for _, n in per_epoch):
        first = next(e for e, n in per_epoch if n)
        where.append(f"the first in epoch {first}")
    if stopped:
        where.append(f"the run stopped on them: {error}")
    counted = f"{skipped} of {steps} steps" if skipped else "steps"
    evidence = f"{counted} had a NaN or inf loss or gradient and were skipped" + (
        f" ({'; '.join(where)})" if where else ""
    )
    evidence += f"; likely cause: {cause}"
    if stopped:
        severity = "error"
    elif skipped / steps > WARN_SHARE:
        severity = "warning"
    else:
        severity = "info"
        evidence += f" (under {fmt(100 * WARN_SHARE)}% of steps)"
    return [Finding("nonfinite_steps", severity, evidence, fix, overrides)]
