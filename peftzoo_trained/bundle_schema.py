"""What a bundle may hold, checked before anything in it is read: the manifest and bundle.json.

A bundle is something people send each other, so reading one trusts nothing in it:
- the manifest lists exactly the bundle's files (plain names in its top folder, each a regular file,
  no link), and every file's size and sha256 is checked before any of them is read;
- bundle.json is validated against `BundleInfo` (pydantic), and nothing in it may turn on
  unpickling (`trust_checkpoint`, or any other `trust*` flag) or point an encoder at a file: the
  loader reads the bundle's own safetensors files, and `strategies.pt` only through torch's
  weights-only reader.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator

from registry.errors import UserError

FORMAT = "peftzoo.bundle"
FORMAT_VERSION = 1
REQUIRED_FILES = frozenset({"bundle.json", "eeg_encoder.safetensors", "video_encoder.safetensors", "heads.safetensors"})
OPTIONAL_FILES = frozenset({"recipe.yaml", "strategies.pt"})
OUTPUT_FOLDERS = frozenset({"eval"})
"""What commands write into a bundle after export (`recipes.evaluate BUNDLE` writes eval/): not part of it."""
AGAIN = "the bundle was changed or damaged: export it again from its run"


class BundleError(UserError):
    """A bundle that is damaged, edited, or holds what a bundle may not."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Model):
    run: str
    weights: Literal["best", "last"]
    weights_sha256: str | None = None


class DataInfo(_Model):
    channels: list[str] | None = None
    sfreq: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    n_samples: StrictInt | None = Field(default=None, gt=0)
    frame_shape: list[StrictInt] | None = None

    @field_validator("frame_shape")
    @classmethod
    def _positive(cls, value):
        if value is not None and (len(value) != 4 or any(v <= 0 for v in value)):
            raise ValueError(f"must be 4 positive sizes (frames, height, width, 3), got {value}")
        return value


class Component(BaseModel):
    """A component spec: its registry `name` and options (checked by the component's own Config on build)."""

    model_config = ConfigDict(extra="allow")
    name: str


class Side(_Model):
    encoder: Component
    plain: StrictBool
    strategies: list[Component]
    merged: list[str]
    head: Component
    preprocessing: dict[str, Any] = {}

    @field_validator("encoder")
    @classmethod
    def _no_checkpoint(cls, value: Component):
        if (value.model_extra or {}).get("checkpoint") is not None:
            raise ValueError(
                "names a checkpoint file; a bundle's encoder weights are its own "
                "<side>_encoder.safetensors, so `checkpoint` must be null"
            )
        return value


class BundleInfo(_Model):
    format: Literal["peftzoo.bundle"]
    format_version: Literal[1]
    name: str
    created: str
    source: Source
    embed_dim: StrictInt = Field(gt=0)
    loss: Component
    data: DataInfo
    versions: dict[str, Any]
    eeg: Side
    video: Side


def trust_flags(value: Any, where: str = "") -> list[str]:
    """Dotted keys of every `trust*` flag set (truthy) anywhere in `value`."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if re.match(r"trust", str(key), re.IGNORECASE) and item not in (False, None, 0, "", "false", "False"):
                found.append(here)
            found += trust_flags(item, here)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += trust_flags(item, f"{where}[{i}]")
    return found


def validate_info(raw: dict, file: Path) -> BundleInfo:
    """bundle.json checked: no trust flag (refused, never ignored silently), then the schema."""
    if raw.get("format") != FORMAT or raw.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{file} is not a {FORMAT} v{FORMAT_VERSION} bundle (found {raw.get('format')} "
            f"v{raw.get('format_version')}); export it again with this version"
        )
    flags = trust_flags(raw)
    if flags:
        raise BundleError(
            f"{file} sets {', '.join(flags)}: a bundle may not turn on unpickling (it would let the "
            f"bundle run code on this machine), so the flag is refused, not followed; a bundle's "
            f"weights are safetensors and need no trust. Export the bundle again from its run"
        )
    try:
        return BundleInfo.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise BundleError(f"{file}: {loc}: {first['msg']}{more}; {AGAIN}") from None


def read_manifest(path: Path) -> dict[str, dict]:
    """The manifest's files, checked to be exactly the bundle's files; raises BundleError otherwise."""
    file = path / "manifest.json"
    files = _manifest_files(path, file)
    for name, entry in files.items():
        _check_entry(file, name, entry)
    missing = sorted(REQUIRED_FILES - set(files))
    if missing:
        raise BundleError(f"{file} does not list {', '.join(missing)}; {AGAIN}")
    _check_listed_exactly(path, files)
    return files


def _manifest_files(path: Path, file: Path) -> dict:
    """manifest.json's `files` mapping, read without following a link; a non-empty mapping or BundleError."""
    if not file.is_file() or file.is_symlink():
        raise BundleError(f"{file} is missing; {path} is not a complete bundle: export it again")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{file} cannot be read as JSON ({exc}); {AGAIN}") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{file} lists no files; {AGAIN}")
    return files


def _check_entry(file: Path, name, entry) -> None:
    """One listed file: a plain name in the bundle's own folder, of a known bundle file, with sha256 and size."""
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", "..", "manifest.json"):
        raise BundleError(f"{file} lists {name!r}, which is not a file in the bundle's own folder; {AGAIN}")
    if name not in REQUIRED_FILES | OPTIONAL_FILES:
        raise BundleError(
            f"{file} lists {name!r}, which is not a bundle file (a bundle holds "
            f"{', '.join(sorted(REQUIRED_FILES | OPTIONAL_FILES))}); {AGAIN}"
        )
    size = entry.get("bytes") if isinstance(entry, dict) else None
    if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and type(size) is int):
        raise BundleError(f"{file}: the entry of {name!r} needs `sha256` and `bytes`; {AGAIN}")


def _check_listed_exactly(path: Path, files: dict) -> None:
    """The folder holds exactly the listed files (beside the manifest and evaluate's output folder), each a
    regular file: nothing unlisted is read, nothing listed is missing, no link leads out of the bundle."""
    present = {}
    for entry in path.iterdir():
        output = entry.name in OUTPUT_FOLDERS and entry.is_dir() and not entry.is_symlink()
        if entry.name == "manifest.json" or output:
            continue
        present[entry.name] = entry
    unlisted = sorted(set(present) - set(files))
    if unlisted:
        raise BundleError(f"{path} holds {', '.join(unlisted)}, which its manifest does not list; {AGAIN}")
    absent = sorted(set(files) - set(present))
    if absent:
        raise BundleError(f"{path / absent[0]} is missing from the bundle; {AGAIN}")
    for entry in present.values():
        if entry.is_symlink() or not entry.is_file():
            raise BundleError(
                f"{entry} is not a regular file (a link or a folder); a bundle holds only its own files; {AGAIN}"
            )
