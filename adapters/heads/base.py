"""What a projection head is: the small trainable map from encoder features to the shared space."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from torch import nn

from registry.component import ComponentConfig


class HeadConfig(ComponentConfig):
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the head's input features (NICE uses 0.5 on small EEG data)."""


class Head(nn.Module):
    """Base of heads: built with `from_config(config, in_dim=..., out_dim=...)`."""

    Config: ClassVar[type[HeadConfig]] = HeadConfig
    description: ClassVar[str] = ""

    @classmethod
    def from_config(cls, config: HeadConfig, *, in_dim: int, out_dim: int, **context) -> Head:
        return cls(config, in_dim=in_dim, out_dim=out_dim)
