"""Projection heads, one file each; registered through entry points (group peftzoo.heads)."""

from adapters.heads.base import Head, HeadConfig

__all__ = ["Head", "HeadConfig"]
