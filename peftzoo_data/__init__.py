"""Paired data sets; registered through entry points (group peftzoo.datasets)."""

from peftzoo_data.base import DataError, DatasetConfig, PairedData, PairedDataset, PairTorchDataset, group_split

__all__ = ["DataError", "DatasetConfig", "PairTorchDataset", "PairedData", "PairedDataset", "group_split"]
