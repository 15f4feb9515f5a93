"""`python -m recipes.ingest --merge A B ... --out C`: ingested folders joined into one.

For a study ingested in parts (one spec per site, per recording system, per batch), the parts must
agree on everything a pair's meaning depends on: EEG channels (as a set; rows are put in the first
folder's order), sampling rate, window length, frames per window and frame size. Anything else is
refused with the difference, as is one recording (by name or by its files' content) in two folders,
or a group (subject, recording...) that the joined splits would put on two sides. Groups and
stimuli are matched by name across folders, so subject `03` of A and of B is one group, and stimulus
`clip09` one stimulus. The output is written beside C and renamed into place, as an ingest's is.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.pipeline import REPORT, _disk_errors, _into_place, check_out

AGREE = ("sfreq", "window_seconds", "frames_per_window", "fps", "groups_by")


class Part:
    """One ingested folder, opened (arrays memory-mapped) and checked whole."""

    def __init__(self, path: Path):
        self.path = path.expanduser().resolve()
        where = str(self.path)
        try:
            self.meta = json.loads((self.path / "meta.json").read_text())
            self.report = json.loads((self.path / REPORT).read_text())
            self.eeg = np.load(self.path / "eeg.npy", mmap_mode="r")
            self.video = np.load(self.path / "video.npy", mmap_mode="r")
            self.split = np.load(self.path / "split.npy") if (self.path / "split.npy").is_file() else None
            self.groups = np.load(self.path / "groups.npy") if (self.path / "groups.npy").is_file() else None
            self.stimulus = np.load(self.path / "stimulus.npy") if (self.path / "stimulus.npy").is_file() else None
            self.pairs = self.meta["pairs"]
            self.channels = list(self.meta["channels"])
        except FileNotFoundError as exc:
            missing = Path(exc.filename).name
            raise IngestError(
                f"--merge {where!r} is not an ingest output ({missing} is missing); give folders "
                f"written by python -m recipes.ingest"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IngestError(f"--merge {where!r} is damaged ({type(exc).__name__}: {exc}); ingest it again") from None
        n = len(self.pairs)
        for name, arr in (
            ("eeg.npy", self.eeg),
            ("video.npy", self.video),
            ("split.npy", self.split),
            ("groups.npy", self.groups),
            ("stimulus.npy", self.stimulus),
        ):
            if arr is not None and len(arr) != n:
                raise IngestError(
                    f"--merge {where!r}: {name} holds {len(arr)} rows but meta.json lists {n} pairs; ingest it again"
                )

    def names(self, key: str, ids: np.ndarray | None) -> list[str] | None:
        """Per row, the name of its group or stimulus (meta's names), else the folder-local id."""
        if ids is None:
            return None
        table = self.meta.get(key)
        return [str(table[i]) if table and 0 <= i < len(table) else f"{self.path.name}:{i}" for i in ids.tolist()]


def _agree(parts: list[Part]) -> None:
    first = parts[0]
    for p in parts[1:]:
        if set(p.channels) != set(first.channels):
            raise IngestError(
                f"--merge: {p.path} and {first.path} have different EEG channels (only in one: "
                f"{sorted(set(p.channels) ^ set(first.channels))}); ingest both with the same "
                f"eeg.channels"
            )
        for key in AGREE:
            if p.meta.get(key) != first.meta.get(key):
                raise IngestError(
                    f"--merge: {key} differs: {first.meta.get(key)!r} in {first.path}, "
                    f"{p.meta.get(key)!r} in {p.path}; ingest both with the same spec values"
                )
        if p.eeg.shape[2:] != first.eeg.shape[2:] or p.video.shape[1:] != first.video.shape[1:]:
            raise IngestError(
                f"--merge: array shapes differ (EEG {first.eeg.shape[1:]} vs {p.eeg.shape[1:]}, video "
                f"{first.video.shape[1:]} vs {p.video.shape[1:]}) between {first.path} and {p.path}; "
                f"ingest both with the same window and video.size"
            )
        for key in ("split", "groups", "stimulus"):
            if (getattr(p, key) is None) != (getattr(first, key) is None):
                have = first.path if getattr(first, key) is not None else p.path
                raise IngestError(f"--merge: only {have} has {key}.npy; ingest both with the same spec sections")


def _no_recording_twice(parts: list[Part]) -> None:
    seen_names: dict[str, Path] = {}
    seen_files: dict[str, tuple[str, Path]] = {}
    for p in parts:
        for src in p.meta.get("sources", []):
            name = src["recording"]
            if name in seen_names:
                raise IngestError(
                    f"--merge: recording {name!r} is in both {seen_names[name]} and {p.path}; "
                    f"a recording may be in one folder only"
                )
            seen_names[name] = p.path
            for digest in src.get("files", {}).values():
                if digest in seen_files and seen_files[digest][1] != p.path:
                    raise IngestError(
                        f"--merge: recording {name!r} in {p.path} has the same data as "
                        f"{seen_files[digest][0]!r} in {seen_files[digest][1]}; drop the copy"
                    )
                seen_files[digest] = (name, p.path)


def _ids(names: list[str]) -> tuple[np.ndarray, list[str]]:
    index: dict[str, int] = {}
    return np.array([index.setdefault(n, len(index)) for n in names], dtype=np.int64), list(index)


def merge(inputs: list[str | Path], out: str | Path) -> dict:
    """Join ingested folders into `out`; returns the joined report."""
    if len(inputs) < 2:
        raise IngestError("--merge needs two or more ingested folders")
    out = check_out(Path(out))
    parts = [Part(Path(p)) for p in inputs]
    if len({p.path for p in parts}) < len(parts):
        raise IngestError("--merge: a folder is given twice; give each ingested folder once")
    _agree(parts)
    _no_recording_twice(parts)
    channels = parts[0].channels
    group_ids, group_names = _ids(sum((p.names("group_names", p.groups) or [] for p in parts), []))
    split = np.concatenate([p.split for p in parts]) if parts[0].split is not None else None
    if split is not None and len(group_ids):
        for g in np.unique(group_ids):
            sides = sorted({str(s) for s in split[group_ids == g]})
            if len(sides) > 1:
                by = parts[0].meta.get("groups_by")
                raise IngestError(
                    f"--merge: group {group_names[g]!r} ({by}) is in {sides} across the "
                    f"folders; ingest them with splits that keep each group on one side"
                )
    stimulus_ids, stimuli = (
        _ids(sum((p.names("stimuli", p.stimulus) for p in parts), []))
        if parts[0].stimulus is not None
        else (None, None)
    )
    with _disk_errors(out, out.parent / f".{out.name}.no-parts"):
        return _write(parts, out, channels, group_ids, group_names, split, stimulus_ids, stimuli)


def _write(
    parts: list[Part],
    out: Path,
    channels: list[str],
    group_ids: np.ndarray,
    group_names: list[str],
    split: np.ndarray | None,
    stimulus_ids: np.ndarray | None,
    stimuli: list[str] | None,
) -> dict:
    n = sum(len(p.pairs) for p in parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        eeg = np.lib.format.open_memmap(
            tmp / "eeg.npy", mode="w+", dtype=np.float32, shape=(n, *parts[0].eeg.shape[1:])
        )
        video = np.lib.format.open_memmap(
            tmp / "video.npy", mode="w+", dtype=np.uint8, shape=(n, *parts[0].video.shape[1:])
        )
        row, recordings = 0, []
        for p in parts:
            k = len(p.pairs)
            perm = [p.channels.index(c) for c in channels]
            eeg[row : row + k] = p.eeg if perm == sorted(perm) else np.asarray(p.eeg)[:, perm]
            video[row : row + k] = p.video
            for r in p.report.get("recordings", []):
                a, b = r.get("rows", [0, 0])
                recordings.append({**r, "rows": [a + row, b + row], "merged_from": str(p.path)})
            row += k
        eeg.flush()
        video.flush()
        del eeg, video
        if split is not None:
            np.save(tmp / "split.npy", split)
        if parts[0].groups is not None:
            np.save(tmp / "groups.npy", group_ids)
        if stimulus_ids is not None:
            np.save(tmp / "stimulus.npy", stimulus_ids)
        meta = {
            **parts[0].meta,
            "channels": channels,
            "pairs": [q for p in parts for q in p.pairs],
            "group_names": group_names,
            "sources": [s for p in parts for s in p.meta.get("sources", [])],
            "merged_from": [{"path": str(p.path), "pairs": len(p.pairs), "spec": p.meta.get("spec")} for p in parts],
        }
        if stimuli is not None:
            meta["stimuli"] = stimuli
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        sizes = {s: int((split == s).sum()) for s in ("train", "val", "test")} if split is not None else {"train": n}
        report = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "pairs": n,
            "split_sizes": sizes,
            "merged_from": [str(p.path) for p in parts],
            "recordings": recordings,
        }
        (tmp / REPORT).write_text(json.dumps(report, indent=1))
        if (parts[0].path / "preview.png").is_file():
            shutil.copy2(parts[0].path / "preview.png", tmp / "preview.png")
        _into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
