"""`seed_dv`: the SEED-DV data set of EEG2Video (Liu et al., NeurIPS 2024) as 2-s EEG/video pairs.

Published layout (XuanhaoLiu/EEG2Video: EEG_preprocessing/segment_raw_signals_200Hz.py,
EEG2Video/extract_gif.py, EEG-VP/EEG_VP_train_test.py):

    <root>/EEG/sub1.npy ...            per subject float (7 blocks, 62 channels, 520 s x 200 Hz)
    <root>/Video/1st_10min.mp4 ...     one 24-fps video per block: 1st, 2nd, 3rd, 4th ... 7th_10min.mp4
    <root>/meta_info/All_video_label.npy   optional (7, 40): concept shown at each position, 1-based

Each block shows 40 concepts in a per-block shuffled order, each as a 3-s hint and then 5 clips of
2 s (13 s per concept); EEG and video share the block's time 0. The 2-s clips are the pairs: at
200 Hz, 400 samples each; frames are sampled uniformly over the same 2 s of the block video.
Groups: `block_concept` (default) makes the clips of one concept within one block a group (across
subjects, who saw the same clips), so they are never each other's negatives and leave-one-block-out
never cuts a group; `block` makes the whole block a group. Split: EEG2Video's 7-fold
leave-one-block-out, block `fold` for test and the block before it for validation. Each pair's
concept id (0-39) is kept in concepts.npy beside the arrays.
Without All_video_label.npy the order table of EEG_VP_train_test.py (the published one) is used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from peftzoo_data.arrays import _load_npy
from peftzoo_data.base import DataError, DatasetConfig, PairedData, PairedDataset

logger = logging.getLogger("peftzoo_data.seed_dv")

# The 62-channel NeuroScan (ESI) cap of the SEED family, in file row order (10-10 names).
CHANNELS = [
    "FP1",
    "FPZ",
    "FP2",
    "AF3",
    "AF4",
    "F7",
    "F5",
    "F3",
    "F1",
    "FZ",
    "F2",
    "F4",
    "F6",
    "F8",
    "FT7",
    "FC5",
    "FC3",
    "FC1",
    "FCZ",
    "FC2",
    "FC4",
    "FC6",
    "FT8",
    "T7",
    "C5",
    "C3",
    "C1",
    "CZ",
    "C2",
    "C4",
    "C6",
    "T8",
    "TP7",
    "CP5",
    "CP3",
    "CP1",
    "CPZ",
    "CP2",
    "CP4",
    "CP6",
    "TP8",
    "P7",
    "P5",
    "P3",
    "P1",
    "PZ",
    "P2",
    "P4",
    "P6",
    "P8",
    "PO7",
    "PO5",
    "PO3",
    "POZ",
    "PO4",
    "PO6",
    "PO8",
    "CB1",
    "O1",
    "OZ",
    "O2",
    "CB2",
]
BLOCKS, CONCEPTS, CLIPS = 7, 40, 5
SFREQ = 200.0  # the videos are 24 fps; frames are found by their presentation times, not by this rate
HINT_S, CLIP_S = 3.0, 2.0
CONCEPT_S = HINT_S + CLIPS * CLIP_S  # 13 s; a block is CONCEPTS x 13 s = 520 s
VIDEO_NAMES = [
    "1st_10min.mp4",
    "2nd_10min.mp4",
    "3rd_10min.mp4",
    "4th_10min.mp4",
    "5th_10min.mp4",
    "6th_10min.mp4",
    "7th_10min.mp4",
]
# EEG-VP/EEG_VP_train_test.py `GT_label`: concept (1-based) at each of the 40 positions of each block.
ORDER = [
    [
        23,
        22,
        9,
        6,
        18,
        14,
        5,
        36,
        25,
        19,
        28,
        35,
        3,
        16,
        24,
        40,
        15,
        27,
        38,
        33,
        34,
        4,
        39,
        17,
        1,
        26,
        20,
        29,
        13,
        32,
        37,
        2,
        11,
        12,
        30,
        31,
        8,
        21,
        7,
        10,
    ],
    [
        27,
        33,
        22,
        28,
        31,
        12,
        38,
        4,
        18,
        17,
        35,
        39,
        40,
        5,
        24,
        32,
        15,
        13,
        2,
        16,
        34,
        25,
        19,
        30,
        23,
        3,
        8,
        29,
        7,
        20,
        11,
        14,
        37,
        6,
        21,
        1,
        10,
        36,
        26,
        9,
    ],
    [
        15,
        36,
        31,
        1,
        34,
        3,
        37,
        12,
        4,
        5,
        21,
        24,
        14,
        16,
        39,
        20,
        28,
        29,
        18,
        32,
        2,
        27,
        8,
        19,
        13,
        10,
        30,
        40,
        17,
        26,
        11,
        9,
        33,
        25,
        35,
        7,
        38,
        22,
        23,
        6,
    ],
    [
        16,
        28,
        23,
        1,
        39,
        10,
        35,
        14,
        19,
        27,
        37,
        31,
        5,
        18,
        11,
        25,
        29,
        13,
        20,
        24,
        7,
        34,
        26,
        4,
        40,
        12,
        8,
        22,
        21,
        30,
        17,
        2,
        38,
        9,
        3,
        36,
        33,
        6,
        32,
        15,
    ],
    [
        18,
        29,
        7,
        35,
        22,
        19,
        12,
        36,
        8,
        15,
        28,
        1,
        34,
        23,
        20,
        13,
        37,
        9,
        16,
        30,
        2,
        33,
        27,
        21,
        14,
        38,
        10,
        17,
        31,
        3,
        24,
        39,
        11,
        32,
        4,
        25,
        40,
        5,
        26,
        6,
    ],
    [
        29,
        16,
        1,
        22,
        34,
        39,
        24,
        10,
        8,
        35,
        27,
        31,
        23,
        17,
        2,
        15,
        25,
        40,
        3,
        36,
        26,
        6,
        14,
        37,
        9,
        12,
        19,
        30,
        5,
        28,
        32,
        4,
        13,
        18,
        21,
        20,
        7,
        11,
        33,
        38,
    ],
    [
        38,
        34,
        40,
        10,
        28,
        7,
        1,
        37,
        22,
        9,
        16,
        5,
        12,
        36,
        20,
        30,
        6,
        15,
        35,
        2,
        31,
        26,
        18,
        24,
        8,
        3,
        23,
        19,
        14,
        13,
        21,
        4,
        25,
        11,
        32,
        17,
        39,
        29,
        33,
        27,
    ],
]


class SeedDVConfig(DatasetConfig):
    root: str
    """The SEED-DV folder holding EEG/, Video/ (and optionally meta_info/)."""
    subjects: list[str] | None = None
    """Subject file stems in EEG/ (`sub1`); None: every .npy there."""
    frames: int = Field(6, ge=1)
    """Frames per 2-s clip (EEG2Video keeps 6, every 8th of 48)."""
    short_side: int = Field(128, ge=8)
    fold: int = Field(0, ge=0, lt=BLOCKS)
    """Leave-one-block-out fold: block `fold` is test, the block before it (cyclically) validation."""
    groups: Literal["block_concept", "block"] = "block_concept"
    """What pairs are never each other's negatives (the stimulus ids): a concept's clips of one block
    (seen by every subject), or a whole block. The leakage unit is always the block."""
    filter: bool = True
    """Apply LaBraM's band-pass 0.1-75 Hz and 50 Hz notch (through MNE) to each block."""
    unit: Literal["uV", "V"] = "uV"
    """Unit of the published arrays; output is always microvolts."""
    cache_dir: str | None = None
    concepts_per_block: int = Field(CONCEPTS, ge=1, le=CONCEPTS)
    """40 in SEED-DV; fewer only for a reduced copy of the layout (tests, a quick look): blocks are
    then concepts_per_block x 13 s long, and meta_info/All_video_label.npy must have that many columns."""


