"""A spec to an arrays directory: every recording ingested (or reused), assembled, moved into place.

Output (docs/reference/ingest-output.md: an arrays directory plus provenance): eeg.npy, video.npy,
meta.json, groups.npy, stimulus.npy,
split.npy, ingest_report.json, preview.png. The directory is built beside `out`
and renamed into place when complete, so `out` is never half-written. Each recording's result is
keyed by the spec's processing keys and the sha256 of its files: a rerun reuses a recording whose key
(and whose videos' hashes) still match, from the previous output or from the parts an interrupted
run left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
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
from peftzoo_data.ingest import integrity
from peftzoo_data.ingest import preview as preview_png
from peftzoo_data.ingest.cores import default_workers
from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.recording import Part, ingest_recording
from peftzoo_data.ingest.sources import Recording, find, sha256
from peftzoo_data.ingest.spec import IngestSpec

logger = logging.getLogger("peftzoo_data.ingest")

FORMAT = 1  # bump when the meaning of a part changes; old parts are then recomputed
REPORT = "ingest_report.json"


def recording_key(rec: Recording, spec: IngestSpec, base: Path) -> str:
    """Hash of what decides a recording's pairs: processing keys + its files' contents."""
    from peftzoo_data.ingest.recording import events_of

    events = events_of(rec, spec)
    processing = spec.model_dump(mode="json", include={"window", "eeg", "video", "preview"})
    processing["events"] = events.model_dump(mode="json")
    files = {p.name: sha256(p) for p in rec.files()}
    if events.source == "csv":
        from peftzoo_data.ingest.recording import _format, _template_fields

        path = _format(events.file, _template_fields(rec), "events.file", base)
        files["events_file"] = sha256(path) if path.is_file() else "missing"
    payload = {"format": FORMAT, "processing": processing, "files": files, "entities": rec.entities}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _versions() -> dict[str, str | None]:
    """Versions of the packages that made the output: from the modules already imported where they
    say (importlib.metadata searches every installed package, a few hundredths of a second each)."""
    import sys
    from importlib import metadata

    out = {}
    for name in ("peftzoo", "mne", "mne-bids", "av", "numpy"):
        module = sys.modules.get(name.replace("-", "_"))
        if isinstance(getattr(module, "__version__", None), str):
            out[name] = module.__version__
            continue
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
        try:
            tmp.mkdir(parents=True)
            np.save(tmp / "eeg.npy", part.eeg)
            np.save(tmp / "video.npy", part.video)
            info = {"channels": part.channels, "pairs": part.pairs, "report": part.report, "video_hashes": video_hashes}
            (tmp / "part.json").write_text(json.dumps(info))
            shown = {f"{i}_{k}": v for i, p in enumerate(part.previews) for k, v in p.items() if k != "pair"}
            np.savez(tmp / "previews.npz", **shown)
        except BaseException:  # a full disk or Ctrl-C: no half-written part is left to be mistaken for one
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(self.folder, ignore_errors=True)
        os.replace(tmp, self.folder)

    def load(self) -> dict | None:
        """The part's info when it is whole (its json readable, its arrays as long as its pairs), else
        None with a warning: a damaged or truncated part is a cache entry, recomputed, never an error."""
        if not (self.folder / "part.json").is_file():
            return None
        try:
            info = json.loads((self.folder / "part.json").read_text())
            _check_rows(self.folder, len(info["pairs"]))
            info["report"], info["channels"], info["video_hashes"]  # noqa: B018 (the keys a reuse reads)
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            logger.warning("the finished part %s is damaged (%s); its recording is ingested again", self.folder, exc)
            shutil.rmtree(self.folder, ignore_errors=True)
            return None
        return info


def _check_rows(folder: Path, n: int) -> None:
    """ValueError unless eeg.npy and video.npy in `folder` open (memory-mapped: a truncated file
    does not) and hold n rows each."""
    for name in ("eeg.npy", "video.npy"):
        rows = np.load(folder / name, mmap_mode="r").shape[0]
        if rows < n:
            raise ValueError(f"{name} holds {rows} rows, {n} expected")


def _valid_hashes(hashes: dict[str, str]) -> bool:
    return all(Path(p).is_file() and sha256(Path(p)) == h for p, h in hashes.items())


class Previous:
    """A finished previous output in `out`, read once: its report, pairs and arrays (memory-mapped).

    A previous output that is damaged (a json cut short, an array truncated or edited) is not
    reused: every recording is ingested again, with a warning."""

    def __init__(self, out: Path):
        self.out, self.entries, self.pairs, self.channels = out, {}, [], []
        if not (out / REPORT).is_file():
            return
        try:
            report = json.loads((out / REPORT).read_text())
            meta = json.loads((out / "meta.json").read_text())
            pairs, channels = meta["pairs"], meta["channels"]
            _check_rows(out, len(pairs))
            entries = {e.get("key"): e for e in report.get("recordings", [])}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError) as exc:
            logger.warning("the previous output in %s is damaged (%s); every recording is ingested again", out, exc)
            return
        self.entries, self.pairs, self.channels = entries, pairs, channels

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


# File systems of the kernel, not of storage: writing there fails in odd ways or does harm.
VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_out(out: Path) -> Path:
    """`out` as an absolute path where an ingest output can be written, or an IngestError that says
    why not before anything is read: inside a kernel file system, below a file, not writable, or an
    existing folder that is not an ingest output."""
    out = Path(os.path.abspath(out.expanduser()))
    real = out.resolve()
    if any(real == root or real.is_relative_to(root) for root in VIRTUAL_ROOTS):
        raise IngestError(
            f"--out {str(out)!r} is inside {real.parts[0]}{real.parts[1]}, a kernel file system, not "
            f"storage; choose a folder on a disk"
        )
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / REPORT).is_file())):
        raise IngestError(
            f"--out {str(out)!r} exists and is not an ingest output; choose a new folder (nothing was written)"
        )
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise IngestError(
            f"--out {str(out)!r} lies below {str(ancestor)!r}, which is a file, not a folder; choose another --out"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise IngestError(f"--out {str(out)!r}: {str(ancestor)!r} is not writable; choose a folder you can write to")
    return out


@contextlib.contextmanager
def _disk_errors(out: Path, work: Path):
    """An OSError while writing (a full disk, a quota, a read-only mount) as one IngestError naming
    the path; what was half-written is removed by the writer, finished recordings stay in `work`."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        where = exc.filename or out.parent
        kept = (
            f"; the recordings finished so far are kept in {work} and a rerun continues from them"
            if _finished(work)
            else ""
        )
        reason = "no space left on the device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise IngestError(
            f"ingest stopped writing {str(where)!r}: {reason}; free space (or choose another --out) and "
            f"run it again. --out was left as it was{kept}"
        ) from None


WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}


def _finished(work: Path) -> bool:
    return work.is_dir() and any((p / "part.json").is_file() for p in work.iterdir())


def _tidy(work: Path) -> None:
    """Leave no parts folder behind when nothing in it is finished (an ingest that failed early)."""
    if work.is_dir():
        for p in work.glob("*.tmp"):
            shutil.rmtree(p, ignore_errors=True)
        if not _finished(work):
            shutil.rmtree(work, ignore_errors=True)


def run(spec: IngestSpec, base: Path, out: Path, quiet: bool = False, workers: int | None = 1) -> dict:
    """Ingest everything the spec names into `out`; returns the report. `workers`: recordings
    processed at once (None: one per CPU core; see map_recordings).

    Checked before anything is decoded: `out` (check_out) and every recording's header against its
    data (integrity.check). A full disk is one message (_disk_errors); a parts folder in which nothing
    was finished is not left behind (_tidy)."""
    out = check_out(out)
    recordings = find(spec, base)
    for rec in recordings:
        integrity.check(rec.path)
    work = out.parent / f".{out.name}.ingest-parts"
    try:
        with _disk_errors(out, work):
            return _run(spec, base, out, recordings, work, quiet, workers)
    finally:
        _tidy(work)


def _run(
    spec: IngestSpec, base: Path, out: Path, recordings: list[Recording], work: Path, quiet: bool, workers: int | None
) -> dict:
    """Every recording ingested (or reused) under `work`, then assembled into `out`."""
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    entries: list[dict] = []
    sources: list[
        tuple[str, object]
    ] = []  # per recording: ("part", Stored) or ("previous", (eeg, video, row channels))
    previous_output = Previous(out)
    todo: list[tuple[int, Recording, str]] = []  # (position, recording, key) still to compute
    for rec in recordings:
        key = recording_key(rec, spec, base)
        previous = previous_output.get(key)
        if previous is not None:
            entry, eeg, video, row_channels = previous
            entries.append({**entry, "reused": True})
            sources.append(("previous", (eeg, video, row_channels)))
            continue
        stored = Stored(work / key)
        info = stored.load()  # None when absent, or damaged (then recomputed)
        if info is not None and _valid_hashes(info["video_hashes"]):
            entries.append(
                {
                    **info["report"],
                    "key": key,
                    "channels": info["channels"],
                    "pairs": info["pairs"],
                    "video_hashes": info["video_hashes"],
                    "reused": True,
                }
            )
            sources.append(("part", stored))
            continue
        todo.append((len(entries), rec, key))
        entries.append({})
        sources.append(("part", stored))
    failed = {}
    for position, result in map_recordings(todo, spec, base, work, workers, quiet):
        if isinstance(result, str):
            failed[position] = result
        else:
            entries[position] = result
    failures = [failed[p] for p in sorted(failed)]
    if failures:
        raise _failed(failures)
    unchanged = _unchanged(out, spec, entries, sources)
    if unchanged is not None:
        shutil.rmtree(work, ignore_errors=True)
        return unchanged
    return _assemble(spec, out, work, recordings, entries, sources, started)


