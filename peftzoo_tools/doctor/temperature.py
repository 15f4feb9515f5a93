"""temperature_at_clamp and temperature_collapsed, from the logit scale in the train lines (fact 2 of
docs/reference/doctor-codes.md).

The loss logs `logit_scale` (exp of the learned log-scale, i.e. 1/T). CLIP clamps it at 100
(`loss.max_logit_scale`); pinned there for most of training means the scale is no longer learned
and logits are as sharp as allowed (in fp16 that is where overflow starts). open_clip #815 shows the
other failure: the scale falling from 14.3 towards 1 while the loss flattens; at a scale below 2 the
cosines in [-1, 1] give logits within +-2, too flat to separate B pairs, and a lower lr fixed it.

- at_clamp: logit_scale >= 99% of the maximum in at least half of the post-warm-up lines (at least 3).
- collapsed: median logit_scale of the last third of post-warm-up lines below 2.
"""

from __future__ import annotations

from peftzoo_tools.doctor.curves import after_warmup, median, tail
from peftzoo_tools.doctor.findings import Finding, fmt
from peftzoo_tools.doctor.run_reader import RunRecord

CLAMP_SHARE, CLAMP_CLOSE, MIN_LINES = 0.5, 0.99, 3
COLLAPSED_BELOW = 2.0


def _learnable(run: RunRecord) -> bool:
    for key in ("loss.learnable_temperature", "loss.learnable"):
        value = run.get(key)
        if value is not None:
            return bool(value)
    return True


def check_temperature(run: RunRecord) -> list[Finding]:
    points = after_warmup(run, "logit_scale")
    if not points:
        return []
    scales = [v for _, v in points]
    out = []
    learnable = _learnable(run)
    maximum = run.get("loss.max_logit_scale")
    if maximum is not None and len(scales) >= MIN_LINES:
        pinned = [s for s in scales if s >= CLAMP_CLOSE * float(maximum)]
        if len(pinned) >= CLAMP_SHARE * len(scales):
            if learnable:
                fix = (
                    "slow the temperature down: train.lr_scales.loss: 0.1; on small data a fixed scale works as well "
                    "(loss.learnable_temperature: false, loss.temperature: 0.07, as ImageBind and NICE)"
                )
                overrides = {"train.lr_scales.loss": 0.1}
                why = "the learned scale ran into the clamp and stays there: it is no longer learned"
            else:
                fix = (
                    "loss.temperature: 0.07 (scale 14.3, CLIP's start) with loss.learnable_temperature: true, "
                    "or a fixed 0.05-0.1"
                )
                overrides = {"loss.temperature": 0.07, "loss.learnable_temperature": True}
                why = (
                    f"the temperature is fixed (loss.learnable_temperature: false) at {run.get('loss.temperature')}, "
                    "i.e. at the clamp, and cannot move"
                )
            out.append(
                Finding(
                    "temperature_at_clamp",
                    "warning",
                    f"logit_scale >= {fmt(CLAMP_CLOSE * float(maximum))} (max {fmt(float(maximum))}) "
                    f"in {len(pinned)} of {len(scales)} logged steps after warm-up "
                    f"(steps {points[0][0]}-{points[-1][0]}); {why}",
                    fix,
                    overrides,
                )
            )
    level = median(tail(scales))
    if level < COLLAPSED_BELOW:
        start = float(run.train[0]["logit_scale"]) if run.train and "logit_scale" in run.train[0] else scales[0]
        if learnable:
            fix = (
                f"lower the lr of the temperature (train.lr_scales.loss: 0.1) or train.lr (now {run.get('train.lr')}); "
                "or fix it: loss.learnable_temperature: false with loss.temperature: 0.07"
            )
            overrides = {"train.lr_scales.loss": 0.1}
        else:
            fix = f"loss.temperature: 0.07 (it is fixed at {run.get('loss.temperature')}, a scale of {fmt(level)})"
            overrides = {"loss.temperature": 0.07}
        out.append(
            Finding(
                "temperature_collapsed",
                "warning",
                f"logit_scale {fmt(level)} over the last third of steps (started at {fmt(start)}), "
                f"below {fmt(COLLAPSED_BELOW)}: "
                "logits of cosines stay within about +-2 and cannot separate the pairs",
                fix,
                overrides,
            )
        )
    return out
