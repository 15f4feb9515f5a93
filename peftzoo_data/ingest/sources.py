"""The recordings a spec names: file globs or a BIDS dataset, with their subject/session/block."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import logging
import re
from pathlib import Path

from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.spec import EventsSpec, IngestSections, RecordingsSpec

logger = logging.getLogger("peftzoo_data.ingest")

BIDS_EXTENSIONS = [".edf", ".bdf", ".vhdr", ".set", ".fif"]
# Files a glob may catch that are not recordings themselves (companions, sidecars, stimuli).
NOT_RECORDINGS = {
    ".vmrk",
    ".fdt",
    ".json",
    ".tsv",
    ".csv",
    ".txt",
    ".md",
    ".mp4",
    ".avi",
    ".mov",
    ".mkv",
    ".webm",
    ".png",
    ".jpg",
    ".npy",
    ".npz",
}
# A companion that shares its header's stem: BrainVision's binary .eeg beside its .vhdr.
COMPANION_OF = {".eeg": ".vhdr"}


@dataclasses.dataclass
class Recording:
    name: str
    """Unique, readable: the path relative to the spec folder (BIDS: its basename)."""
    path: Path
    entities: dict[str, str]
    bids_path: object | None = None
    events: EventsSpec | None = None
    """The event source of the recording's set (None: EventsSpec's defaults)."""
    duplicates_allowed: bool = False

    def files(self) -> list[Path]:
        """The files whose contents make this recording: the file and its companions (same stem:
        BrainVision .vmrk/.eeg, EEGLAB .fdt; BIDS sidecars events.tsv, channels.tsv, ...)."""
        stem = self.path.name.split(".")[0]
        out = {self.path}
        out |= {p for p in self.path.parent.glob(glob.escape(stem) + ".*") if p.is_file()}
        if self.bids_path is not None:
            base = stem.rsplit("_", 1)[0]
            out |= {p for p in self.path.parent.glob(glob.escape(base) + "_*") if p.is_file()}
        return sorted(out)

    def data_file(self) -> Path:
        """The file holding the samples: BrainVision's binary beside its header, else the file itself."""
        if self.path.suffix.lower() == ".vhdr":
            from peftzoo_data.ingest.integrity import brainvision_data_file

            data = brainvision_data_file(self.path)
            if data.is_file():
                return data
        return self.path


def find(spec: IngestSections | RecordingsSpec, base: Path) -> list[Recording]:
    """Every recording of every set, each read once: the same file reached twice (two patterns, two
    sets, a symlink or a symlink loop) is kept once with a warning; a copy of a recording's data under
    another name is refused unless its set says `duplicates: allow`."""
    sets = spec.sets() if isinstance(spec, IngestSections) else [(spec, EventsSpec())]
    out: list[Recording] = []
    for rs, events in sets:
        out += [dataclasses.replace(r, events=events) for r in _one_set(rs, base)]
    return _deduplicate(out)


def _deduplicate(recordings: list[Recording]) -> list[Recording]:
    by_path: dict[Path, list[Recording]] = {}
    for r in recordings:
        by_path.setdefault(r.path.resolve(), []).append(r)
    kept = []
    for same in by_path.values():
        # the shortest of its names: rec/sub-01.edf, not rec/loop/loop/sub-01.edf through a symlink loop
        first = min(same, key=lambda r: (len(Path(r.name).parts), r.name))
        kept.append(first)
        others = list(dict.fromkeys(r.name for r in same if r is not first))
        if len(same) > 1:
            logger.warning(
                "recording %s was matched %d more time(s) (%s): it is read once",
                first.name,
                len(same) - 1,
                ", ".join(others[:3]) + (" ..." if len(others) > 3 else ""),
            )
    hash_ahead([f for r in kept for f in r.files()])
    by_content: dict[str, Recording] = {}
    for r in kept:
        digest = sha256(r.data_file())
        other = by_content.get(digest)
        if other is None:
            by_content[digest] = r
        elif r.duplicates_allowed:
            logger.warning(
                "recording %s has the same data as %s; both are kept (duplicates: allow)", r.name, other.name
            )
        else:
            raise IngestError(
                f"recordings: {r.name!r} holds the same data as {other.name!r} (a copy under another "
                f"name would count one session twice and can leak across the split); remove one, "
                f"or set duplicates: allow in its recording set"
            )
    return kept


