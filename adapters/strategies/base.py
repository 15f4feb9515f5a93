"""What a fine-tuning strategy is: it makes parts of a frozen encoder trainable and says which.

The composer freezes the whole encoder first, then applies each strategy of the recipe in order;
each one unfreezes (or adds) what it trains and returns a `StrategyReport`. The composer then checks
that the encoder's trainable set is exactly what the reports claim, so a strategy cannot silently
train more or less than it says.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import weakref
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from adapters import peft_names
from registry.component import ComponentConfig
from registry.errors import UserError


class StrategyConfig(ComponentConfig):
    """Options every strategy has (none yet)."""


class StrategyError(UserError):
    """A strategy, or a composition of them, that cannot work on this encoder."""


@dataclasses.dataclass
class StrategyReport:
    """What a strategy did to an encoder."""

    strategy: str
    trainable: list[str]
    """Names of the encoder parameters it made trainable (or added)."""
    num_trainable: int
    trains_encoder: bool
    lr_scale: dict[str, float] = dataclasses.field(default_factory=dict)
    """Learning-rate multiplier per parameter name, relative to the head's lr (1.0 when absent)."""
    num_adapter: int | None = None
    """Of num_trainable, the parameters strategies added (adapters: LoRA matrices, prefixes, prompts);
    the rest are pretrained encoder weights they unfroze. None where the encoder's own set is unknown."""

    def summary(self) -> str:
        if not self.trains_encoder:
            return f"{self.strategy}: encoder frozen, trains nothing in it"
        tensors = f"in {len(self.trainable)} tensors"
        if self.num_adapter is None:
            return f"{self.strategy}: {self.num_trainable:,} trainable parameters {tensors}"
        parts = [
            f"{n:,} {what}"
            for n, what in (
                (self.num_adapter, "adapter parameters"),
                (self.num_trainable - self.num_adapter, "unfrozen encoder parameters"),
            )
            if n
        ]
        return f"{self.strategy}: {' + '.join(parts)} trainable {tensors}"


class Strategy(abc.ABC):
    """Base of strategies. Subclasses set `Config`, `description` and implement `apply`."""

    Config: ClassVar[type[StrategyConfig]] = StrategyConfig
    description: ClassVar[str] = ""
    export_format: ClassVar[str | None] = None
    """Name of the outside format the optional `export(encoder, directory)` hook writes ("peft": a
    Hugging Face PEFT adapter directory); recorded in export manifests, and `export --peft` takes the
    strategies whose format is "peft". None: the strategy's own format, named after it."""
    conformance_options: ClassVar[dict | None] = None
    """Options for a small, fast build in the conformance kit (docs/plugins.md); None: the defaults."""

    # Optional hooks, offered by defining them on the subclass (`offers(strategy, hook)`), with no
    # default here: `merge(encoder) -> int` folds the adapters into the base weights in place;
    # `export(encoder, directory) -> list[Path]` writes the adapters in an outside format.

    def __init__(self, config: StrategyConfig, name: str | None = None):
        self.cfg = config
        self.name = name or getattr(config, "name", None) or type(self).__name__
        self.total_steps: int | None = None
        """Optimizer steps the training will take; set by the composer before `apply` (AdaLoRA needs it)."""

    @classmethod
    def from_config(cls, config: StrategyConfig, *, name: str | None = None, **context) -> Strategy:
        return cls(config, name=name)

    @abc.abstractmethod
    def apply(self, encoder: nn.Module) -> StrategyReport:
        """Make part of the (frozen) encoder trainable, or add trainable parts; report exactly which."""

    def check_composition(self, others: Sequence[Strategy]) -> None:  # noqa: B027 - optional hook, default accepts all
        """Raise StrategyError when this strategy cannot be combined with `others` (the rest of the list)."""

    def regularization(self) -> torch.Tensor | None:
        """A term the trainer adds to the loss each step (AdaLoRA's orthogonality penalty), or None."""
        return None

    def after_optimizer_step(self, step: int) -> None:  # noqa: B027 - optional hook, default does nothing
        """Called after each optimizer step, before gradients are cleared (AdaLoRA's budget update)."""

    def state_dict(self) -> dict:
        """State the strategy keeps outside the encoder's parameters (AdaLoRA's importance statistics
        and step count), for checkpoints: tensors and plain Python values only, so that a checkpoint
        loads with `torch.load(weights_only=True)`. Saved per side and strategy key; default none."""
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027 - optional hook, default no-op
        """Take back what `state_dict()` returned, on resume (tensors arrive on the CPU); default no-op."""

    def wrapped_modules(self, encoder: nn.Module) -> list[str]:
        """Names of the encoder's modules this strategy wrapped or replaced, for clash detection.

        Default: the modules `apply` replaced, as `apply_strategies` saw by comparing the module
        tree before and after it (a strategy that wraps layers lazily, later, overrides this)."""
        return list(getattr(self, "replaced_modules", []))


