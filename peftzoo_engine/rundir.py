"""The run directory (design section 5): recipe.yaml, run.json, metrics.jsonl, weights, checkpoints.

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
import json
import os
import platform
import secrets
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

PACKAGES = ("peftzoo", "torch", "torchvision", "timm", "peft", "numpy", "pydantic", "safetensors")


def atomic_write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
            (self.path / "checkpoints").mkdir()
        self.info: dict[str, Any] = {}
        self.loggers: list = []
        """Sinks a caller attached beside metrics.jsonl, main process only."""
        self._recipe: dict[str, Any] = {}

    @classmethod
    def open(cls, path: Path, writes: bool = True) -> "RunDir":
        """An existing run directory, to resume."""
        run = cls(path.parent, "", existing=path, writes=writes)
        run.info = json.loads((run.path / "run.json").read_text())
        return run

    @classmethod
    def follower(cls, path: Path) -> "RunDir":
        """The run directory the main process made, seen from another process: it writes nothing."""
        return cls(path.parent, "", existing=path, writes=False)

    def resume(self, step: int) -> None:
        """Continue this run from a checkpoint at `step`: later metrics lines (written after it) are dropped."""
        if self.writes and self.metrics_path.is_file():
            kept = [line for line in self.metrics_path.read_text().splitlines() if json.loads(line).get("step", 0) <= step]
            atomic_write(self.metrics_path, "".join(line + "\n" for line in kept))
        self.info.setdefault("resumed", []).append({"time": now(), "from_step": step})
        self.info.update(status="running", end_time=None)
        self.write_info()

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def weights_path(self) -> Path:
        return self.path / "trainable.safetensors"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    def start(self, recipe_yaml: str, extra: dict[str, Any]) -> None:
        if self.writes:
            atomic_write(self.path / "recipe.yaml", recipe_yaml)
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
            atomic_write(self.path / "run.json", json.dumps(self.info, indent=2, default=str) + "\n")

    def finish(self, status: str, **extra: Any) -> None:
        self.info.update(status=status, end_time=now(), **extra)
        self.write_info()
        for sink in self.loggers:
            sink.finish(self.info, self._recipe)
        self.loggers = []

    def log(self, record: dict[str, Any]) -> None:
        if not self.writes:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        for sink in self.loggers:
            sink.log(record)
