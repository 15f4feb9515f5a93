"""Adapters of the peft-tuner strategies (adalora, ia3, loha, lokr) in Hugging Face PEFT's format.

The tuners are injected into the encoder in place (adapters/strategies/peft_tuner.py), so the encoder
carries peft's own config (`encoder.peft_config["default"]`) and peft's adapter state; peft's
`get_peft_model_state_dict` selects and renames that state as `save_pretrained` would, and the
`base_model.model.` prefix makes it the state of a PeftModel around the plain encoder, which
`PeftModel.from_pretrained(encoder_base, dir)` loads.

AdaLoRA is exported at its initial rank with the pruned singular values left at zero (the budget
masks them in place during training), with `rank_pattern` cleared: exactly the trained outputs,
without peft's resizing, which needs the PeftModel wrapper the in-place injection does not have.
"""

from __future__ import annotations

import copy

import peft
import torch
from peft.utils import get_peft_model_state_dict
from torch import nn

ADAPTER = "default"


def tuner_to_peft(encoder: nn.Module) -> tuple[peft.PeftConfig, dict[str, torch.Tensor]]:
    """(config, adapter state dict) of the peft tuner injected into `encoder`, for save_pretrained's layout."""
    configs = getattr(encoder, "peft_config", None)
    if not configs or ADAPTER not in configs:
        raise ValueError("the encoder carries no peft tuner to export")
    config = copy.deepcopy(configs[ADAPTER])
    if config.peft_type == peft.PeftType.ADALORA:
        config.rank_pattern = None
    saved = encoder.peft_config
    encoder.peft_config = {ADAPTER: config}  # what get_peft_model_state_dict reads
    try:
        state = get_peft_model_state_dict(encoder, adapter_name=ADAPTER)
    finally:
        encoder.peft_config = saved
    if not state:
        raise ValueError(f"peft found no {config.peft_type.value} weights in the encoder")
    config.inference_mode = True
    return config, {f"base_model.model.{k}": v.detach().cpu().contiguous() for k, v in state.items()}
