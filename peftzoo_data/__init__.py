"""Paired data sets; registered through entry points (group peftzoo.datasets).

The names below are loaded on first use (PEP 562), so that `python -m recipes.ingest`, which lives
in this package, starts without importing torch (peftzoo_data/base.py needs it)."""

from __future__ import annotations

__all__ = ["DataError", "DatasetConfig", "PairTorchDataset", "PairedData", "PairedDataset", "group_split"]


def __getattr__(name: str):
    if name in __all__:
        from peftzoo_data import base

        return getattr(base, name)
    raise AttributeError(f"module 'peftzoo_data' has no attribute {name!r}")
