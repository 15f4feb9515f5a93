"""The run directory (docs/reference/run-directory.md): recipe.yaml, run.json, metrics.jsonl, weights, checkpoints.

The one module that writes it and reads it: every reader (recipes.load, evaluate, the doctor, compare,
sweeps, --resume) goes through `read_info`, `read_metrics`, `read_recipe` and the path helpers, so a
damaged file is one DamagedRunFile naming the file, the line and the fix wherever it is read. While a
process trains into a run directory it holds RUN/.lock (`RunDir._hold`): a second `--resume` is refused.
A full disk while writing is one DiskFull naming the path, with nothing partial left.

Loggers beside metrics.jsonl (train.loggers: TensorBoard) are training callbacks (peftzoo_engine/loggers/);
`loggers` here are sinks a caller may attach: each gets every metrics line (`log(record)`) and the end
(`finish(info, recipe)`).

Every file is written atomically (temporary file, then rename), so a crash never leaves a
half-written file; metrics.jsonl is appended line by line and flushed. Under torchrun only the main
process writes: the others hold a `RunDir.follower` of the same directory that keeps its state in
memory and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import platform
import secrets
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import filelock
import yaml

from registry import yamlio
from registry.errors import UserError

RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
RECIPE = "recipe.yaml"
WEIGHTS = "trainable.safetensors"
BEST_WEIGHTS = "best.safetensors"
CHECKPOINT = Path("checkpoints") / "last.pt"
TENSORBOARD = "tensorboard"
LOCK = ".lock"


class RunLocked(UserError):
    """Another process is training into the run directory."""


class DamagedRunFile(UserError):
    """A file of a run directory that cannot be read as what the run wrote: it names the file, the line and the fix."""


PACKAGES = ("peftzoo", "torch", "torchvision", "timm", "peft", "numpy", "pydantic", "safetensors")


class DiskFull(UserError):
    """A write failed for want of space (ENOSPC, EDQUOT): nothing partial was left; what was written before stays."""

    def __init__(self, path: Path):
        self.path = Path(path)
        super().__init__(
            f"no space left on the disk to write {self.path} (nothing partial was left there); "
            f"free space on it (df -h {self.path.parent}) or write elsewhere, then run the command again"
        )


FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `path` whole or not at all (temporary file, fsync, rename); a full disk is one DiskFull."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        if exc.errno in FULL_DISK:
            raise DiskFull(path) from None
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in FULL_DISK:
            raise DiskFull(path) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _logger_names(recipe_yaml: str) -> list[str]:
    recipe = (yaml.safe_load(recipe_yaml) or {}) if recipe_yaml else {}
    return (recipe.get("train") or {}).get("loggers") or ["jsonl"]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def git_state() -> dict[str, Any]:
    """Commit and dirtiness of the source tree peftzoo runs from (None outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if commit else None}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class RunDir:
    """A new run directory under `root`, named <recipe name>-<UTC time>-<random>."""

    def __init__(self, root: str | Path, recipe_name: str, existing: Path | None = None, writes: bool = True):
        self.writes = writes
        """False in the processes of a distributed run other than the main one."""
        if existing is not None:
            self.path, self.run_id = Path(existing).resolve(), Path(existing).name
        else:
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
            self.run_id = f"{recipe_name}-{stamp}-{secrets.token_hex(3)}"
            self.path = Path(root).expanduser().resolve() / self.run_id
            self.path.mkdir(parents=True, exist_ok=False)
            (self.path / CHECKPOINT.parent).mkdir()
        self._lock: filelock.BaseFileLock | None = None
        if writes and existing is None:
            self._hold()
        self.info: dict[str, Any] = {}
        self.loggers: list = []
        """Sinks a caller attached beside metrics.jsonl, main process only."""
        self._recipe: dict[str, Any] = {}

    @classmethod
    def open(cls, path: Path, writes: bool = True) -> RunDir:
        """An existing run directory, to resume."""
        run = cls(path.parent, "", existing=path, writes=writes)
        if writes:
            run._hold()
        try:
            run.info = read_info(run.path)
        except BaseException:
            run.release()
            raise
        return run

    def _hold(self) -> None:
        """Take the run's lock (RUN/.lock, an OS file lock the system drops when the process dies), so that
        no second process trains into this directory: RunLocked when another process holds it."""
        lock = filelock.FileLock(str(self.path / LOCK))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise RunLocked(
                f"{self.path} is being trained by another process (it holds {self.path / LOCK}); "
                "wait until that process ends, or stop it (Ctrl-C or kill PID writes a checkpoint) "
                "and resume then"
            ) from None
        self._lock = lock

    @staticmethod
    def refuse_if_locked(path: Path) -> None:
        """RunLocked when another process trains into `path` now (checked before a resume reads anything;
        `open` takes the lock itself)."""
        probe = RunDir(Path(path).parent, "", existing=Path(path), writes=False)
        probe._hold()
        probe.release()

    def release(self, remove: bool = False) -> None:
        """Let go of the run's lock (at the end of training); `remove` also deletes the lock file, for a
        run directory about to be removed."""
        if self._lock is not None:
            if remove:
                Path(self._lock.lock_file).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    @classmethod
    def follower(cls, path: Path) -> RunDir:
        """The run directory the main process made, seen from another process: it writes nothing."""
        return cls(path.parent, "", existing=path, writes=False)

    def resume(self, step: int) -> None:
        """Continue this run from a checkpoint at `step`: later metrics lines (written after it) are dropped."""
        recipe_path = self.path / RECIPE
        recipe_yaml = recipe_path.read_text() if recipe_path.is_file() else ""
        board = self.path / TENSORBOARD
        if self.writes and board.exists() and not board.is_dir() and "tensorboard" in _logger_names(recipe_yaml):
            raise UserError(
                f"{board} is a file, but the recipe's train.loggers has tensorboard, which writes its "
                f"events into a directory of that name; move the file away and resume again"
            )
        if self.writes and self.metrics_path.is_file():
            # A last line cut by the crash that stopped the run is after the checkpoint's step: dropped with the rest.
            kept = [line for line in read_metrics(self.path, partial_last_line_ok=True) if line.get("step", 0) <= step]
            atomic_write(self.metrics_path, "".join(json.dumps(line) + "\n" for line in kept))
        self.info.setdefault("resumed", []).append({"time": now(), "from_step": step})
        self.info.update(status="running", end_time=None)
        self.write_info()

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def weights_path(self) -> Path:
        return weights_path(self.path)

    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_path(self.path)

    def start(self, recipe_yaml: str, extra: dict[str, Any]) -> None:
        if self.writes:
            atomic_write(self.path / RECIPE, recipe_yaml)
        self.info = {
            "run_id": self.run_id,
            "status": "running",
            "start_time": now(),
            "end_time": None,
            "git": git_state(),
            "versions": versions(),
            **extra,
        }
        self._recipe = yaml.safe_load(recipe_yaml) or {}
        self.write_info()

    def write_info(self) -> None:
        if self.writes:
            atomic_write(self.path / RUN_JSON, json.dumps(self.info, indent=2, default=str) + "\n")

    def finish(self, status: str, **extra: Any) -> None:
        self.info.update(status=status, end_time=now(), **extra)
        self.write_info()
        try:
            for sink in self.loggers:
                sink.finish(self.info, self._recipe)
        finally:
            self.loggers = []
            self.release()

    def log(self, record: dict[str, Any]) -> None:
        if not self.writes:
            return
        with open(self.metrics_path, "ab", buffering=0) as f:
            size = f.seek(0, os.SEEK_END)
            try:
                rest = memoryview((json.dumps(record) + "\n").encode())
                while rest:
                    rest = rest[f.write(rest) :]
            except OSError as exc:
                f.truncate(size)  # no cut line left behind: the file ends with the last whole line
                if exc.errno in FULL_DISK:
                    raise DiskFull(self.metrics_path) from None
                raise
        for sink in self.loggers:
            sink.log(record)


