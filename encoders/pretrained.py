"""Named pretrained weights: `pretrained: labram-base` finds the published file in the weights cache.

The cache is a folder ($PEFTZOO_WEIGHTS, else ~/.cache/peftzoo/weights) holding each checkpoint under
its publisher's file name (encoders/weights_table.py). Nothing is downloaded while building a
model: a missing file is one error that gives the command that fetches it, and a file whose sha256
disagrees with what its publisher gives is refused. `peftzoo weights` (peftzoo_tools/weights.py)
lists, locates, verifies and, only when asked, downloads them.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from pydantic import model_validator

from encoders.base import EncoderConfig
from encoders.weights_table import CHECKPOINTS, Checkpoint
from registry.errors import UserError, did_you_mean

ENV = "PEFTZOO_WEIGHTS"
DEFAULT_CACHE = "~/.cache/peftzoo/weights"

KNOWN: dict[str, Checkpoint] = {c.name: c for c in CHECKPOINTS}
"""Every known checkpoint by name (tests add entries here)."""


class WeightsError(UserError):
    """A named checkpoint that is unknown, not in the cache, or not the file its publisher released."""


def cache_dir() -> Path:
    """The weights cache: $PEFTZOO_WEIGHTS, else ~/.cache/peftzoo/weights."""
    return Path(os.environ.get(ENV) or DEFAULT_CACHE).expanduser()


def lookup(name: str) -> Checkpoint:
    """The known checkpoint `name`, or an error listing the known names."""
    try:
        return KNOWN[name]
    except KeyError:
        raise WeightsError(
            f"{name!r} is not a known pretrained checkpoint{did_you_mean(name, KNOWN)}; known: {', '.join(KNOWN)} "
            f"(peftzoo weights list); for another file give `checkpoint: PATH` instead"
        ) from None


def path_of(entry: Checkpoint) -> Path:
    return cache_dir() / entry.file


def download_command(entry: Checkpoint) -> str:
    """The shell command that puts `entry` where `pretrained:` looks for it."""
    folder, target = shlex.quote(str(cache_dir())), shlex.quote(str(path_of(entry)))
    return f"mkdir -p {folder} && curl -L --fail -o {target} {shlex.quote(entry.url)}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))  # size and mtime key the cache: a replaced file is hashed again


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


def published_hash(entry: Checkpoint) -> str | None:
    """What the publisher gives of the sha256: the full digest, its leading digits, or None."""
    return entry.sha256 or entry.sha256_prefix


def hash_matches(entry: Checkpoint, digest: str) -> bool | None:
    """Whether `digest` agrees with the published hash; None when none is published."""
    published = published_hash(entry)
    return None if published is None else digest.startswith(published.lower())


def mismatch_message(entry: Checkpoint, path: Path, digest: str) -> str:
    return (
        f"{path} has sha256 {digest}, but {entry.name}'s publisher gives {published_hash(entry)}: it is damaged "
        f"or another file; delete it and download it again: {download_command(entry)}"
    )


def torch_hub_copy(entry: Checkpoint) -> Path | None:
    """The same file in torch.hub's cache ($TORCH_HOME/hub/checkpoints), where torchvision's own
    `weights=` downloads put it, or None."""
    import torch.hub

    path = Path(torch.hub.get_dir()) / "checkpoints" / entry.file
    return path if path.is_file() else None


def resolve(name: str) -> Path:
    """The verified cache file of checkpoint `name`; an error with the download command when it is absent."""
    entry = lookup(name)
    path = path_of(entry)
    if not path.is_file():
        hub = torch_hub_copy(entry)
        if hub is not None:
            raise WeightsError(
                f"pretrained checkpoint {name!r} is not in the weights cache ({path} is missing), but torch.hub's "
                f"cache has it; link it there: mkdir -p {shlex.quote(str(cache_dir()))} && "
                f"ln -s {shlex.quote(str(hub))} {shlex.quote(str(path))}"
            )
        raise WeightsError(
            f"pretrained checkpoint {name!r} is not in the weights cache ({path} is missing; the cache is ${ENV}, "
            f"default {DEFAULT_CACHE}); nothing is downloaded while building a model. Download it with: "
            f"{download_command(entry)}   (or: peftzoo weights download {name})"
        )
    digest = file_sha256(path)
    if hash_matches(entry, digest) is False:
        raise WeightsError(mismatch_message(entry, path, digest))
    return path


class PretrainedConfig(EncoderConfig):
    """Encoder options of a family that has published weights: `pretrained` names one of them."""

    pretrained: str | bool | None = None
    """A known checkpoint, read from the weights cache (`peftzoo weights list`); true: this preset's
    own weights; None: `checkpoint` or the random initialization."""
    weights_family: ClassVar[str] = ""
    """The family (encoders/weights_table.py `family`) whose checkpoints fit these options."""
    default_pretrained: ClassVar[str | None] = None
    """What `pretrained: true` means for this preset (None: it has no published weights)."""
    no_weights_reason: ClassVar[str] = "it has no published weights"

    def pretrained_name(self) -> str | None:
        if self.pretrained is None or self.pretrained is False:
            return None
        if self.pretrained is True:
            if self.default_pretrained is None:
                raise ValueError(
                    f"pretrained: true names no checkpoint here ({self.no_weights_reason}); "
                    f"give one by name ({', '.join(self.fitting())}) or leave pretrained out"
                )
            return self.default_pretrained
        return self.pretrained

    @classmethod
    def fitting(cls) -> list[str]:
        return [c.name for c in KNOWN.values() if c.family == cls.weights_family]

    @model_validator(mode="after")
    def _one_known_source(self) -> PretrainedConfig:
        name = self.pretrained_name()
        if name is None:
            return self
        if self.checkpoint:
            raise ValueError(
                "give either `pretrained` (a named checkpoint from the weights cache) or `checkpoint` "
                "(a weights file path), not both"
            )
        if name not in KNOWN:
            raise ValueError(
                f"{name!r} is not a known pretrained checkpoint{did_you_mean(name, KNOWN)}; "
                f"for this encoder: {', '.join(self.fitting())} (peftzoo weights list)"
            )
        family = KNOWN[name].family
        if self.weights_family and family != self.weights_family:
            raise ValueError(
                f"{name!r} holds weights of a {family} encoder, not of this {self.weights_family} one; "
                f"for this encoder: {', '.join(self.fitting())}"
            )
        return self


def with_pretrained_file(config: EncoderConfig) -> EncoderConfig:
    """`config` with its named checkpoint turned into `checkpoint: <cache file>` (checked now), else unchanged.

    The copy records the file, not the name, so what is built from it (a bundle's encoder options
    without their checkpoint) no longer needs the weights cache.
    """
    name = config.pretrained_name() if isinstance(config, PretrainedConfig) else None
    if name is None:
        return config
    return config.model_copy(update={"checkpoint": str(resolve(name)), "pretrained": None})
