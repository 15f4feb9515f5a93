"""A spec to an arrays directory: every recording ingested (or reused), assembled, moved into place.

Output (design section 6 plus provenance): eeg.npy, video.npy, meta.json, groups.npy, stimulus.npy, split.npy,
ingest_report.json, preview.png. The directory is built beside `out` and renamed into place when
complete, so `out` is never half-written. Each recording's result is keyed by the spec's
processing keys and the sha256 of its files: a rerun reuses a recording whose key (and whose
videos' hashes) still match, from the previous output or from the parts an interrupted run left.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from peftzoo_data.ingest import groups as grouping
from peftzoo_data.ingest import preview as preview_png
from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.recording import Part, ingest_recording
from peftzoo_data.ingest.sources import Recording, find, sha256
from peftzoo_data.ingest.spec import IngestSpec

logger = logging.getLogger("peftzoo_data.ingest")

FORMAT = 1  # bump when the meaning of a part changes; old parts are then recomputed
REPORT = "ingest_report.json"


def recording_key(rec: Recording, spec: IngestSpec, base: Path) -> str:
    """Hash of what decides a recording's pairs: processing keys + its files' contents."""
    processing = spec.model_dump(mode="json", include={"events", "window", "eeg", "video", "preview"})
    files = {p.name: sha256(p) for p in rec.files()}
    if spec.events.source == "csv":
        from peftzoo_data.ingest.recording import _format, _template_fields

        path = _format(spec.events.file, _template_fields(rec), "events.file", base)
        files["events_file"] = sha256(path) if path.is_file() else "missing"
    payload = {"format": FORMAT, "processing": processing, "files": files, "entities": rec.entities}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for name in ("peftzoo", "mne", "mne-bids", "av", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@dataclasses.dataclass
class Stored:
    """A recording's part on disk: arrays + json (pairs, report, channels, video hashes)."""

    folder: Path

    def save(self, part: Part, video_hashes: dict[str, str]) -> None:
        tmp = self.folder.with_name(self.folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "eeg.npy", part.eeg)
        np.save(tmp / "video.npy", part.video)
        info = {"channels": part.channels, "pairs": part.pairs, "report": part.report, "video_hashes": video_hashes}
        (tmp / "part.json").write_text(json.dumps(info))
        np.savez(tmp / "previews.npz", **{f"{i}_{k}": v for i, p in enumerate(part.previews) for k, v in p.items() if k != "pair"})
        shutil.rmtree(self.folder, ignore_errors=True)
        os.replace(tmp, self.folder)


def _valid_hashes(hashes: dict[str, str]) -> bool:
    return all(Path(p).is_file() and sha256(Path(p)) == h for p, h in hashes.items())


class Previous:
    """A finished previous output in `out`, read once: its report, pairs and arrays (memory-mapped)."""

    def __init__(self, out: Path):
        self.out, self.entries, self.pairs, self.channels = out, {}, [], []
        try:
            report = json.loads((out / REPORT).read_text())
            meta = json.loads((out / "meta.json").read_text())
            self.pairs, self.channels = meta["pairs"], meta["channels"]
        except (OSError, json.JSONDecodeError, KeyError):
            return
        self.entries = {e.get("key"): e for e in report.get("recordings", [])}

    def get(self, key: str) -> tuple[dict, np.ndarray, np.ndarray, list[str]] | None:
        """(entry, eeg rows, video rows, the rows' channel order: the previous output's) of a
        recording, if its key and its videos' hashes still match."""
        entry = self.entries.get(key)
        if entry is None or not _valid_hashes(entry.get("video_hashes", {})):
            return None
        a, b = entry["rows"]
        eeg = np.load(self.out / "eeg.npy", mmap_mode="r")[a:b]
        video = np.load(self.out / "video.npy", mmap_mode="r")[a:b]
        return {**entry, "pairs": self.pairs[a:b]}, eeg, video, self.channels