# -- reading a run directory ---------------------------------------------------------------------
def is_run(path: Path) -> bool:
    """A run directory: it holds run.json and recipe.yaml."""
    return (Path(path) / RUN_JSON).is_file() and (Path(path) / RECIPE).is_file()


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT


def weights_path(run_dir: Path, which: str = "last") -> Path:
    """The run's best (train.select) or last trainable weights."""
    return Path(run_dir) / (BEST_WEIGHTS if which == "best" else WEIGHTS)


def _kind(value: Any) -> str:
    return (
        "null"
        if value is None
        else {dict: "object", list: "list", str: "string", bool: "boolean"}.get(type(value), "number")
    )


def _read_text(path: Path, fix: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedRunFile(f"{path} is not UTF-8 text (byte {exc.start}); the file is damaged: {fix}") from None
    except OSError as exc:
        raise DamagedRunFile(f"{path} could not be read ({exc.strerror or exc}); {fix}") from None


def read_info(run_dir: Path, missing_ok: bool = False) -> dict[str, Any]:
    """run.json as a mapping; {} when it is absent and `missing_ok`; DamagedRunFile when it is not a JSON object."""
    path = Path(run_dir) / RUN_JSON
    fix = "restore it from a copy, or train the run again (start it without --resume)"
    if not path.is_file():
        if missing_ok:
            return {}
        raise DamagedRunFile(
            f"{path} is missing, so {str(Path(run_dir))!r} is not a run directory; "
            "give the directory that `run:` printed"
        )
    text = _read_text(path, fix)
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DamagedRunFile(
            f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}); the file is damaged: {fix}"
        ) from None
    if not isinstance(info, dict):
        raise DamagedRunFile(f"{path}, line 1: a JSON {_kind(info)}, not an object; the file is damaged: {fix}")
    return info