def _ingest_one(rec: Recording, spec: IngestSpec, base: Path, key: str, work: Path, progress: bool) -> dict | str:
    """One recording ingested and stored under `work`: its report entry, or the IngestError's text."""
    try:
        part = ingest_recording(rec, spec, base, progress=progress)
    except IngestError as exc:
        return str(exc)
    hashes = {v: sha256(Path(v)) for v in part.report.get("videos", [])}
    Stored(work / key).save(part, hashes)
    return {
        **part.report,
        "key": key,
        "channels": part.channels,
        "pairs": part.pairs,
        "video_hashes": hashes,
        "reused": False,
    }


def _worker_start(threads: int) -> None:
    """A worker process: its numerical libraries limited to `threads` threads, so that workers x
    threads does not exceed the cores (MNE, scipy and numpy's BLAS would each start one per core)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:  # without threadpoolctl, the variables above reach libraries loaded from here on
        pass
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class _NoBar:
    """The progress bar of a quiet run."""

    def set_postfix_str(self, text: str) -> None:
        pass

    def update(self) -> None:
        pass

    def close(self) -> None:
        pass


def map_recordings(
    todo: list[tuple[int, Recording, str]], spec: IngestSpec, base: Path, work: Path, workers: int | None, quiet: bool
):
    """Yield (position, entry or error text) for every recording in `todo`, computed by up to
    `workers` processes at once (forked where the platform allows: no second start-up), in any
    order. One recording, or workers=1, runs in this process."""
    cores = default_workers()
    workers = max(1, min(workers or cores, len(todo)))
    if quiet or not todo:  # tqdm.auto imports asyncio: a tenth of a second a quiet command need not spend
        bar = _NoBar()
    else:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="ingest", unit="recording", disable=None)
    try:
        if workers == 1:
            for position, rec, key in todo:
                bar.set_postfix_str(rec.name[-40:])
                yield position, _ingest_one(rec, spec, base, key, work, not quiet)
                bar.update()
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        threads = max(1, cores // workers)
        with ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context(method), initializer=_worker_start, initargs=(threads,)
        ) as pool:
            futures = {
                pool.submit(_ingest_one, rec, spec, base, key, work, False): position for position, rec, key in todo
            }
            for future in as_completed(futures):
                yield futures[future], future.result()
                bar.update()
    finally:
        bar.close()


def _failed(failures: list[str]) -> IngestError:
    """The recordings' errors together, each said once (one missing clip fails every recording showing it)."""
    lines = "\n".join(f"  {f}" for f in dict.fromkeys(failures))
    return IngestError("ingest stopped; nothing was written to --out:\n" + lines)


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


def _arrays(kind: str, src) -> tuple[np.ndarray, np.ndarray]:
    """(eeg, video) rows of one recording, memory-mapped."""
    if kind == "part":
        return np.load(src.folder / "eeg.npy", mmap_mode="r"), np.load(src.folder / "video.npy", mmap_mode="r")
    return src[0], src[1]


def _no_pairs(entries: list[dict]) -> IngestError:
    reasons: dict[str, int] = {}
    for e in entries:
        for d in e["windows_dropped"]:
            reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
    top = sorted(reasons.items(), key=lambda kv: -kv[1])[:5]
    return IngestError(
        "no window could be made from any recording; nothing was written. Reasons: "
        + "; ".join(f"{n} x {r}" for r, n in top)
    )


def _common_channels(with_pairs: list[dict]) -> list[str]:
    """The first recording's channels, when every recording has the same set (in any order)."""
    channels = list(with_pairs[0]["channels"])
    odd = [e for e in with_pairs if set(e["channels"]) != set(channels)]
    if odd:
        common = sorted(set.intersection(*(set(e["channels"]) for e in with_pairs)))
        detail = "; ".join(f"{e['recording']}: {len(e['channels'])} channels" for e in [with_pairs[0], *odd][:4])
        differ = sorted(set(channels) ^ set(odd[0]["channels"]))
        raise IngestError(
            f"recordings have different EEG channels ({detail}; {differ} are not in both); "
            f"set eeg.channels to the ones all share: {common}"
        )
    return channels


