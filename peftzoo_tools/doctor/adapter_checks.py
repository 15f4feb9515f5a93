"""frozen_adapter: a trainable encoder tensor that never moved, or an encoder whose features are
still the base encoder's (fact 9 of docs/reference/doctor-codes.md).

LoRA's B starts at zero, so an adapter that receives no gradient (lr 0 on adapters, or an encoder
that calls F.linear on the weight and bypasses the wrapped module) stays the identity and the
encoder's features stay the base model's. The doctor compares every encoder tensor in the weights
file with its value at the start of the run (rebuilt with the run's seed): exactly equal after
training is no update at all. A tensor that did move compares unequal, so a rebuild that does not
reproduce the start exactly can only hide a finding, never invent one. Severity: error when all
encoder tensors of a side are unchanged, info when only some are (AdaLoRA, for one, zeroes pruned
ranks on purpose).

Tensors that moved do not prove the adapter acts: one that is trained but left out of the inference
path (added in training mode only, a hook on a module the forward never calls in eval) moves and
changes nothing. So the doctor also embeds a few dozen validation pairs with the trained encoder
and with the base encoder (no strategy, the run's starting weights; model_probe.base_encoder), both
in eval mode, and reports a side whose features are equal within FEATURE_RTOL although it trained
encoder tensors. Why 1e-5: the same computation along another path (merged LoRA weights, a wrapper
module) differs by float32 rounding, about 1e-7 to 1e-6 relative; a LoRA trained for 24 steps of a
tiny run moves them by 0.2 (tests/test_doctor.py prints it).
"""

from __future__ import annotations

import torch

from peftzoo_tools.doctor.findings import Finding, fmt

FEATURE_RTOL = 1e-5


def unchanged_sides(initial: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> set[str]:
    """Sides (eeg, video) none of whose saved encoder tensors differ from their initial values."""
    compared = [n for n in saved if n in initial and tuple(saved[n].shape) == tuple(initial[n].shape)]
    still = {n for n in compared if torch.equal(saved[n].float(), initial[n].float())}
    sides = {n.split(".", 1)[0] for n in compared}
    return {side for side in sides if all(n in still for n in compared if n.startswith(f"{side}."))}


def check_frozen(
    initial: dict[str, torch.Tensor], saved: dict[str, torch.Tensor], steps: int, recipe: dict
) -> list[Finding]:
    compared = [n for n in saved if n in initial and tuple(saved[n].shape) == tuple(initial[n].shape)]
    if not compared or steps <= 0:
        return []
    still = [n for n in compared if torch.equal(saved[n].float(), initial[n].float())]
    if not still:
        return []
    zero = [n for n in still if not bool(saved[n].float().abs().sum())]
    sides = sorted({n.split(".", 1)[0] for n in still})
    # Error when every encoder tensor of a side is unchanged: that side's adaptation did nothing.
    # Some unchanged among moving ones can be by design (AdaLoRA prunes ranks to zero), so: info.
    whole = unchanged_sides(initial, saved) & set(sides)
    scales = (recipe.get("train") or {}).get("lr_scales") or {}
    zero_scale = [k for k in ("adapter", "encoder") if scales.get(k) == 0]
    if zero_scale:
        fix = "; ".join(f"train.lr_scales.{k}: 1.0 (it is 0: those tensors get no update)" for k in zero_scale)
    else:
        fix = (
            "the adapter receives no gradient: check that the encoder calls the wrapped layers "
            "(an encoder that calls F.linear on a weight bypasses LoRA; "
            "target other modules with the strategy's targets), "
            "and that train.lr and train.lr_scales are above 0"
        )
    shown = ", ".join(still[:4]) + (f" and {len(still) - 4} more" if len(still) > 4 else "")
    zeros = f"; {len(zero)} of them are still all zero (LoRA B: the adapter is the identity)" if zero else ""
    return [
        Finding(
            "frozen_adapter",
            "error" if whole else "info",
            f"{len(still)} of {len(compared)} trainable {'/'.join(sides)} encoder tensors "
            "are exactly as initialized after "
            f"{steps} steps ({shown}){zeros}: the encoder's features are still the base encoder's",
            fix,
            {f"train.lr_scales.{k}": 1.0 for k in zero_scale},
        )
    ]


def check_features(side: str, gap: float, n: int, moved: int, steps: int) -> list[Finding]:
    """frozen_adapter when `side`'s trained encoder computes the base encoder's features (relative
    distance `gap` over `n` validation inputs) although `moved` of its trainable tensors changed."""
    if steps <= 0 or not gap <= FEATURE_RTOL:
        return []
    trained = f"{moved} of its trainable tensors moved" if moved else "it trains encoder tensors"
    return [
        Finding(
            "frozen_adapter",
            "error",
            f"the trained {side} encoder's features equal the base encoder's on {n} validation inputs "
            f"(relative distance {fmt(gap)}, tolerance {fmt(FEATURE_RTOL)}) after {steps} steps although {trained}: "
            "the adapter is not on the inference path, so training changed nothing the model uses",
            f"the {side} strategy's adapter must act in eval mode too: check that its forward (or hook) runs outside "
            "training mode and that the encoder calls the wrapped modules "
            "(an encoder calling F.linear on a weight bypasses them); "
            "run the plugin conformance kit on it (python -m peftzoo_conformance), "
            f"or use a built-in {side}.strategy: lora",
        )
    ]