def offers(strategy: Strategy, hook: str) -> bool:
    """Whether `strategy` implements the optional hook `hook` itself: a default on `Strategy` (state
    `{}`, the compared module tree) is not an offer, and `merge`/`export` have none."""
    own = getattr(type(strategy), hook, None)
    return callable(own) and own is not getattr(Strategy, hook, None)


def trainable_names(module: nn.Module) -> list[str]:
    return [n for n, p in module.named_parameters() if p.requires_grad]


def unfreeze(encoder: nn.Module, params) -> list[str]:
    """Make `params` (parameters of `encoder`) trainable; returns their names in the encoder."""
    wanted = {id(p) for p in params}
    names = []
    for name, p in encoder.named_parameters():
        if id(p) in wanted:
            p.requires_grad_(True)
            names.append(name)
    return names


def report_for(strategy: str, encoder: nn.Module, names: Sequence[str], **extra) -> StrategyReport:
    """A report for the parameters `names` of `encoder`, counting their elements."""
    params = dict(encoder.named_parameters())
    names = list(names)
    return StrategyReport(
        strategy=strategy,
        trainable=names,
        num_trainable=sum(params[n].numel() for n in names),
        trains_encoder=bool(names),
        **extra,
    )


def _follow_peft_wrapping(encoder: nn.Module, reports: list[StrategyReport]) -> None:
    """Rename what earlier strategies reported after a later peft tuner wrapped their layers.

    peft moves a targeted layer's parameters under `base_layer` (keeping requires_grad), so e.g.
    last_k's `blocks.11.mlp.fc2.weight` becomes `blocks.11.mlp.fc2.base_layer.weight` once ia3
    wraps fc2. Reports are updated in place: later stages re-enable parameters by these names.
    """
    params = dict(encoder.named_parameters())
    for report in reports:
        report.trainable = [peft_names.current(n, params) for n in report.trainable]
        report.lr_scale = {peft_names.current(n, params): scale for n, scale in report.lr_scale.items()}


def _refuse_idle(strategy: Strategy, report: StrategyReport) -> None:
    """A strategy other than head_only that trains nothing is a mistake in its options (layers: [], k: 0)."""
    if report.trainable or getattr(strategy, "trains_nothing_by_design", False):
        return
    raise StrategyError(
        f"{strategy.name} trains nothing in this encoder with these options "
        f"({strategy.cfg.model_dump(mode='json', exclude={'name'})}); change its options, or use head_only to train "
        f"the head alone"
    )


def _check_earlier_intact(
    encoder: nn.Module, strategy: Strategy, earlier: list[tuple[Strategy, StrategyReport]]
) -> None:
    """`strategy` (just applied) left what earlier strategies train in place and trainable.

    A strategy that wraps or replaces a layer an earlier one adapted renames or drops that one's
    parameters; the same pair in the other order is refused by the later strategy's own checks
    (the layer is no longer a plain Linear). Either order is then one StrategyError, never a
    training run that silently loses an adapter.
    """
    params = dict(encoder.named_parameters())
    for other, report in earlier:
        gone = [n for n in report.trainable if n not in params]
        frozen = [n for n in report.trainable if n in params and not params[n].requires_grad]
        if gone or frozen:
            what = (
                f"replaced layers that {other.name} adapted ({gone[0]} no longer exists)"
                if gone
                else f"froze parameters that {other.name} trains ({frozen[0]})"
            )
            raise StrategyError(
                f"{strategy.name} {what}; one layer carries one adapter: give {other.name} and {strategy.name} "
                f"different targets or layers, or use one of them"
            )


_WRAPPED: weakref.WeakKeyDictionary[nn.Module, dict[str, str]] = weakref.WeakKeyDictionary()


def wrapped_by(encoder: nn.Module) -> dict[str, str]:
    """Module name -> name of the strategy that wrapped it, over every strategy applied to `encoder`
    so far (earlier training stages included), as each one's `wrapped_modules()` declared."""
    return dict(_WRAPPED.get(encoder, {}))