def _row_orders(sources: list, entries: list[dict], channels: list[str]) -> dict[str, list[int]]:
    """Per recording, the permutation that puts its rows in `channels` order (another cap's file
    layout). A reused recording's rows are already in the previous output's order."""
    order = {}
    for (kind, src), e in zip(sources, entries):
        if e["pairs"]:
            rows = src[2] if kind == "previous" else e["channels"]
            order[e["recording"]] = [rows.index(c) for c in channels]
    return order


def _shapes(sources: list, entries: list[dict]) -> tuple[tuple, tuple]:
    """(eeg row shape, video row shape), the same for every recording, else an IngestError."""
    shapes: dict[tuple, str] = {}
    eeg_shape: tuple = ()
    for (kind, src), e in zip(sources, entries):
        if e["pairs"]:
            eeg, video = _arrays(kind, src)
            shapes.setdefault(video.shape[1:], e["recording"])
            eeg_shape = eeg.shape[1:]
    if len(shapes) > 1:
        raise IngestError(
            f"videos of different shapes across recordings ({dict((str(k), v) for k, v in shapes.items())}); "
            f"set video.size: [height, width] to resize and centre-crop every video to one shape"
        )
    return eeg_shape, next(iter(shapes))


GROUPINGS = ("recording", "subject", "session", "block", "stimulus")


def _check_enough_groups(pairs: list[dict], groups: np.ndarray, spec: IngestSpec) -> None:
    """A split by fraction needs a group for training and one for each held-out share; when there are
    too few, the advice names groupings that would give more, never the one already used."""
    split = spec.split
    needed = 1 + bool(split.val) + bool(split.test)
    have = len(np.unique(groups))
    if split.by != "fraction" or have >= needed:
        return

    def count(by: str) -> int:
        values = {p["stim"] if by == "stimulus" else p.get(by) for p in pairs}
        return len(values - {None})

    finer = [g for g in GROUPINGS if g != spec.groups.by and count(g) >= needed]
    advice = f"group by {' or '.join(f'groups.by: {g}' for g in finer)}, or " if finer else ""
    raise IngestError(
        f"split: val {split.val} / test {split.test} need {needed} groups, but groups.by: "
        f"{spec.groups.by} gives {have}; {advice}set split.val / split.test to 0, "
        f"or ingest more recordings"
    )


def _check_overlap_across_splits(pairs: list[dict], split: np.ndarray, seconds: float) -> None:
    """Windows of one recording whose EEG overlaps may not sit on two sides of a split: the shared
    samples would be trained on and then tested. Refused with the count and a pair named."""
    by_recording: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        by_recording.setdefault(p["recording"], []).append(i)
    count, example = 0, None
    for rows in by_recording.values():
        rows = sorted(rows, key=lambda i: pairs[i]["start"])
        for a, i in enumerate(rows):
            for j in rows[a + 1 :]:
                if pairs[j]["start"] >= pairs[i]["start"] + seconds - 1e-9:
                    break
                if split[i] != split[j]:
                    count += 1
                    example = example or (i, j)
    if count:
        i, j = example
        raise IngestError(
            f"{count} pair(s) of overlapping windows lie on two sides of the split, e.g. {pairs[i]['recording']} at "
            f"{pairs[i]['start']} s ({str(split[i])}) and {pairs[j]['start']} s ({str(split[j])}): their shared EEG "
            f"would leak into evaluation; keep each recording on one side (groups.by: recording, or split by "
            f"subject/block), or space the events or window.stride so windows do not overlap"
        )


