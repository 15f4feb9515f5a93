"""Checks on the loss and retrieval curves: flat_loss, divergence, overfitting.

All read metrics.jsonl only (train lines every `train.log_every` steps, eval lines per evaluation),
so they run on any finished, failed or still running run. Thresholds and why ("fact N" is the
Nth failure signal in docs/reference/doctor-codes.md):

- flat_loss (fact 1, open_clip #17): the CLIP loss of embeddings that carry no pair information is
  ln(B) for B pairs per step (uniform logits). open_clip #17 sat within 1% of ln 128. We flag a
  post-warm-up median loss not below 0.9 ln(B) *and* a final R@1 within 3 binomial standard
  deviations of chance: a run that learns leaves the 10% band within its first epochs (the bundled
  head_only_tiny is 20% below ln 64 after 7 of 105 steps), and the R@1 condition keeps a run that
  retrieves well but has a soft temperature (a flat loss for another reason) out.
- divergence (fact 2/3, open_clip #815): a logged loss more than max(1 nat, 6 robust SDs) above the
  median of the previous 20 lines (warm-up included; the first lines: all lines before them) is a
  spike (robust SD: 1.4826 x the window's median absolute deviation, so a noisy small-batch curve
  needs a larger jump); the median of the last third of the post-warm-up curve more than max(0.5
  nat, 25%, 3 robust SDs of the step-to-step noise) above the lowest level the curve reached (the
  least median over windows of a sixth of the curve) is a rise. Noise in a healthy curve is a few
  tenths of a nat. No ratio to the median: a run that learned little sits near ln(B) ~ 3.5, where a
  2x jump would need a loss of 7, yet the planted lr jump (tests/test_doctor.py, `divergence`)
  spikes from 3.1 to 5.2 and then collapses the embeddings back to ln(B). Compared with the lowest
  level, not with the first third: a loss that fell for a while and then climbed back (the usual
  shape of an lr too high after warm-up) has a first third as high as its last.
- overfitting (clip_anchors 4: LiT, NICE): validation R@1 (mean of both directions) at least three
  evaluations past its best and below the best by more than max(2 binomial SDs, 0.02), while the
  training loss kept falling. Small validation sets wobble by a binomial SD; two SDs and three
  evaluations keep that wobble out.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from peftzoo_tools.doctor.curves import after_warmup, chance_band, median, r_at_1, tail
from peftzoo_tools.doctor.findings import Finding, fmt
from peftzoo_tools.doctor.run_reader import RunRecord

FLAT_BAND = 0.1
# Fewer optimizer steps than this after warm-up cannot tell a loss that does not move from one that
# has not had time to (the bundled head_only_tiny leaves the band after 7 steps, the tiny heads at
# batch 128 on 192 pairs take one step an epoch): flat_loss is then only said, as info.
FLAT_MIN_STEPS = 10
SPIKE_NATS, SPIKE_SIGMAS, SPIKE_WINDOW = 1.0, 6.0, 20
RISE_NATS, RISE_SHARE, RISE_SIGMAS = 0.5, 0.25, 3.0
OVERFIT_EVALS, OVERFIT_MIN_DROP = 3, 0.02


def check_flat_loss(run: RunRecord) -> list[Finding]:
    losses = after_warmup(run, "train/loss")
    evals = run.evals
    last = evals[-1] if evals else None
    chance_r1 = None
    if last is not None and r_at_1(last) is not None:
        chance = float(last.get("val/chance_R@1") or 1.0 / max(int(last.get("val/n") or 1), 1))
        band = chance_band(chance, int(last.get("val/n") or round(1 / chance)))
        best = max(float(last.get(f"val/{d}/R@1", 0.0)) for d in ("eeg_to_video", "video_to_eeg"))
        if best > band:
            return []  # retrieval works: whatever the loss does, the pairs are told apart
        chance_r1 = (best, chance, band, int(last.get("epoch", 0)))
    done, warm = run.steps_done(), run.warmup_steps()
    if done - warm < FLAT_MIN_STEPS:
        where = (
            f"the run has not left warm-up (step {done} of {warm} warm-up steps)"
            if done <= warm
            else f"only {done - warm} optimizer step(s) after warm-up (it ends at step {warm}) were logged"
        )
        return (
            [
                Finding(
                    "flat_loss",
                    "info",
                    f"{where}: too few to tell a loss that does not move from one that has not "
                    f"had time to; R@1 is at chance so far",
                    "train longer before judging (more train.epochs, or more "
                    "data.n for a batch size close to the train split), or resume the run",
                )
            ]
            if chance_r1
            else []
        )
    loss_name = str(run.get("loss.name", "clip"))
    lr = run.get("train.lr")
    fix = (
        "check that each EEG window is paired with its own clip (shuffled pairs look exactly like this); "
        "then overfit a few batches first (open_clip #17): data.n: 128 with train.epochs: 50, and if the loss still "
        f"does not move raise train.lr (now {lr}) tenfold"
    )
    if loss_name in ("clip", "protonce") and losses:
        b = run.batch_pairs()
        ln_b = math.log(b)
        level = median(tail([v for _, v in losses]))
        if level < (1 - FLAT_BAND) * ln_b:
            return []
        if chance_r1 is None:
            # No evaluation to confirm: a flat loss alone is worth saying, not alarming.
            return [
                Finding(
                    "flat_loss",
                    "info",
                    f"training loss {fmt(level)} after warm-up vs ln(B={b}) = {fmt(ln_b)}; "
                    "no evaluation ran to tell whether retrieval is at chance",
                    fix,
                )
            ]
        r1, chance, band, epoch = chance_r1
        return [
            Finding(
                "flat_loss",
                "error",
                f"training loss {fmt(level)} over the last third of steps after warm-up (step {losses[0][0]} on) "
                f"is within {int(FLAT_BAND * 100)}% of ln(B={b}) = {fmt(ln_b)}, the loss of uniform logits; "
                f"R@1 {fmt(r1)} at epoch {epoch} "
                f"is at chance ({fmt(chance)}, chance band up to {fmt(band)})",
                fix,
            )
        ]
    # Losses without a closed-form chance level (siglip): judged on retrieval alone, at every evaluation.
    if (
        chance_r1 is not None
        and len(evals) >= 2
        and all(
            (r_at_1(e) or 0.0) <= chance_band(float(e.get("val/chance_R@1", 0.0)), int(e.get("val/n") or 1))
            for e in evals
        )
    ):
        r1, chance, band, epoch = chance_r1
        return [
            Finding(
                "flat_loss",
                "error",
                f"R@1 stayed at chance in all {len(evals)} evaluations (last {fmt(r1)}, chance {fmt(chance)})",
                fix,
            )
        ]
    return []


def check_divergence(run: RunRecord) -> list[Finding]:
    points = after_warmup(run, "train/loss")
    if len(points) < 6:
        return []
    # Spikes are judged from the second line on, warm-up included: an lr too high from the start
    # throws the loss up while warm-up ramps it (lr 0.3 on the tiny heads: 3.75, then 5.81). The rise
    # is judged after warm-up only, where the loss is meant to have stopped falling fast.
    every = [(int(line["step"]), float(line["train/loss"])) for line in run.train]  # lines with a finite loss
    lr = run.get("train.lr")
    staged = [
        (i, s["lr"])
        for i, s in enumerate(run.get("train.stages") or [])
        if isinstance(s, dict) and s.get("lr") is not None
    ]
    stage_part = "".join(f" and train.stages[{i}].lr (now {v}; try {_tenth(v)})" for i, v in staged)
    fix = (
        f"lower train.lr (now {lr}; try train.lr: {_tenth(lr)}){stage_part}, set train.grad_clip_norm: 1.0, "
        "or lengthen the warm-up (train.warmup_fraction: 0.2)"
    )
    # Vectorized (numpy windows): the live doctor runs this at every epoch line over the whole history.
    spikes = _spikes(every)
    x = np.asarray([v for _, v in points], dtype=np.float64)
    third = max(2, len(x) // 3)
    width = max(2, len(x) // 6)
    stride = max(1, width // 4)
    lowest = float(np.median(np.lib.stride_tricks.sliding_window_view(x, width)[::stride], axis=1).min())
    last = float(np.median(x[-third:]))
    # The least of many window medians sits below the curve by its noise: the margin grows with it
    # (robust SD of step-to-step changes, which a trend hardly moves).
    noise = 1.4826 * float(np.median(np.abs(np.diff(x)))) / 2**0.5
    rising = last - lowest > max(RISE_NATS, RISE_SHARE * lowest, RISE_SIGMAS * noise)
    if not spikes and not rising:
        return []
    parts = []
    if spikes:
        step, value, ref, width_before = max(spikes, key=lambda s: s[1] - s[2])
        parts.append(
            f"{len(spikes)} loss spike(s) more than {SPIKE_NATS:g} nat above the running median, the largest "
            f"{fmt(value)} at step {step} (median of the {width_before} line(s) before it {fmt(ref)}; "
            f"first at step {spikes[0][0]})"
        )
    if rising:
        parts.append(
            f"the loss rose after warm-up: it reached {fmt(lowest)} (median of {width} lines) and is {fmt(last)} "
            "over the last third of steps"
        )
    return [Finding("divergence", "warning", "; ".join(parts), fix, _lower_lr(run))]


def _spikes(points: list[tuple[int, float]]) -> list[tuple[int, float, float, int]]:
    """(step, loss, median before it, lines in that median) of each logged loss more than max(1 nat, 6 robust SDs) above
    the median of the up to SPIKE_WINDOW lines before it (the first lines: all lines before them, so
    the 1-nat floor rules where the window is too short to measure the noise)."""
    values = [v for _, v in points]
    x = np.asarray(values, dtype=np.float64)
    spikes = []
    for i in range(1, min(len(x), SPIKE_WINDOW)):
        window = x[:i]
        ref = float(np.median(window))
        if x[i] - ref > max(SPIKE_NATS, SPIKE_SIGMAS * 1.4826 * float(np.median(np.abs(window - ref)))):
            spikes.append((points[i][0], values[i], ref, i))
    if len(x) > SPIKE_WINDOW:
        windows = np.lib.stride_tricks.sliding_window_view(
            x[:-1], SPIKE_WINDOW
        )  # window j precedes x[j + SPIKE_WINDOW]
        refs = np.median(windows, axis=1)
        sigmas = 1.4826 * np.median(np.abs(windows - refs[:, None]), axis=1)
        for j in np.flatnonzero(x[SPIKE_WINDOW:] - refs > np.maximum(SPIKE_NATS, SPIKE_SIGMAS * sigmas)):
            i = int(j) + SPIKE_WINDOW
            spikes.append((points[i][0], values[i], float(refs[j]), SPIKE_WINDOW))
    return spikes


def check_overfitting(run: RunRecord) -> list[Finding]:
    evals = [(int(e.get("epoch", 0)), r_at_1(e), int(e.get("val/n") or 0)) for e in run.evals]
    evals = [e for e in evals if e[1] is not None]
    if len(evals) < OVERFIT_EVALS + 1:
        return []
    b = max(range(len(evals)), key=lambda i: evals[i][1])
    best_epoch, best, n = evals[b]
    after = evals[b + 1 :]
    if len(after) < OVERFIT_EVALS:
        return []
    last_epoch, last, _ = after[-1]
    margin = max(2 * math.sqrt(best * (1 - best) / max(n, 1)), OVERFIT_MIN_DROP)
    if best - last <= margin:
        return []
    train = [(int(line.get("epoch", 0)), float(line["train/loss"])) for line in run.train]
    at_best = [v for e, v in train if e <= best_epoch]
    later = [v for e, v in train if e > best_epoch]
    if at_best and later:
        before_level, after_level = median(tail(at_best)), median(tail(later))
        if after_level >= before_level:
            return []  # the training loss did not fall either: not overfitting (divergence looks at that)
        loss_part = f", while the training loss fell from {fmt(before_level)} to {fmt(after_level)}"
    else:
        loss_part = " (the training loss was not logged often enough to compare; raise train.log_every's frequency)"
    selected = run.get("train.select")
    evidence = (
        f"validation R@1 (mean of both directions) peaked at {fmt(best)} at epoch {best_epoch} and fell over the "
        f"{len(after)} evaluations after it to {fmt(last)} at epoch {last_epoch}{loss_part}"
    )
    if selected:
        return [
            Finding(
                "overfitting",
                "info",
                evidence + "; train.select kept the best epoch's weights (best.safetensors)",
                "stop earlier: train.early_stopping: {patience: 3, min_delta: 0.0}, "
                "or regularize (eeg.head.dropout: 0.5)",
            )
        ]
    return [
        Finding(
            "overfitting",
            "warning",
            evidence,
            "keep the best epoch and stop when validation stops improving: "
            "train.select: {metric: val/eeg_to_video/R@1, mode: max} "
            "and train.early_stopping: {patience: 3, min_delta: 0.0}; "
            "more data or dropout in the heads (eeg.head.dropout: 0.5) also help",
            {
                "train.select": {"metric": "val/eeg_to_video/R@1", "mode": "max"},
                "train.early_stopping": {"patience": 3, "min_delta": 0.0},
            },
        )
    ]


def _lower_lr(run: RunRecord) -> dict:
    """train.lr at a tenth, and each training stage's own lr too (a stage's lr is what a spike in it ran at)."""
    out = {}
    with contextlib.suppress(ValueError):
        out["train.lr"] = float(_tenth(run.get("train.lr")))
    stages = run.get("train.stages")
    if isinstance(stages, list) and any(isinstance(s, dict) and s.get("lr") is not None for s in stages):
        out["train.stages"] = [
            {**s, "lr": float(_tenth(s["lr"]))} if isinstance(s, dict) and s.get("lr") is not None else s
            for s in stages
        ]
    return out


def _tenth(lr) -> str:
    try:
        return f"{float(lr) / 10:.3g}"
    except (TypeError, ValueError):
        return "a tenth of it"
