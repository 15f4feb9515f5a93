"""Reading weights from local files, safely and strictly, and reporting what did not match.

Weights are never downloaded. The format is told by the file's content, never by its name: a
safetensors header (8-byte length, then JSON) is read with safetensors; a torch zip archive or a
bare pickle with `torch.load(weights_only=True)` (which also rebuilds the plain records of
SAFE_GLOBALS), and a file that needs full unpickling (which can run arbitrary code) is refused
unless the caller explicitly trusts it. Empty, text, truncated and unknown files are refused with
what they are.

Keys are made to fit by stripping wrapper prefixes that training code adds (`module.` from DDP,
`model.`, `backbone.`, `encoder.`, and combinations of them) when that makes more keys fit; a load
that still leaves parameters at their initialization is refused unless the encoder says
`strict: false`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from registry.errors import UserError

WRAPPER_PREFIXES = ("module.", "model.", "backbone.", "encoder.")
"""Prefixes that wrappers add to every key: DDP/DataParallel, Lightning and timm-style `model`, mmaction2, ..."""
MAX_STRIPPED = 3


SAFE_GLOBALS = [argparse.Namespace]
"""Classes that training scripts save beside the weights and that unpickle without running code: the
command-line `args` of BEiT-style `save_model` (LaBraM's labram-base.pth, MAE, DeiT), a bag of attributes."""


class CheckpointError(UserError):
    """A checkpoint file that is missing, unreadable or of the wrong layout."""


# -- reading ---------------------------------------------------------------------------------------
def sniff(path: Path) -> str:
    """The file's format from its first bytes: safetensors, zip, pickle, text, empty or unknown."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4096)
    if size == 0:
        return "empty"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 0 < header_len <= 100_000_000:
            return "safetensors"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"  # torch.save(..., _use_new_zipfile_serialization=False) and plain pickles
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return "unknown"
        text = head[: exc.start].decode("utf-8")
    return "text" if text.isprintable() or all(c.isprintable() or c.isspace() for c in text) else "unknown"


def read_file(path: str | Path, *, trust: bool = False) -> Any:
    """The object stored in a checkpoint file (a state dict or a dict that holds one)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a directory; give the path of a weights file inside it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; give the path of a local weights file")
    kind = sniff(path)
    size = path.stat().st_size
    if kind == "empty":
        raise CheckpointError(
            f"checkpoint {str(path)!r} is empty (0 bytes): the download or copy did not finish; fetch it again"
        )
    if kind == "text":
        with open(path, "rb") as f:
            start = f.read(60).decode("utf-8", "replace").splitlines()[0] if size else ""
        hint = (
            "a git-lfs pointer: run `git lfs pull`"
            if start.startswith("version https://git-lfs")
            else "an HTML error page or a note?"
        )
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a text file (it starts {start!r}), not weights ({hint}); "
            f"give a .safetensors, .pth or .pt weights file"
        )
    if kind == "unknown":
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a weights file peftzoo can read (neither safetensors, a torch zip "
            f"archive nor a pickle, {size:,} bytes); give a .safetensors, .pth or .pt file"
        )
    if kind == "safetensors":
        return _read_safetensors(path, size)
    if kind == "zip":
        if not zipfile.is_zipfile(path):
            raise CheckpointError(
                f"checkpoint {str(path)!r} is a truncated or damaged torch archive ({size:,} bytes, no zip directory "
                f"at its end); "
                f"the download or copy did not finish: fetch it again"
            )
        with zipfile.ZipFile(path) as archive:
            if not any(n.endswith("data.pkl") for n in archive.namelist()):
                raise CheckpointError(
                    f"checkpoint {str(path)!r} is a zip archive but not a torch checkpoint (no data.pkl; a .npz?); "
                    f"save the weights with torch.save or safetensors"
                )
    try:
        # a file object: torch.load would pick its reader by a .safetensors name
        with open(path, "rb") as f, torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(f, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if trust:
            raise CheckpointError(
                f"checkpoint {str(path)!r} could not be unpickled: {str(exc).splitlines()[0]}"
            ) from None
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds Python objects beyond tensors, and unpickling them can run "
            f"arbitrary code; if you trust the file, set `trust_checkpoint: true` for this encoder "
            f"({str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or damaged ({reason}); fetch or save it again"
        ) from None