class SeedDV(PairedDataset):
    """SEED-DV (EEG2Video): 2-s clips x 62 channels at 200 Hz, leave-one-block-out, concept ids kept."""

    description = "SEED-DV (EEG2Video) 2-s EEG/video clips; block groups, leave-one-block-out split"
    Config = SeedDVConfig

    @classmethod
    def from_config(cls, config: SeedDVConfig, *, seed: int = 0, **context) -> PairedData:
        from peftzoo_data import arrays
        from peftzoo_data.ingest.cache import cache_root
        from peftzoo_data.ingest.sources import sha256

        root = Path(config.root).expanduser()
        eeg_files, videos = _layout(root, config.subjects)
        labels = _labels(root, config.concepts_per_block)
        files = {str(p): sha256(p) for p in [*eeg_files, *videos]}
        payload = {
            "config": config.model_dump(mode="json", exclude={"cache_dir", "fold", "val_fraction", "groups"}),
            "files": files,
            "labels": labels.tolist(),
        }
        key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]
        out = cache_root(config.cache_dir) / f"seed_dv-{key}"
        if not (out / "meta.json").is_file():
            build(out, eeg_files, videos, labels, config)
        blocks = np.load(out / "blocks.npy")
        concepts = np.load(out / "concepts.npy")
        # Two ideas: a block is the leakage unit (the split is by block), and `groups` picks what pairs
        # must not be each other's negatives (a concept's clips of one block, seen by every subject).
        stimulus = group_ids(blocks, concepts, config.groups, config.concepts_per_block)
        data = arrays.load(out, config.val_fraction, seed)
        splits = fold_splits(blocks, config.fold)
        names = (
            [f"block{b}" for b in range(BLOCKS)]
            if config.groups == "block"
            else [f"block{b}/concept{c}" for b in range(BLOCKS) for c in range(config.concepts_per_block)]
        )
        return dataclasses.replace(
            data,
            splits=splits,
            groups=blocks.astype(np.int64),
            stimulus=stimulus,
            stimuli=names,
            group_names=[f"block{b}" for b in range(BLOCKS)],
            fingerprint=f"seed_dv-{key}",
        )