def read_metrics(run_dir: Path, partial_last_line_ok: bool = False) -> list[dict[str, Any]]:
    """metrics.jsonl's lines (JSON objects), in order; [] when the run logged nothing.

    The run writes whole lines, each ending in a newline. A last line without its newline that does not
    parse is still being written (a running run: `partial_last_line_ok`, it is left out) or was cut by a
    crash (DamagedRunFile, as is any other line that is not a JSON object).
    """
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    text = _read_text(path, "move the file away (the run's metrics are then lost) or train the run again")
    rows = text.split("\n")
    lines: list[dict[str, Any]] = []
    for number, row in enumerate(rows, start=1):
        if not row.strip():
            continue
        last = number == len(rows)  # the text after the last newline
        try:
            line = json.loads(row)
        except json.JSONDecodeError as exc:
            if last and partial_last_line_ok:
                break
            what = "cut short (a write interrupted by a crash)" if last else f"not valid JSON ({exc.msg})"
            if last:
                fix = (
                    f"delete line {number} (`sed -i '{number}d' {path}`), or resume the run "
                    f"(python -m recipes.run --resume {Path(run_dir)}), which rewrites it"
                )
            else:
                fix = "train the run again, or delete the line if it is not needed"
            raise DamagedRunFile(f"{path}, line {number}: {what}; {fix}") from None
        if not isinstance(line, dict):
            raise DamagedRunFile(
                f"{path}, line {number}: a JSON {_kind(line)}, not an object; every line of "
                f"metrics.jsonl is one object: delete the line (`sed -i '{number}d' {path}`) "
                "or train the run again"
            )
        lines.append(line)
    return lines


def read_recipe(run_dir: Path) -> dict[str, Any]:
    """recipe.yaml as the run wrote it (fully resolved) as a mapping, unvalidated; DamagedRunFile when
    it is missing, not YAML or not a mapping. recipes.schema validates it where a model is built."""
    path = Path(run_dir) / RECIPE
    fix = "restore it from a copy (it is the run's resolved recipe), or train the run again"
    if not path.is_file():
        raise DamagedRunFile(f"{path} is missing; give a run directory (the one `run:` printed)")
    try:
        raw = yamlio.load(_read_text(path, fix))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise DamagedRunFile(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc}); {fix}") from None
    if not isinstance(raw, dict):
        raise DamagedRunFile(
            f"{path}, line 1: a YAML {_kind(raw)}, not a mapping of sections; the file is damaged: {fix}"
        )
    return raw