def _read_safetensors(path: Path, size: int) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a truncated or damaged safetensors file ({size:,} bytes: {exc}); fetch or "
            f"save it again"
        ) from None


# -- fitting keys ----------------------------------------------------------------------------------
CONTAINER_KEYS = ("state_dict", "model", "module")
"""Where training scripts (mmaction2, timm, DeepSpeed, DDP wrappers) keep the state dict in a checkpoint."""


def unwrap_container(obj: Any, keys: tuple[str, ...] = CONTAINER_KEYS) -> Any:
    """The state dict inside a training checkpoint: under the first of `keys` that holds a dict, else `obj`."""
    if isinstance(obj, dict):
        for key in keys:
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


def _strip_once(state: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """`state` with the wrapper prefix most of its keys start with removed, or None when none does."""
    for prefix in WRAPPER_PREFIXES:
        carrying = sum(k.startswith(prefix) for k in state)
        if carrying and carrying * 2 >= len(state):
            return prefix, {k.removeprefix(prefix): v for k, v in state.items()}
    return None


def fit_keys(
    obj: Any, convert: Callable[[Any], tuple[dict[str, torch.Tensor], list[str]]], own: set[str]
) -> tuple[dict[str, torch.Tensor], list[str], str]:
    """(state, ignored keys, stripped prefixes) of the conversion that fits most of `own`.

    Wrapper prefixes are stripped one at a time (`module.model.` takes two) and a candidate is kept
    only when it fits strictly more keys, so official layouts that `convert` already handles win.
    """
    raw = unwrap_container(obj)
    if not isinstance(raw, dict):
        raise CheckpointError(
            f"the file holds a {type(raw).__name__}, not a state dict (a mapping of names to tensors)"
        )
    best = (*convert(obj), "")
    best_fit = len(own & best[0].keys())
    if best_fit == len(own):
        return best
    stripped, current = "", raw
    for _ in range(MAX_STRIPPED):
        step = _strip_once(current)
        if step is None:
            break
        prefix, current = step
        stripped += prefix
        try:
            state, ignored = convert(current)
        except UserError:
            continue
        fit = len(own & state.keys())
        if fit > best_fit:
            best, best_fit = (state, ignored, stripped), fit
    return best


def nonfinite_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """Floating tensors of `state` that hold NaN or inf."""
    return [k for k, v in state.items() if torch.is_floating_point(v) and not torch.isfinite(v).all()]


@dataclasses.dataclass
class LoadReport:
    """Keys of the model the file did not fill, and keys of the file the model did not take."""

    missing: list[str]
    unexpected: list[str]
    ignored: list[str] = dataclasses.field(default_factory=list)
    stripped_prefix: str = ""
    """Wrapper prefix removed from the file's keys to make them fit ('' when none)."""

    def __str__(self) -> str:
        stripped = f"; stripped prefix {self.stripped_prefix!r}" if self.stripped_prefix else ""
        return (
            f"missing: {fmt_keys(self.missing)}; unexpected: {fmt_keys(self.unexpected)}; "
            f"ignored: {len(self.ignored)} keys{stripped}"
        )


def fmt_keys(keys: list[str], limit: int = 8) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:limit]) + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_into(model: nn.Module, state: dict[str, torch.Tensor]) -> LoadReport:
    """Non-strict load with shape checks: a shape mismatch is an error, never a silent skip."""
    own = model.state_dict()
    bad = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if bad:
        raise CheckpointError(
            "checkpoint does not fit this architecture (check the architecture options): " + "; ".join(bad[:5])
        )
    result = model.load_state_dict(state, strict=False)
    return LoadReport(missing=list(result.missing_keys), unexpected=list(result.unexpected_keys))


def likely_cause(report: LoadReport, n_own: int, sample_file_keys: list[str]) -> str:
    """A guess at why keys did not fit, for the error message."""
    if len(report.missing) >= n_own:
        shown = ", ".join(sample_file_keys[:3]) or "none"
        return (
            f"none of its keys fit (the file has e.g. {shown}): it is likely the weights of another model, "
            f"or of this one under a wrapper prefix not stripped here"
        )
    return (
        "the file is likely of another variant or a partial save (a different depth, a head-only or adapter-only file)"
    )
