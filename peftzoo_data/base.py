"""Paired EEG/video data: what a dataset component returns, group-aware splits, the torch Dataset.

A dataset component builds a `PairedData`: arrays (memory-mapped for files), their metadata, two
ids per pair and the split indices. The two ids are two ideas:
- `groups`, the leakage unit (recording, subject, session or block): splits never cut a group, so
  windows of one recording are never on both sides of the train/val line;
- `stimulus`, what a pair shows: pairs sharing a stimulus are never each other's negatives (loss
  masking, the group-disjoint sampler) and count as one candidate in retrieval.
A data set that gives only groups has stimulus = groups (both meanings, as before the split).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field

from peftzoo_data.splits import SPLITS, DataError, group_split, splits_from_labels  # noqa: F401 (re-exported)
from registry.component import ComponentConfig


class DatasetConfig(ComponentConfig):
    val_fraction: float = Field(0.2, ge=0, lt=1)
    """Share of pairs (whole groups) held out for validation when the data has no split of its own."""
    drop_nonfinite: bool = False
    """Leave out pairs whose EEG holds NaN, inf or values beyond 1 V (a warning says how many); by
    default they are an error that names them (peftzoo_data/checks.py)."""


class RowSubset:
    """Rows `rows` of an array, read on access: a memory-mapped file stays on disk (no copy).

    What `drop_nonfinite` keeps of eeg.npy/video.npy; it has what the pipeline reads of an array:
    len, shape, ndim, dtype and indexing by position.
    """

    def __init__(self, base, rows: np.ndarray):
        self.base, self.rows = base, np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *base.shape[1:])
        self.ndim, self.dtype = len(self.shape), base.dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, tuple):
            return self.base[(self.rows[index[0]], *index[1:])]
        return self.base[self.rows[index]]

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.base[self.rows])
        return out.astype(dtype) if dtype is not None else out


@dataclasses.dataclass
class PairedData:
    eeg: np.ndarray
    """(N, C, T) float32, microvolts."""
    video: np.ndarray
    """(N, F, H, W, 3) uint8, RGB."""
    sfreq: float
    channels: list[str]
    fps: float
    groups: np.ndarray
    """(N,) int64: the leakage unit of each pair (recording, subject, session, block): a split never cuts it."""
    splits: dict[str, np.ndarray]
    """Split name -> sorted indices of its pairs."""
    fingerprint: str | None = None
    """Identifies the content (a hash of what generated or stores it); None disables the on-disk
    feature cache for this data."""
    video_at_input_size: bool = False
    """`video` is already sampled, resized and cropped to a video encoder's input (peftzoo_engine/video_cache.py):
    the loader yields it under the batch key of that name, and the model only normalizes it."""
    stimulus: np.ndarray | None = None
    """(N,) int64: the stimulus id of each pair; pairs sharing one are never each other's negatives.
    None (a data set that gives groups only): the groups mean both ideas; read `stimulus_ids`."""
    stimuli: list[str] | None = None
    """Name of each stimulus id (arrays: meta.json["stimuli"]); None: ids are shown as numbers."""
    group_names: list[str] | None = None
    """Name of each group id (arrays: meta.json["group_names"], e.g. `sub-01_run-1`); None: numbers."""

    def __post_init__(self) -> None:
        n = len(self.eeg)
        if self.stimulus is not None and len(self.stimulus) != n:
            raise DataError(
                f"EEG has {n} pairs but stimulus has {len(self.stimulus)} ids; give one stimulus id per pair"
            )
        if self.eeg.ndim != 3:
            raise DataError(f"EEG must be (N, channels, samples), got shape {self.eeg.shape}")
        if self.video.ndim != 5 or self.video.shape[-1] != 3:
            raise DataError(f"video must be (N, frames, height, width, 3) RGB, got shape {self.video.shape}")
        if len(self.video) != n or len(self.groups) != n:
            raise DataError(
                f"EEG has {n} pairs but video has {len(self.video)} and groups {len(self.groups)}; they must match"
            )
        if self.eeg.shape[1] != len(self.channels):
            raise DataError(f"EEG has {self.eeg.shape[1]} channels but {len(self.channels)} channel names are given")

    def __len__(self) -> int:
        return len(self.eeg)

    def split(self, name: str) -> np.ndarray:
        return self.splits.get(name, np.zeros(0, dtype=np.int64))

    @property
    def stimulus_ids(self) -> np.ndarray:
        """(N,) the ids whose sharing pairs are never each other's negatives: `stimulus`, else the groups."""
        return np.asarray(self.groups if self.stimulus is None else self.stimulus)

    def stimulus_name(self, stimulus_id) -> str:
        """A stimulus id as its name (meta["stimuli"]) where one is known, else the id as plain text."""
        i = int(stimulus_id)
        return str(self.stimuli[i]) if self.stimuli is not None and 0 <= i < len(self.stimuli) else str(i)

    def group_name(self, group_id) -> str:
        """A group (leakage unit) id as its name where one is known, else the id as plain text."""
        i = int(group_id)
        return str(self.group_names[i]) if self.group_names is not None and 0 <= i < len(self.group_names) else str(i)


class PairedDataset(abc.ABC):
    """Base of dataset components: `from_config(config, seed=...)` -> PairedData."""

    Config: ClassVar[type[DatasetConfig]] = DatasetConfig
    description: ClassVar[str] = ""

    @classmethod
    @abc.abstractmethod
    def from_config(cls, config: DatasetConfig, *, seed: int = 0, **context) -> PairedData:
        """The paired arrays, their metadata, groups and splits."""


class PairTorchDataset(torch.utils.data.Dataset):
    """Pairs of one split as tensors; video goes through `video_transform` here, in loader workers.

    A side whose features are cached is not read at all (`load_eeg` / `load_video` False). Video
    already at the encoder's input size comes under the key `video_at_input_size` instead of `video`,
    so the model knows to only normalize it.
    """

    def __init__(
        self,
        data: PairedData,
        indices: np.ndarray,
        video_transform: Callable | None = None,
        load_eeg: bool = True,
        load_video: bool = True,
    ):
        self.data, self.indices, self.video_transform = data, np.asarray(indices), video_transform
        self.load_eeg, self.load_video = load_eeg, load_video

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        idx = int(self.indices[i])
        item = {
            "group": torch.tensor(int(self.data.groups[idx]), dtype=torch.long),
            "stimulus": torch.tensor(int(self.data.stimulus_ids[idx]), dtype=torch.long),
            "index": torch.tensor(idx, dtype=torch.long),
        }
        if self.load_eeg:
            eeg = np.array(self.data.eeg[idx], dtype=np.float32)  # a copy: memmaps are read-only
            if not np.isfinite(eeg).all():
                raise DataError(f"EEG of pair {idx} holds NaN or inf values; clean or drop that window")
            item["eeg"] = torch.from_numpy(eeg)
        if self.load_video and self.data.video_at_input_size:
            item["video_at_input_size"] = torch.from_numpy(np.array(self.data.video[idx]))
        elif self.load_video:
            video = torch.from_numpy(np.array(self.data.video[idx]))
            item["video"] = self.video_transform(video) if self.video_transform is not None else video
        return item