def group_ids(blocks: np.ndarray, concepts: np.ndarray, by: str, per_block: int) -> np.ndarray:
    """Subjects saw the same clips, so a group spans subjects: one clip's pairs from two subjects
    (the same video) are never each other's negatives. Computed on loading: changing `groups`
    does not rebuild the cache."""
    return (blocks * per_block + concepts if by == "block_concept" else blocks).astype(np.int64)


def fold_splits(blocks: np.ndarray, fold: int) -> dict[str, np.ndarray]:
    """EEG2Video's leave-one-block-out: block `fold` test, block `fold - 1` (cyclic) validation."""
    val_block = (fold - 1) % BLOCKS
    return {
        "train": np.flatnonzero((blocks != fold) & (blocks != val_block)),
        "val": np.flatnonzero(blocks == val_block),
        "test": np.flatnonzero(blocks == fold),
    }


def _layout(root: Path, subjects: list[str] | None) -> tuple[list[Path], list[Path]]:
    if not (root / "EEG").is_dir():
        raise DataError(
            f"data.root {str(root)!r} has no EEG/ folder; point it at the SEED-DV folder holding EEG/ and Video/"
        )
    available = sorted(
        (root / "EEG").glob("*.npy"), key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)]
    )
    if subjects is None:
        eeg_files = available
    else:
        names = {p.stem: p for p in available}
        missing = [s for s in subjects if s not in names]
        if missing:
            raise DataError(f"data.subjects {missing} are not in {root / 'EEG'} (found: {sorted(names)})")
        eeg_files = [names[s] for s in subjects]
    if not eeg_files:
        raise DataError(
            f"{root / 'EEG'} holds no .npy file; SEED-DV stores one (7, 62, 104000) array per subject there"
        )
    videos = [root / "Video" / name for name in VIDEO_NAMES]
    missing = [v.name for v in videos if not v.is_file()]
    if missing:
        raise DataError(
            f"{root / 'Video'} lacks {missing}; SEED-DV has one video per block, {VIDEO_NAMES[0]} ... {VIDEO_NAMES[-1]}"
        )
    return eeg_files, videos


def _labels(root: Path, concepts: int = CONCEPTS) -> np.ndarray:
    """(7, concepts) 0-based concept ids per block position."""
    path = root / "meta_info" / "All_video_label.npy"
    table = np.asarray(_load_npy(path, "the label table (7, 40)")) if path.exists() else np.asarray(ORDER)
    if table.shape != (BLOCKS, concepts):
        raise DataError(
            f"{path} has shape {table.shape}; the label table must be (7, {concepts}) (blocks, concepts per block)"
        )
    if table.dtype.kind not in "iu":
        raise DataError(f"{path} holds {table.dtype} values; concept ids are integers 1..{CONCEPTS} (save it as int64)")
    raw = table.astype(np.int64)
    ids = raw - 1 if raw.min() == 1 else raw
    outside = sorted({int(r) for r, i in zip(raw.ravel(), ids.ravel()) if not 0 <= i < CONCEPTS})
    if outside:
        raise DataError(
            f"{path} holds concept ids {outside[:5]} outside 1..{CONCEPTS} "
            f"(SEED-DV has {CONCEPTS} concepts; the table is 1-based, as EEG2Video's, "
            f"or 0-based 0..{CONCEPTS - 1}); fix the table"
        )
    return ids


def clip_starts(concepts: int = CONCEPTS) -> np.ndarray:
    """(concepts, 5) start of each 2-s clip within a block, seconds."""
    return np.arange(concepts)[:, None] * CONCEPT_S + HINT_S + np.arange(CLIPS)[None, :] * CLIP_S


def _filtered(block: np.ndarray, config: SeedDVConfig) -> np.ndarray:
    """(62, T) microvolts, with LaBraM's band-pass and notch when `config.filter`."""
    uv = block * (1e6 if config.unit == "V" else 1.0)
    if not config.filter:
        return uv.astype(np.float32)
    import mne

    raw = mne.io.RawArray(uv * 1e-6, mne.create_info(CHANNELS, SFREQ, "eeg"), verbose="error")
    raw.filter(0.1, 75.0, verbose="error")
    raw.notch_filter([50.0], verbose="error")
    return raw.get_data(units="uV").astype(np.float32)


