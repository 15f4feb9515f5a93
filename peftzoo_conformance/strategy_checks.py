"""Strategy checks, run on a small encoder: report, training effect, state, merge, export, wrapping.

`AppliedStrategy` builds the encoder and the strategy once per check (fresh, seeded), so one check
cannot hide another's effect. The strategy is applied directly (not through
`adapters.strategies.base.apply_strategies`, which would refuse a wrong report before the kit
could name what is wrong).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

import registry
from adapters.strategies.base import StrategyError
from adapters.strategies.base import offers as base_offers
from peftzoo_conformance import probes
from peftzoo_conformance.errors import ConformanceError, named_check, require

KIND = "strategies"
MERGE_TOLERANCE = 1e-5


@dataclasses.dataclass
class AppliedStrategy:
    name: str
    strategy: Any
    encoder: nn.Module
    report: Any
    encoder_spec: dict
    pretrained: frozenset[str]
    modules_before: dict[str, nn.Module]


def strategy_spec(name: str) -> dict:
    component = registry.get(KIND, name)
    return {"name": name, **probes.small_options(KIND, name, component)}


def encoder_specs(name: str) -> list[dict]:
    """The strategy's own `conformance_encoders`, else the installed reference encoders (probes.py)."""
    component = registry.get(KIND, name)
    specs = list(getattr(component, "conformance_encoders", None) or probes.reference_encoders())
    if not specs:
        raise ConformanceError(
            "strategy_applies",
            KIND,
            name,
            "no encoder to check it on: no installed encoder declares `conformance_reference = True`; "
            "set `conformance_encoders` on the strategy class to encoder specs it accepts",
        )
    return specs