def _one_set(spec: RecordingsSpec, base: Path) -> list[Recording]:
    if spec.bids is not None:
        recordings = _bids(spec, base)
    else:
        recordings = _globbed(spec, base)
    return [dataclasses.replace(r, duplicates_allowed=spec.duplicates == "allow") for r in recordings]


def _globbed(spec: RecordingsSpec, base: Path) -> list[Recording]:
    """The recordings the patterns match, once per match (find's _deduplicate says what was doubled)."""
    found: dict[Path, int] = {}
    for pattern in spec.files or []:
        full = pattern if Path(pattern).expanduser().is_absolute() else str(base / pattern)
        matches = sorted(Path(p) for p in glob.glob(str(Path(full).expanduser()), recursive=True))
        if not matches:
            raise IngestError(f"recordings.files: {pattern!r} matches no file (looked in {base}); check the pattern")
        for p in matches:
            if not p.is_file() or p.suffix.lower() in NOT_RECORDINGS:
                continue
            header = COMPANION_OF.get(p.suffix.lower())
            if header and p.with_suffix(header).is_file():
                continue
            found[p] = found.get(p, 0) + 1
        if not any(p for p in matches if p in found):
            raise IngestError(
                f"recordings.files: {pattern!r} matches only files that are not recordings "
                f"({[p.name for p in matches[:4]]}); point it at the EEG files"
            )
    regex = re.compile(spec.entities) if spec.entities else None
    out = []
    for p in found:
        entities: dict[str, str] = {}
        if regex is not None:
            m = regex.search(p.name)
            if m is None:
                raise IngestError(
                    f"recordings.entities: {spec.entities!r} does not match file name {p.name!r}; fix the regex or the "
                    f"files"
                )
            entities = {k: v for k, v in m.groupdict().items() if v is not None}
        name = str(p.relative_to(base)) if p.is_relative_to(base) else str(p)
        out += [Recording(name, p, entities)] * found[p]
    return out


def _bids(spec: RecordingsSpec, base: Path) -> list[Recording]:
    import mne_bids

    root = Path(spec.bids.root).expanduser()
    root = root if root.is_absolute() else base / root
    if not root.is_dir():
        raise IngestError(f"recordings.bids.root: {str(root)!r} is not a folder")
    paths = mne_bids.find_matching_paths(
        root,
        subjects=spec.bids.subjects,
        sessions=spec.bids.sessions,
        tasks=spec.bids.task,
        datatypes=spec.bids.datatype,
        suffixes=spec.bids.datatype,
        extensions=BIDS_EXTENSIONS,
    )
    if not paths:
        raise IngestError(
            f"recordings.bids: no {spec.bids.datatype} recording under {root} for task {spec.bids.task!r}; check root, "
            f"task, subjects"
        )
    out = []
    for bp in sorted(paths, key=lambda b: str(b.fpath)):
        entities = {"subject": bp.subject, "session": bp.session, "block": bp.run, "task": bp.task}
        out.append(
            Recording(bp.fpath.name, Path(bp.fpath), {k: str(v) for k, v in entities.items() if v is not None}, bp)
        )
    return out


_HASHES: dict[tuple, str] = {}


def hash_ahead(paths: list[Path]) -> None:
    """Every file's sha256 computed now by one thread per core, and remembered for sha256(), while this
    thread imports the EEG readers the files need (eeg.import_readers). hashlib and file reads release
    the GIL, so hashing runs beside the imports and the files are hashed in parallel (a recording's
    sha256 is needed before any is ingested: for the duplicate check and the reuse key). A file that
    cannot be read is skipped here; sha256() then raises where it always did."""
    todo = list(dict.fromkeys(paths))
    if not todo:
        return
    from concurrent.futures import ThreadPoolExecutor

    from peftzoo_data.ingest.cores import default_workers
    from peftzoo_data.ingest.eeg import import_readers

    def quietly(path: Path) -> None:
        with contextlib.suppress(OSError):
            sha256(path)

    with ThreadPoolExecutor(min(len(todo), default_workers())) as pool:
        hashed = [pool.submit(quietly, path) for path in todo]
        import_readers(todo)
        for done in hashed:
            done.result()


def sha256(path: Path) -> str:
    """The file's sha256, remembered per (path, size, mtime) within this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]
