"""Putting LoRA layers into an encoder with loralib or peft, and merging them back.

loralib's `MergedLinear(enable_lora=[q, k, v])` is the one library layer that adapts part of a fused
qkv (peft adapts whole modules only, docs/reference/background.md); peft brings DoRA and rsLoRA.
"""

from __future__ import annotations

import math
import re

import loralib
import torch
from torch import nn

from adapters import peft_names
from adapters.strategies.lora.config import LoRAConfig
from adapters.strategies.targets import RoleTargets


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


def _loralib_alpha(cfg: LoRAConfig) -> float:
    # loralib scales by alpha / r; rsLoRA's alpha / sqrt(r) is the same with alpha * sqrt(r).
    return cfg.alpha * math.sqrt(cfg.r) if cfg.use_rslora else cfg.alpha


def inject_loralib(encoder: nn.Module, targets: RoleTargets, cfg: LoRAConfig) -> None:
    """Replace each target Linear by its loralib counterpart holding the same weights."""
    alpha = _loralib_alpha(cfg)
    for name, mask in [*targets.fused.items(), *((n, None) for n in targets.whole)]:
        old = encoder.get_submodule(name)
        kwargs = dict(
            r=cfg.r, lora_alpha=alpha, lora_dropout=cfg.dropout, merge_weights=False, bias=old.bias is not None
        )
        if mask is None:
            new = loralib.Linear(old.in_features, old.out_features, **kwargs)
        else:
            new = loralib.MergedLinear(old.in_features, old.out_features, enable_lora=list(mask), **kwargs)
            # loralib keeps this index as a plain attribute; a buffer follows .to(device).
            index = new.lora_ind
            del new.lora_ind
            new.register_buffer("lora_ind", index, persistent=False)
        new = new.to(device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(old.weight)
            if old.bias is not None:
                new.bias.copy_(old.bias)
        new.weight.requires_grad_(old.weight.requires_grad)
        if old.bias is not None:
            new.bias.requires_grad_(old.bias.requires_grad)
        new.train(old.training)
        _set_module(encoder, name, new)


def inject_peft(encoder: nn.Module, targets: RoleTargets, cfg: LoRAConfig) -> None:
    """peft LoRA layers on whole modules, leaving every other parameter's trainability as it was."""
    import peft

    before = {n: p.requires_grad for n, p in encoder.named_parameters()}
    config = peft.LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        use_dora=cfg.use_dora,
        use_rslora=cfg.use_rslora,
        # A string is re.fullmatch-ed against module names: exact names, so `proj` never hits patch_embed.proj.
        target_modules="|".join(re.escape(n) for n in targets.whole),
    )
    peft.inject_adapter_in_model(config, encoder)
    # inject_adapter_in_model freezes every non-adapter parameter; restore what other strategies set.
    for name, p in encoder.named_parameters():
        base = peft_names.unwrapped(name)
        if base in before and before[base]:
            p.requires_grad_(True)


def is_lora_parameter(name: str) -> bool:
    return ".lora_" in name or name.startswith("lora_")


def merge(encoder: nn.Module, only: set[str] | None = None) -> int:
    """Fold every adapter update (LoRA of either backend, any peft tuner) into its base weight and put
    the plain layers back; `only`: just the layers of these names (one strategy's). Returns how many."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = 0
    for name, module in list(encoder.named_modules()):
        if only is not None and name not in only:
            continue
        if isinstance(module, BaseTunerLayer):
            module.merge()
            _set_module(encoder, name, module.get_base_layer())
            merged += 1
        elif isinstance(module, (loralib.Linear, loralib.MergedLinear)):
            plain = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
            plain = plain.to(device=module.weight.device, dtype=module.weight.dtype)
            with torch.no_grad():
                if isinstance(module, loralib.MergedLinear):
                    delta = module.merge_AB() * module.scaling
                else:
                    delta = module.lora_B @ module.lora_A * module.scaling
                plain.weight.copy_(module.weight + delta)
                if module.bias is not None:
                    plain.bias.copy_(module.bias)
            plain.requires_grad_(False)
            _set_module(encoder, name, plain)
            merged += 1
    return merged
