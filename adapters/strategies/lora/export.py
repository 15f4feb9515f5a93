"""LoRA layers of an encoder, whichever backend made them, in Hugging Face PEFT's adapter format.

A q/v-only LoRA on a fused qkv (loralib's MergedLinear) is exactly a fused LoRA of rank 2r whose A
stacks A_q over A_v and whose B is block-structured ([B_q 0] for q rows, zeros for k rows, [0 B_v]
for v rows), so peft can load it as an ordinary LoRA on `qkv`. Every module gets its own rank and
alpha (peft's rank_pattern / alpha_pattern) so that alpha / r reproduces the scaling exactly.
"""

from __future__ import annotations

import collections
import os
import re
import tempfile
from collections.abc import Collection
from pathlib import Path

import loralib
import peft
import torch
from peft.tuners.lora import LoraLayer
from torch import nn


def _fused_qv(module: loralib.MergedLinear) -> tuple[torch.Tensor, torch.Tensor]:
    """(A', B') of the fused LoRA equal to a MergedLinear's grouped update."""
    groups = sum(module.enable_lora)
    r, d = module.r, module.out_features // len(module.enable_lora)
    a = module.lora_A.detach()  # (r * groups, in): group g uses rows g*r:(g+1)*r
    b_parts = module.lora_B.detach().split(d)  # one (d, r) block per enabled part
    b = torch.zeros(module.out_features, r * groups, dtype=a.dtype, device=a.device)
    g = 0
    for part, enabled in enumerate(module.enable_lora):
        if enabled:
            b[part * d : (part + 1) * d, g * r : (g + 1) * r] = b_parts[g]
            g += 1
    return a.clone(), b


def lora_entries(encoder: nn.Module, only: Collection[str] | None = None) -> dict[str, dict]:
    """Module name -> {A, B, scaling, magnitude} for every LoRA layer in `encoder` (of the modules `only` names)."""
    out = {}
    for name, m in encoder.named_modules():
        if only is not None and name not in only:
            continue
        if isinstance(m, LoraLayer) and "default" in m.lora_A:
            mag = m.lora_magnitude_vector["default"].weight.detach().clone() if m.use_dora.get("default") else None
            out[name] = {
                "A": m.lora_A["default"].weight.detach().clone(),
                "B": m.lora_B["default"].weight.detach().clone(),
                "scaling": float(m.scaling["default"]),
                "magnitude": mag,
            }
        elif isinstance(m, loralib.MergedLinear) and m.r > 0:
            a, b = _fused_qv(m)
            out[name] = {"A": a, "B": b, "scaling": float(m.scaling), "magnitude": None}
        elif isinstance(m, loralib.Linear) and m.r > 0:
            out[name] = {
                "A": m.lora_A.detach().clone(),
                "B": m.lora_B.detach().clone(),
                "scaling": float(m.scaling),
                "magnitude": None,
            }
    return out


def to_peft(encoder: nn.Module, only: Collection[str] | None = None) -> tuple[peft.LoraConfig, dict[str, torch.Tensor]]:
    """The LoraConfig and adapter state dict that `PeftModel.from_pretrained(encoder_base, dir)` loads
    (the LoRA layers among the modules `only` names, when given: one strategy's)."""
    entries = lora_entries(encoder, only)
    if not entries:
        raise ValueError("the encoder has no LoRA layers to export")
    ranks = {n: e["A"].shape[0] for n, e in entries.items()}
    common = collections.Counter(ranks.values()).most_common(1)[0][0]
    config = peft.LoraConfig(
        r=common,
        lora_alpha=common,
        target_modules="|".join(re.escape(n) for n in entries),
        rank_pattern={re.escape(n): r for n, r in ranks.items()},
        alpha_pattern={re.escape(n): e["scaling"] * ranks[n] for n, e in entries.items()},
        use_dora=any(e["magnitude"] is not None for e in entries.values()),
    )
    state: dict[str, torch.Tensor] = {}
    for name, e in entries.items():
        prefix = f"base_model.model.{name}"
        state[f"{prefix}.lora_A.weight"] = e["A"].contiguous()
        state[f"{prefix}.lora_B.weight"] = e["B"].contiguous()
        if e["magnitude"] is not None:
            state[f"{prefix}.lora_magnitude_vector"] = e["magnitude"].contiguous()
    return config, state


PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")


def write_peft_adapter(directory: Path, config: peft.PeftConfig, state: dict[str, torch.Tensor]) -> list[Path]:
    """Write `config` and `state` as `PeftModel.save_pretrained` lays them out (adapter_config.json,
    adapter_model.safetensors) into `directory`; both are written in a temporary directory inside it
    and moved into place when complete. Returns the two files."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".peft-") as tmp:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in state.items()},
            os.path.join(tmp, PEFT_FILES[1]),
            metadata={"format": "pt"},
        )
        config.save_pretrained(tmp)
        for name in PEFT_FILES:
            os.replace(os.path.join(tmp, name), directory / name)
    return [directory / name for name in PEFT_FILES]