def _labels(spec: IngestSpec, pairs: list[dict]) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(group id per pair, group names, split label per pair), checked for leakage."""
    labels = grouping.group_labels(pairs, spec.groups)
    groups, group_names = grouping.group_ids(labels)
    _check_enough_groups(pairs, groups, spec)
    split = grouping.split_labels(pairs, groups, spec.split, spec.groups.by)
    _check_overlap_across_splits(pairs, split, spec.window.seconds)
    return groups, group_names, split


def _write_rows(
    tmp: Path, spec: IngestSpec, entries: list[dict], sources: list, order: dict, shapes: tuple
) -> list[dict]:
    """eeg.npy and video.npy in `tmp`, every recording's rows in turn (sets each entry's `rows`); the
    previews of newly ingested recordings, rows in the output's channel order."""
    n = sum(len(e["pairs"]) for e in entries)
    eeg_all = np.lib.format.open_memmap(tmp / "eeg.npy", mode="w+", dtype=np.float32, shape=(n, *shapes[0]))
    video_all = np.lib.format.open_memmap(tmp / "video.npy", mode="w+", dtype=np.uint8, shape=(n, *shapes[1]))
    row = 0
    previews: list[dict] = []
    for (kind, src), e in zip(sources, entries):
        k = len(e["pairs"])
        if k:
            eeg, video = _arrays(kind, src)
            perm = order[e["recording"]]
            eeg_all[row : row + k] = eeg if perm == sorted(perm) else np.asarray(eeg)[:, perm]
            video_all[row : row + k] = video
            if kind == "part" and len(previews) < spec.preview:
                for shown in _load_previews(src.folder, e["pairs"], spec.preview - len(previews)):
                    previews.append({**shown, "eeg": shown["eeg"][perm]})
        e["rows"] = [row, row + k]
        row += k
    eeg_all.flush()
    video_all.flush()
    del eeg_all, video_all
    return previews


def _meta(
    spec: IngestSpec,
    recordings: list[Recording],
    entries: list[dict],
    channels: list[str],
    group_names: list[str],
    pairs: list[dict],
) -> dict:
    return {
        "sfreq": spec.eeg.sfreq,
        "channels": channels,
        "fps": spec.video.frames / spec.window.seconds,
        "window_seconds": spec.window.seconds,
        "frames_per_window": spec.video.frames,
        "groups_by": spec.groups.by,
        "group_names": group_names,
        "split": spec.split.model_dump(mode="json"),
        "preprocessing": entries[0].get("preprocessing"),
        "spec": spec.model_dump(mode="json"),
        "sources": [
            {
                "recording": e["recording"],
                "entities": e["entities"],
                "files": {str(p): sha256(p) for p in _rec(recordings, e["recording"]).files()},
                "videos": e["video_hashes"],
            }
            for e in entries
        ],
        "pairs": pairs,
        "versions": _versions(),
    }


def _report(entries: list[dict], split: np.ndarray, started: float) -> dict:
    report = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.time() - started, 2),
        "pairs": int(len(split)),
        "split_sizes": {s: int((split == s).sum()) for s in ("train", "val", "test")},
        "recordings": [{k: v for k, v in e.items() if k != "pairs"} | {"pairs": len(e["pairs"])} for e in entries],
    }
    for r in report["recordings"]:
        r["windows_dropped_count"] = len(r["windows_dropped"])
    return report


def _into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder to `out`, the previous output moved aside first and removed after."""
    os.chmod(tmp, 0o777 & ~_umask())
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _assemble(spec, out, work, recordings, entries, sources, started) -> dict:
    """The recordings' rows, in order, into one arrays directory written beside `out` and renamed into place."""
    if sum(len(e["pairs"]) for e in entries) == 0:
        raise _no_pairs(entries)
    channels = _common_channels([e for e in entries if e["pairs"]])
    order = _row_orders(sources, entries, channels)
    shapes = _shapes(sources, entries)
    pairs = [p for e in entries for p in e["pairs"]]
    groups, group_names, split = _labels(spec, pairs)
    stimulus, stimuli = grouping.stimulus_ids(pairs, spec.negatives)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        previews = _write_rows(tmp, spec, entries, sources, order, shapes)
        np.save(tmp / "groups.npy", groups)
        np.save(tmp / "stimulus.npy", stimulus)
        np.save(tmp / "split.npy", split)
        meta = _meta(spec, recordings, entries, channels, group_names, pairs)
        meta.update(negatives_by=spec.negatives.by, stimuli=stimuli)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        report = _report(entries, split, started)
        (tmp / REPORT).write_text(json.dumps(report, indent=1))
        if previews:
            preview_png.draw(previews, channels, spec.eeg.sfreq, tmp / "preview.png")
        elif (out / "preview.png").is_file():  # every recording reused: the previous preview still shows them
            shutil.copy2(out / "preview.png", tmp / "preview.png")
        _into_place(tmp, out)
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
            out.append(
                {
                    "eeg": z[f"{i}_eeg"],
                    "first": int(z[f"{i}_first"]),
                    "window": z[f"{i}_window"].tolist(),
                    "frames": z[f"{i}_frames"],
                    "times": z[f"{i}_times"],
                    "pair": pairs[i],
                }
            )
        return out