def run(spec: IngestSpec, base: Path, out: Path, quiet: bool = False) -> dict:
    """Ingest everything the spec names into `out`; returns the report."""
    from tqdm.auto import tqdm

    out = out.expanduser().resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / REPORT).is_file())):
        raise IngestError(f"--out {str(out)!r} exists and is not an ingest output; choose a new folder (nothing was written)")
    recordings = find(spec.recordings, base)
    work = out.parent / f".{out.name}.ingest-parts"
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    entries: list[dict] = []
    sources: list[tuple[str, object]] = []  # per recording: ("part", Stored) or ("previous", (eeg, video, row channels))
    failures = []
    previous_output = Previous(out)
    bar = tqdm(recordings, desc="ingest", unit="recording", disable=quiet or None)
    for rec in bar:
        bar.set_postfix_str(rec.name[-40:])
        key = recording_key(rec, spec, base)
        previous = previous_output.get(key)
        if previous is not None:
            entry, eeg, video, row_channels = previous
            entries.append({**entry, "reused": True})
            sources.append(("previous", (eeg, video, row_channels)))
            continue
        stored = Stored(work / key)
        if (stored.folder / "part.json").is_file():
            info = json.loads((stored.folder / "part.json").read_text())
            if _valid_hashes(info["video_hashes"]):
                entries.append({**info["report"], "key": key, "channels": info["channels"], "pairs": info["pairs"],
                                "video_hashes": info["video_hashes"], "reused": True})
                sources.append(("part", stored))
                continue
        try:
            part = ingest_recording(rec, spec, base, progress=not quiet)
        except IngestError as exc:
            failures.append(str(exc))
            continue
        hashes = {v: sha256(Path(v)) for v in part.report.get("videos", [])}
        stored.save(part, hashes)
        entries.append({**part.report, "key": key, "channels": part.channels, "pairs": part.pairs,
                        "video_hashes": hashes, "reused": False})
        sources.append(("part", stored))
    if failures:
        raise IngestError("ingest stopped; nothing was written to --out:\n" + "\n".join(f"  {f}" for f in failures))
    unchanged = _unchanged(out, spec, entries, sources)
    if unchanged is not None:
        shutil.rmtree(work, ignore_errors=True)
        return unchanged
    return _assemble(spec, out, work, recordings, entries, sources, started)