def _subject(path: Path, expected: tuple[int, int, int]) -> np.ndarray:
    """One subject's EEG, memory-mapped and checked: never unpickled (a pickle or a text file is one message)."""
    subject = _load_npy(path, f"one subject's EEG {expected}")
    if subject.dtype.kind not in "fiu":
        raise DataError(f"{path} holds {subject.dtype} values; SEED-DV EEG is a numeric array (float)")
    if subject.ndim != 3 or subject.shape[:2] != expected[:2] or subject.shape[2] < expected[2]:
        raise DataError(
            f"{path} has shape {subject.shape}; SEED-DV subjects are {expected} "
            f"(blocks, channels, {expected[2] / SFREQ:.0f} s x 200 Hz)"
        )
    return subject


def build(out: Path, eeg_files: list[Path], videos: list[Path], labels: np.ndarray, config: SeedDVConfig) -> None:
    """Write the arrays directory: pairs ordered subject, block, position, clip."""
    from tqdm.auto import tqdm

    from peftzoo_data.ingest import video as video_io

    concepts = config.concepts_per_block
    expected = (BLOCKS, len(CHANNELS), int(concepts * CONCEPT_S * SFREQ))
    for path in eeg_files:  # every subject's file checked before minutes of video decoding
        _subject(path, expected)
    starts = clip_starts(concepts)
    length = int(CLIP_S * SFREQ)
    n = len(eeg_files) * BLOCKS * concepts * CLIPS
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        eeg_out = video_out = None
        per_block = concepts * CLIPS
        for b, path in enumerate(tqdm(videos, desc="seed_dv video", unit="block")):
            times = np.concatenate([video_io.frame_times(t, CLIP_S, config.frames) for t in starts.ravel()])
            info = video_io.probe(path)
            if times[-1] >= info.end:
                raise DataError(
                    f"{path} ends at {info.end:.1f} s; SEED-DV blocks last {concepts * CONCEPT_S:.0f} s (the last clip "
                    f"needs {times[-1]:.2f} s)"
                )
            frames, _, _ = video_io.frames_at(path, times, config.short_side, progress=True)
            frames = frames.reshape(per_block, config.frames, *frames.shape[1:])
            if video_out is None:
                video_out = np.lib.format.open_memmap(tmp / "video.npy", "w+", np.uint8, (n, *frames.shape[1:]))
            for s in range(len(eeg_files)):  # every subject saw the same videos: decoded once
                a = (s * BLOCKS + b) * per_block
                video_out[a : a + per_block] = frames
        for s, path in enumerate(tqdm(eeg_files, desc="seed_dv eeg", unit="subject")):
            subject = _subject(path, expected)
            if eeg_out is None:
                eeg_out = np.lib.format.open_memmap(tmp / "eeg.npy", "w+", np.float32, (n, len(CHANNELS), length))
            for b in range(BLOCKS):
                block = _filtered(np.asarray(subject[b], dtype=np.float64), config)
                a = (s * BLOCKS + b) * per_block
                for i, t in enumerate(starts.ravel()):
                    k = int(round(t * SFREQ))
                    eeg_out[a + i] = block[:, k : k + length]
        eeg_out.flush()
        video_out.flush()
        del eeg_out, video_out
        block_of = np.tile(np.repeat(np.arange(BLOCKS), per_block), len(eeg_files))
        concept_of = np.tile(np.repeat(labels, CLIPS, axis=1).ravel(), len(eeg_files))
        np.save(tmp / "groups.npy", group_ids(block_of, concept_of, "block_concept", concepts))
        np.save(tmp / "blocks.npy", block_of.astype(np.int64))
        np.save(tmp / "concepts.npy", concept_of.astype(np.int64))
        meta = {
            "sfreq": SFREQ,
            "channels": CHANNELS,
            "fps": config.frames / CLIP_S,
            "source": "SEED-DV (EEG2Video)",
            "subjects": [p.stem for p in eeg_files],
            "order": "subject, block, position (concept order of the block), clip",
            "arrays": {
                "blocks.npy": "block 0-6 per pair",
                "concepts.npy": "concept 0-39 per pair",
                "groups.npy": "block*40 + concept (across subjects); the component's groups: block uses blocks.npy",
            },
            "clip": {"hint_s": HINT_S, "clip_s": CLIP_S, "concept_s": CONCEPT_S, "frames": config.frames},
            "preprocessing": {"bandpass": [0.1, 75.0], "notch": [50.0]} if config.filter else None,
            "clip_of_pair": "index % 5",
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if out.exists():  # another process finished the same build first: keep its copy
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
