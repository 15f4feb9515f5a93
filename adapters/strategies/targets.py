"""Role names (q, k, v, o, mlp) to the modules of an encoder they denote, for LoRA and peft tuners."""

from __future__ import annotations

import dataclasses

from torch import nn

from adapters.strategies.base import StrategyError, clash_message, wrapped_by, wrapper_of
from registry.component import name_of as registry_name


@dataclasses.dataclass
class RoleTargets:
    fused: dict[str, tuple[bool, bool, bool]]
    """Fused qkv module name -> which of q, k, v to adapt."""
    whole: list[str]
    """Names of nn.Linear modules adapted as a whole."""

    @property
    def splits_qkv(self) -> bool:
        return any(mask != (True, True, True) for mask in self.fused.values())

    def all_names(self) -> list[str]:
        return [*self.fused, *self.whole]


def check_layers_option(layers: list[int] | None) -> list[int] | None:
    """Validator of a `layers` option: None (all blocks) or a non-empty list (an empty one adapts nothing)."""
    if layers is not None and not layers:
        raise ValueError(
            "layers is empty, so nothing would be adapted; name blocks (e.g. [-2, -1]) or drop layers for all"
        )
    return layers


def choose_blocks(encoder: nn.Module, layers: list[int] | None, who: str) -> list[int]:
    """Indices of the blocks `layers` names (negative from the end; None is all), each once, in order.

    An empty list or an index beyond the encoder's depth is an error, never a silent wrap-around.
    """
    n = len(list(encoder.blocks))
    if layers is None:
        return list(range(n))
    name = registry_name(encoder, "the encoder")
    if not layers:
        raise StrategyError(
            f"{who}: layers is empty, so it would adapt nothing; name blocks (0..{n - 1}, or -1 for the last) or drop "
            f"layers for all"
        )
    bad = [i for i in layers if not -n <= i < n]
    if bad:
        raise StrategyError(
            f"{who}: layers {bad} do not exist; {name} has {n} blocks (0..{n - 1}, or -{n}..-1 from the end)"
        )
    return sorted({i % n for i in layers})


def resolve(
    encoder: nn.Module, roles: list[str], layers: list[int] | None, who: str = "lora", mlp_layers: str = "all"
) -> RoleTargets:
    """Modules for `roles` in the chosen blocks; `mlp_layers="last"` takes only each MLP's output Linear."""
    blocks = list(encoder.blocks)
    chosen = [blocks[i] for i in choose_blocks(encoder, layers, who)]
    name_of = {id(m): n for n, m in encoder.named_modules()}
    wrapped = wrapped_by(encoder)  # what earlier strategies (and stages) declared they wrapped

    def linear(module: nn.Module | None) -> bool:
        """A plain Linear, or one an earlier strategy wrapped (then a clash, said below)."""
        return isinstance(module, nn.Linear) or (
            module is not None and wrapper_of(name_of.get(id(module), ""), wrapped) is not None
        )

    mask = tuple(role in roles for role in ("q", "k", "v"))
    fused: dict[str, tuple[bool, bool, bool]] = {}
    whole: list[str] = []
    for block in chosen:
        attns = [m for m in block.modules() if linear(getattr(m, "qkv", None)) and linear(getattr(m, "proj", None))]
        if not attns:
            raise StrategyError(
                f"{who}: block {name_of[id(block)]} has no attention with fused qkv and proj Linear layers "
                f"(an earlier strategy may have replaced them with its own layers: one layer carries one adapter)"
            )
        for attn in attns:
            if any(mask):
                fused[name_of[id(attn.qkv)]] = mask
            if "o" in roles:
                whole.append(name_of[id(attn.proj)])
        if "mlp" in roles:
            mlp = getattr(block, "mlp", None)
            linears = [m for m in mlp.modules() if isinstance(m, nn.Linear)] if mlp is not None else []
            if not linears:
                raise StrategyError(
                    f"{who}: block {name_of[id(block)]} has no `mlp` with Linear layers for the mlp role"
                )
            whole += [name_of[id(m)] for m in (linears if mlp_layers == "all" else linears[-1:])]
    for module in [*fused, *whole]:
        other = wrapper_of(module, wrapped)
        if other is not None:
            raise StrategyError(clash_message(who, module, other))
    if mask == (True, True, True):  # the whole fused module: either backend adapts it as one Linear
        whole = [*fused, *whole]
        fused = {}
    return RoleTargets(fused=fused, whole=whole)
