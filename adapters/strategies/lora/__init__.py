"""The `lora` strategy: config, role targets, loralib and peft backends, merging (one folder, as in peft)."""

from adapters.strategies.lora.backends import merge
from adapters.strategies.lora.config import LoRAConfig
from adapters.strategies.lora.strategy import LoRA

__all__ = ["LoRA", "LoRAConfig", "merge"]