def wrapper_of(name: str, wrapped: dict[str, str]) -> str | None:
    """The strategy that wrapped module `name` or a module it lies inside (an adapter's own base layer)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        owner = wrapped.get(".".join(parts[:i]))
        if owner is not None:
            return owner
    return None


def clash_message(who: str, module: str, other: str) -> str:
    return (
        f"{who}: {module} already carries an adapter from an earlier strategy ({other} wraps {module}); "
        f"one layer carries one adapter: give {other} and {who} different targets or layers, or use one of them "
        f"(in a later training stage, list {other} again with the same options to keep training it)"
    )


def _replaced_modules(before: dict[str, int], encoder: nn.Module) -> list[str]:
    """Modules present in `before` (name -> id) that are now another object or gone, outermost only."""
    now = {n: id(m) for n, m in encoder.named_modules()}
    changed = sorted(n for n, i in before.items() if n and now.get(n) != i)
    return [n for n in changed if not any(n.startswith(c + ".") for c in changed if c != n)]


def _record_wrapped(encoder: nn.Module, strategy: Strategy) -> None:
    """Add what `strategy` (just applied) wrapped to the encoder's record, refusing a layer wrapped twice."""
    wrapped = _WRAPPED.setdefault(encoder, {})
    mine = list(strategy.wrapped_modules(encoder))
    for module in mine:
        other = wrapper_of(module, wrapped)
        if other is not None and other != strategy.name:
            raise StrategyError(clash_message(strategy.name, module, other))
    for module in mine:
        wrapped[module] = strategy.name


def strategy_key(strategy: Strategy) -> str:
    """Identity of a strategy for stage switches: its name and options."""
    return json.dumps({"name": strategy.name, **strategy.cfg.model_dump(mode="json", exclude={"name"})}, sort_keys=True)


def apply_strategies(
    encoder: nn.Module,
    strategies: Sequence[Strategy],
    applied: dict[str, tuple[Strategy, StrategyReport]] | None = None,
) -> StrategyReport:
    """Freeze `encoder`, apply each strategy in order, and check the result is what they report.

    `applied` carries what earlier training stages applied to this encoder: a strategy listed again
    with the same options is not applied twice, its parameters are made trainable again; adapters of
    earlier stages that are not listed stay in the encoder, frozen. It is updated in place.
    """
    if not strategies:
        raise StrategyError("no strategy given; use `head_only` to train the head alone")
    for i, s in enumerate(strategies):
        s.check_composition([o for j, o in enumerate(strategies) if j != i])
    applied = {} if applied is None else applied
    encoder.requires_grad_(False)
    reports: list[StrategyReport] = []
    fresh: list[tuple[Strategy, StrategyReport]] = []
    for s in strategies:
        key = strategy_key(s)
        if key in applied:
            report = applied[key][1]
            for name in report.trainable:
                encoder.get_parameter(name).requires_grad_(True)
        else:
            modules_before = {n: id(m) for n, m in encoder.named_modules()}
            report = s.apply(encoder)
            s.replaced_modules = _replaced_modules(modules_before, encoder)
            fresh.append((s, report))
            _follow_peft_wrapping(encoder, [*reports, report])
            _check_earlier_intact(encoder, s, list(zip(strategies, reports)))
            _record_wrapped(encoder, s)
            applied[key] = (s, report)
        reports.append(report)
    _follow_peft_wrapping(encoder, reports)
    claimed = sorted({n for r in reports for n in r.trainable})
    actual = sorted(trainable_names(encoder))
    if claimed != actual:
        extra, missing = sorted(set(actual) - set(claimed)), sorted(set(claimed) - set(actual))
        raise RuntimeError(
            f"strategies {[s.name for s in strategies]} report a trainable set that differs from the encoder's: "
            f"unreported {extra[:5]}, reported but frozen {missing[:5]}"
        )
    for s, report in fresh:  # after the check above: a strategy that trains unreported parameters is a bug, said first
        _refuse_idle(s, report)
    lr_scale: dict[str, float] = {}
    for r in reports:
        lr_scale.update(r.lr_scale)
    report = report_for("+".join(s.name for s in strategies), encoder, actual, lr_scale=lr_scale)
    pretrained = getattr(encoder, "pretrained_parameter_names", None)  # set by the composer before any strategy
    if pretrained is not None:
        params = dict(encoder.named_parameters())
        report.num_adapter = sum(params[n].numel() for n in actual if peft_names.unwrapped(n) not in pretrained)
    return report