def build_encoder(spec: dict, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return registry.build("encoders", spec).eval()


def apply(name: str, encoder_spec: dict | None = None, seed: int = 0, strategy_seed: int = 1) -> AppliedStrategy:
    """Build a small encoder, freeze it, apply strategy `name`; the first encoder it accepts is used.

    `seed` makes the encoder, `strategy_seed` is the random state `apply` runs in (its initializations)."""
    refusals = []
    for spec in [encoder_spec] if encoder_spec else encoder_specs(name):
        encoder = build_encoder(spec, seed)
        encoder.requires_grad_(False)
        pretrained = frozenset(n for n, _ in encoder.named_parameters())
        modules_before = dict(encoder.named_modules())
        strategy = registry.build(KIND, strategy_spec(name))
        strategy.total_steps = 10
        torch.manual_seed(strategy_seed)
        try:
            report = strategy.apply(encoder)
        except StrategyError as exc:
            refusals.append(f"{spec['name']}: {exc}")
            continue
        return AppliedStrategy(name, strategy, encoder.eval(), report, spec, pretrained, modules_before)
    raise ConformanceError(
        "strategy_applies",
        KIND,
        name,
        f"refused every encoder the kit tried ({'; '.join(refusals)}); set `conformance_encoders` on the "
        f"strategy class to encoder specs it accepts",
    )


def offers(strategy: Any, hook: str) -> bool:
    """Whether the strategy implements an optional hook itself (a default on the base class is not an
    offer): the core's own test (`export --native`, bundles) and the kit's are one function."""
    return base_offers(strategy, hook)


def trainable(encoder: nn.Module) -> list[str]:
    return sorted(n for n, p in encoder.named_parameters() if p.requires_grad)


@named_check("report_matches_trainable", KIND)
def check_report_matches_trainable(name: str) -> None:
    a = apply(name)
    reported, actual = sorted(set(a.report.trainable)), trainable(a.encoder)
    extra, missing = sorted(set(actual) - set(reported)), sorted(set(reported) - set(actual))
    require(
        not extra and not missing,
        "report_matches_trainable",
        KIND,
        name,
        f"the report differs from the parameters that require grad: trains but does not report "
        f"{extra[:5]}, reports but frozen {missing[:5]}",
    )
    params = dict(a.encoder.named_parameters())
    count = sum(params[n].numel() for n in reported)
    require(
        a.report.num_trainable == count,
        "report_matches_trainable",
        KIND,
        name,
        f"report.num_trainable is {a.report.num_trainable} but the reported tensors hold {count} elements",
    )
    require(
        a.report.trains_encoder == bool(reported),
        "report_matches_trainable",
        KIND,
        name,
        f"report.trains_encoder is {a.report.trains_encoder} with {len(reported)} reported tensors",
    )


def one_step(a: AppliedStrategy, check: str, lr: float = 1e-2) -> torch.Tensor | None:
    """One training step as the trainer takes it: loss (+ regularization), Adam step, after_optimizer_step."""
    params = [p for p in a.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    call = probes.example_call(a.encoder)
    a.encoder.train()
    out = probes.run(a.encoder, call)
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    loss = (out - target).pow(2).mean()
    if not out.requires_grad:  # nothing can train: step_changes_output names that; the other checks have nothing to see
        a.encoder.eval()
        require(
            check != "step_changes_output",
            check,
            KIND,
            a.name,
            "the encoder's output does not depend on any trainable parameter: the adapter is never called in forward",
        )
        return None
    reg = a.strategy.regularization() if callable(getattr(a.strategy, "regularization", None)) else None
    if reg is not None:
        loss = loss + reg
    loss.backward()
    optimizer.step()
    hook = getattr(a.strategy, "after_optimizer_step", None)
    if callable(hook):
        hook(1)
    optimizer.zero_grad(set_to_none=True)
    a.encoder.eval()
    return loss


@named_check("step_changes_output", KIND)
def check_step_changes_output(name: str) -> None:
    a = apply(name)
    if not a.report.trains_encoder:
        return  # head_only-like: trains nothing in the encoder, and says so (report check)
    call = probes.example_call(a.encoder)
    with torch.no_grad():
        before = probes.run(a.encoder, call).clone()
    one_step(a, "step_changes_output")
    with torch.no_grad():
        after = probes.run(a.encoder, call)
    require(
        not torch.allclose(before, after, atol=1e-6, rtol=0),
        "step_changes_output",
        KIND,
        name,
        "one optimizer step (lr 1e-2) left the encoder's output unchanged: the trainable parameters are not "
        "used in the forward pass (adapter never called?) or get no gradient",
    )


@named_check("step_changes_only_reported", KIND)
def check_step_changes_only_reported(name: str) -> None:
    a = apply(name)
    if not a.report.trains_encoder:
        return
    before = {n: p.detach().clone() for n, p in a.encoder.named_parameters()}
    one_step(a, "step_changes_only_reported")
    changed = {n for n, p in a.encoder.named_parameters() if n in before and not torch.equal(before[n], p.detach())}
    outside = sorted(changed - set(a.report.trainable))
    require(
        not outside,
        "step_changes_only_reported",
        KIND,
        name,
        f"one optimizer step changed parameters outside the report: {outside[:5]}",
    )


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        return isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_equal(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_equal(i, j) for i, j in zip(x, y))
    return x == y


@named_check("state_round_trips", KIND)
def check_state_round_trips(name: str) -> bool:
    """After a step, the strategy's state saved in a checkpoint and loaded into a fresh strategy
    is the same state and gives the same outputs. False when the strategy has no state hook."""
    a = apply(name)
    if not callable(getattr(a.strategy, "state_dict", None)):
        return False
    if a.report.trains_encoder:
        one_step(a, "state_round_trips")
    buffer = io.BytesIO()
    torch.save(
        {
            "strategy": a.strategy.state_dict(),
            "weights": {n: a.encoder.get_parameter(n).detach() for n in a.report.trainable},
        },
        buffer,
    )
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=False)
    # the same base encoder, another random state: what the strategy drew at apply time must come
    # back from the checkpoint (weights or state), not from a lucky equal seed
    fresh = apply(name, a.encoder_spec, seed=0, strategy_seed=2)
    with torch.no_grad():
        for n, value in checkpoint["weights"].items():
            fresh.encoder.get_parameter(n).copy_(value)
    fresh.strategy.load_state_dict(checkpoint["strategy"])
    require(
        _equal(fresh.strategy.state_dict(), a.strategy.state_dict()),
        "state_round_trips",
        KIND,
        name,
        "state_dict() of a fresh strategy after load_state_dict(saved) differs from the saved one: "
        "load_state_dict loses state, so a resumed run would not continue where it stopped",
    )
    call = probes.example_call(a.encoder)
    with torch.no_grad():
        same = torch.equal(probes.run(fresh.encoder, call), probes.run(a.encoder, call))
    require(
        same,
        "state_round_trips",
        KIND,
        name,
        "after loading the saved weights (the reported parameters) and strategy state, a fresh encoder's outputs "
        "differ from the saved one's: the state does not restore what apply() drew, or a trained parameter is "
        "missing from the report (only reported parameters are saved)",
    )
    return True


def _perturb(a: AppliedStrategy, scale: float = 0.05) -> None:
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for n in a.report.trainable:
            p = a.encoder.get_parameter(n)
            p.add_(torch.randn(p.shape, generator=g) * scale)


def _perturbed_with_outputs(name: str, hook: str):
    """(applied strategy with its trainable tensors moved off their init, an example call, the
    encoder's outputs on it) when the strategy offers `hook`; None when it does not."""
    a = apply(name)
    if not offers(a.strategy, hook):
        return None
    _perturb(a)
    call = probes.example_call(a.encoder)
    with torch.no_grad():
        return a, call, probes.run(a.encoder, call).clone()


@named_check("merge_preserves_outputs", KIND)
def check_merge_preserves_outputs(name: str) -> bool:
    """`merge(encoder)` folds the adapters into the base weights: same outputs within 1e-5, and the
    parameters the strategy added are gone. False when the strategy offers no merge."""
    offered = _perturbed_with_outputs(name, "merge")
    if offered is None:
        return False
    a, call, adapted = offered
    with torch.no_grad():
        a.strategy.merge(a.encoder)
        merged = probes.run(a.encoder, call)
    diff = float((merged - adapted).abs().max())
    require(
        diff <= MERGE_TOLERANCE,
        "merge_preserves_outputs",
        KIND,
        name,
        f"merged outputs differ from the unmerged ones by {diff:.3g} (> {MERGE_TOLERANCE:g})",
    )
    added = set(a.report.trainable) - a.pretrained
    left = sorted(added & {n for n, _ in a.encoder.named_parameters()})
    require(
        not left,
        "merge_preserves_outputs",
        KIND,
        name,
        f"after merge the strategy's own parameters are still in the encoder: {left[:5]}",
    )
    return True


@named_check("export_writes_files", KIND)
def check_export_writes_files(name: str, directory: Path) -> bool:
    """`export(encoder, directory)` writes its files and leaves the encoder as it was. False when not offered."""
    offered = _perturbed_with_outputs(name, "export")
    if offered is None:
        return False
    a, call, before = offered
    written = a.strategy.export(a.encoder, directory)
    paths = [Path(p) for p in (written or [])]
    require(
        bool(paths) and all(p.is_file() and p.stat().st_size > 0 for p in paths),
        "export_writes_files",
        KIND,
        name,
        f"export() must return the non-empty files it wrote; got {[str(p) for p in paths]}",
    )
    require(
        all(directory in p.resolve().parents or p.resolve().parent == directory.resolve() for p in paths),
        "export_writes_files",
        KIND,
        name,
        "export() wrote outside the directory it was given",
    )
    with torch.no_grad():
        require(
            torch.equal(probes.run(a.encoder, call), before),
            "export_writes_files",
            KIND,
            name,
            "export() changed the encoder's outputs; it must leave the encoder as it was",
        )
    return True


def replaced_modules(a: AppliedStrategy) -> list[str]:
    """Names of the encoder's modules that `apply` replaced by another object (wrapped or swapped)."""
    after = dict(a.encoder.named_modules())
    return sorted(n for n, m in a.modules_before.items() if n and after.get(n) is not m)


@named_check("wrapped_modules_declared", KIND)
def check_wrapped_modules_declared(name: str) -> bool:
    """`wrapped_modules(encoder)` names every module `apply` replaced, so the core can detect two
    strategies adapting one layer. False when not offered (the core then compares module trees)."""
    a = apply(name)
    if not offers(a.strategy, "wrapped_modules"):
        return False
    declare = a.strategy.wrapped_modules
    declared = set(declare(a.encoder))
    undeclared = [
        n for n in replaced_modules(a) if n not in declared and not any(n.startswith(d + ".") for d in declared)
    ]
    require(
        not undeclared,
        "wrapped_modules_declared",
        KIND,
        name,
        f"apply() replaced modules that wrapped_modules() does not name: {undeclared[:5]}",
    )
    return True


@named_check("trainable_tensors_get_gradients", KIND)
def check_trainable_tensors_get_gradients(name: str) -> None:
    """Every tensor the report names receives a gradient from a training loss (plus the strategy's
    regularization): a tensor detached in forward, or never used, would be optimized and saved while
    never learning."""
    a = apply(name)
    if not a.report.trains_encoder:
        return
    call = probes.example_call(a.encoder)
    a.encoder.train()
    out = probes.run(a.encoder, call)
    loss = (out - torch.randn(out.shape, generator=torch.Generator().manual_seed(7))).pow(2).mean()
    reg = a.strategy.regularization() if callable(getattr(a.strategy, "regularization", None)) else None
    if reg is not None:
        loss = loss + reg
    if loss.requires_grad:
        loss.backward()
    dead = [n for n in a.report.trainable if a.encoder.get_parameter(n).grad is None]
    require(
        not dead,
        "trainable_tensors_get_gradients",
        KIND,
        name,
        f"{len(dead)} of {len(a.report.trainable)} reported trainable tensors get no gradient from the output "
        f"(detached in forward, or unused): {dead[:5]}",
    )
