"""What a side trains, in words, by role: parameters a strategy added are adapter parameters (the
`adapter` lr role), pretrained weights it unfroze are encoder parameters."""

from __future__ import annotations

from peftzoo_engine.grouping import role
from peftzoo_model.model import DualEncoderCLIP


def side_summary(model: DualEncoderCLIP, side: str) -> str:
    """e.g. 'lora: 1,024 adapter parameters in 4 tensors' or 'head_only: encoder frozen, trains nothing in it'."""
    report = getattr(model, side).report
    if not report.trains_encoder:
        return report.summary()
    params = dict(model.named_parameters())
    counts: dict[str, list[int]] = {}
    for name in report.trainable:
        full = f"{side}.encoder.{name}"
        count = counts.setdefault(role(model, full), [0, 0])
        count[0] += params[full].numel()
        count[1] += 1
    parts = [
        f"{n:,} {kind} parameters in {tensors} tensors"
        for kind, (n, tensors) in sorted(counts.items(), key=lambda kv: kv[0] != "adapter")
    ]
    return f"{report.strategy}: {' and '.join(parts)}"


def strategies_summary(model: DualEncoderCLIP) -> dict[str, str]:
    return {side: side_summary(model, side) for side in ("eeg", "video")}