def _unchanged(out: Path, spec: IngestSpec, entries: list[dict], sources: list) -> dict | None:
    """The previous report when every recording was reused and the spec is the same: nothing to write."""
    if not entries or any(kind != "previous" for kind, _ in sources):
        return None
    try:
        meta = json.loads((out / "meta.json").read_text())
        report = json.loads((out / REPORT).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("spec") != spec.model_dump(mode="json") or len(report.get("recordings", [])) != len(entries):
        return None
    report["recordings"] = [{**r, "reused": True} for r in report["recordings"]]
    return report


def _assemble(spec, out, work, recordings, entries, sources, started) -> dict:
    counts = [len(e["pairs"]) for e in entries]
    if sum(counts) == 0:
        reasons = {}
        for e in entries:
            for d in e["windows_dropped"]:
                reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:5]
        raise IngestError("no window could be made from any recording; nothing was written. Reasons: "
                          + "; ".join(f"{n} x {r}" for r, n in top))
    with_pairs = [e for e in entries if e["pairs"]]
    channels = list(with_pairs[0]["channels"])
    if any(set(e["channels"]) != set(channels) for e in with_pairs):
        common = sorted(set.intersection(*(set(e["channels"]) for e in with_pairs)))
        odd = [e for e in with_pairs if set(e["channels"]) != set(channels)]
        detail = "; ".join(f"{e['recording']}: {len(e['channels'])} channels" for e in [with_pairs[0], *odd][:4])
        differ = sorted(set(channels) ^ set(odd[0]["channels"]))
        raise IngestError(f"recordings have different EEG channels ({detail}; {differ} are not in both); "
                          f"set eeg.channels to the ones all share: {common}")
    # The same channels in another order (another cap's file layout): rows are put in the first
    # recording's order, so every pair's channel axis means the same site.
    # A reused recording's rows are already in the previous output's order.
    order = {}
    for (kind, src), e in zip(sources, entries):
        if e["pairs"]:
            rows = src[2] if kind == "previous" else e["channels"]
            order[e["recording"]] = [rows.index(c) for c in channels]
    shapes = {}
    for (kind, src), e in zip(sources, entries):
        if not e["pairs"]:
            continue
        video = np.load(src.folder / "video.npy", mmap_mode="r") if kind == "part" else src[1]
        eeg = np.load(src.folder / "eeg.npy", mmap_mode="r") if kind == "part" else src[0]
        shapes.setdefault(video.shape[1:], e["recording"])
        eeg_shape = eeg.shape[1:]
    if len(shapes) > 1:
        raise IngestError(f"videos of different shapes across recordings ({dict((str(k), v) for k, v in shapes.items())}); "
                          f"set video.size: [height, width] to resize and centre-crop every video to one shape")
    n = sum(counts)
    video_shape = next(iter(shapes))
    pairs = [p for e in entries for p in e["pairs"]]
    labels = grouping.group_labels(pairs, spec.groups)
    groups, group_names = grouping.group_ids(labels)
    split = grouping.split_labels(pairs, groups, spec.split, spec.groups.by)
    stimulus, stimuli = grouping.stimulus_ids(pairs, spec.negatives)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        eeg_all = np.lib.format.open_memmap(tmp / "eeg.npy", mode="w+", dtype=np.float32, shape=(n, *eeg_shape))
        video_all = np.lib.format.open_memmap(tmp / "video.npy", mode="w+", dtype=np.uint8, shape=(n, *video_shape))
        row = 0
        previews = []
        for (kind, src), e in zip(sources, entries):
            k = len(e["pairs"])
            if k:
                eeg = np.load(src.folder / "eeg.npy", mmap_mode="r") if kind == "part" else src[0]
                video = np.load(src.folder / "video.npy", mmap_mode="r") if kind == "part" else src[1]
                perm = order[e["recording"]]
                eeg_all[row:row + k] = eeg if perm == sorted(perm) else np.asarray(eeg)[:, perm]
                video_all[row:row + k] = video
                if kind == "part" and len(previews) < spec.preview:
                    for shown in _load_previews(src.folder, e["pairs"], spec.preview - len(previews)):
                        previews.append({**shown, "eeg": shown["eeg"][perm]})
            e["rows"] = [row, row + k]
            row += k
        eeg_all.flush()
        video_all.flush()
        del eeg_all, video_all
        np.save(tmp / "groups.npy", groups)
        np.save(tmp / "stimulus.npy", stimulus)
        np.save(tmp / "split.npy", split)
        sfreq = spec.eeg.sfreq
        fps = spec.video.frames / spec.window.seconds
        meta = {
            "sfreq": sfreq, "channels": channels, "fps": fps,
            "window_seconds": spec.window.seconds, "frames_per_window": spec.video.frames,
            "groups_by": spec.groups.by, "group_names": group_names,
            "negatives_by": spec.negatives.by, "stimuli": stimuli,
            "split": spec.split.model_dump(mode="json"),
            "preprocessing": entries[0].get("preprocessing"),
            "spec": spec.model_dump(mode="json"),
            "sources": [{"recording": e["recording"], "entities": e["entities"],
                         "files": {str(p): sha256(p) for p in _rec(recordings, e["recording"]).files()},
                         "videos": e["video_hashes"]} for e in entries],
            "pairs": pairs,
            "versions": _versions(),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        report = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.time() - started, 2),
            "pairs": n, "split_sizes": {s: int((split == s).sum()) for s in ("train", "val", "test")},
            "recordings": [{k: v for k, v in e.items() if k != "pairs"} | {"pairs": len(e["pairs"])} for e in entries],
        }
        for r in report["recordings"]:
            r["windows_dropped_count"] = len(r["windows_dropped"])
        (tmp / REPORT).write_text(json.dumps(report, indent=1))
        if previews:
            preview_png.draw(previews, channels, sfreq, tmp / "preview.png")
        elif (out / "preview.png").is_file():  # every recording reused: the previous preview still shows them
            shutil.copy2(out / "preview.png", tmp / "preview.png")
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return report


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _rec(recordings: list[Recording], name: str) -> Recording:
    return next(r for r in recordings if r.name == name)


def _load_previews(folder: Path, pairs: list[dict], limit: int) -> list[dict]:
    path = folder / "previews.npz"
    if not path.is_file():
        return []
    with np.load(path) as z:
        out = []
        for i in range(min(limit, len(pairs))):
            if f"{i}_eeg" not in z:
                break
            out.append({"eeg": z[f"{i}_eeg"], "first": int(z[f"{i}_first"]), "window": z[f"{i}_window"].tolist(),
                        "frames": z[f"{i}_frames"], "times": z[f"{i}_times"], "pair": pairs[i]})
        return out
