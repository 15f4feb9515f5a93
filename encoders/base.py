"""What every encoder is: a module returning pooled features, plus what strategies and the composer need.

Strategies read `blocks` (ordered, for last_k), `attention_modules()` (fused `qkv` and `proj` run
as module calls, so wrapping adapters take effect) and `bias_parameters()` (BitFit). The composer
checks `input_spec` against the data before any training step.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import os
from typing import ClassVar

import torch
from torch import nn

from encoders import channels as channel_names
from encoders.checkpoint import (
    CheckpointError,
    LoadReport,
    fit_keys,
    fmt_keys,
    likely_cause,
    load_into,
    nonfinite_keys,
    read_file,
    unwrap_container,
)
from encoders.video_preprocess import KINETICS_MEAN, KINETICS_STD, VideoPreprocess
from registry import encoder_contract
from registry.component import ComponentConfig
from registry.errors import UserError

logger = logging.getLogger(__name__)


class InputSpecError(UserError, ValueError):
    """Data that does not fit what the encoder was built (or pretrained) for."""


class EncoderConfig(ComponentConfig):
    """Options every encoder has."""

    checkpoint: str | None = None
    """Local weights file (.pth, .pt, .safetensors); None keeps the random initialization."""
    trust_checkpoint: bool = False
    """Allow full unpickling of a .pth/.pt file. Only for files you trust: unpickling can run code."""
    strict: bool = True
    """Refuse a checkpoint that leaves parameters at their initialization (beyond what the released
    weights lack by design); false accepts a partial load and logs what stayed random."""


def machine_memory_bytes() -> int | None:
    """Physical memory of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_parameter_memory(n_params: int, what: str) -> None:
    """Refuse an architecture whose float32 weights alone exceed this machine's memory, before allocating.

    Architecture options are checked in the config validators with a closed-form parameter count, so a
    typo such as `dim: 640000` is one located recipe error instead of an out-of-memory kill.
    """
    memory = machine_memory_bytes()
    need = 4 * n_params
    if memory is not None and need > memory:
        raise ValueError(
            f"{what} gives about {n_params:,.0f} parameters ({need / 2**30:,.1f} GiB in float32, before gradients "
            f"and optimizer state), more than this machine's {memory / 2**30:,.1f} GiB; choose a smaller architecture"
        )


def transformer_parameters(dim: int, depth: int, mlp_ratio: float) -> int:
    """Parameters of `depth` pre-norm transformer blocks of width `dim` (qkv, proj, MLP; norms and biases ignored)."""
    return int(depth * (4 + 2 * mlp_ratio) * dim * dim)


def drop_path_rates(last: float, depth: int) -> list[float]:
    """Stochastic depth per block, rising linearly from 0 at the first block to `last` at the last
    (the rule of LaBraM, timm and torchvision's Swin)."""
    return [last * i / max(depth - 1, 1) for i in range(depth)]


@dataclasses.dataclass(frozen=True)
class EEGInputSpec:
    """What an EEG encoder takes: microvolts at `sfreq`, whole patches, at most `max_patches`."""

    sfreq: float
    patch_samples: int
    max_patches: int

    def check(self, *, sfreq: float, channels: list[str], n_samples: int, encoder: str) -> None:
        if abs(float(sfreq) - self.sfreq) > 1e-6:
            raise InputSpecError(
                f"EEG data is sampled at {sfreq:g} Hz but {encoder} expects {self.sfreq:g} Hz; "
                f"resample the data to {self.sfreq:g} Hz (e.g. mne's raw.resample({self.sfreq:g}))"
            )
        seconds = n_samples / self.sfreq
        if n_samples % self.patch_samples:
            raise InputSpecError(
                f"EEG windows of {n_samples} samples ({seconds:g} s) are not a whole number of "
                f"{self.patch_samples}-sample patches for {encoder}; cut windows to a multiple of "
                f"{self.patch_samples / self.sfreq:g} s"
            )
        if n_samples // self.patch_samples > self.max_patches:
            raise InputSpecError(
                f"EEG windows of {seconds:g} s are longer than {encoder} allows "
                f"({self.max_patches * self.patch_samples / self.sfreq:g} s at most); cut shorter windows"
            )
        if n_samples == 0:
            raise InputSpecError(f"EEG windows are empty; {encoder} needs at least one patch")
        channel_names.positions(channels)


MIN_VIDEO_SIDE = 8
"""Frames smaller than this (pixels) are refused: upscaled to a video encoder's input they hold no picture."""
MAX_QUIET_UPSCALE = 2.0
"""Upscaling frames by more than this is said in a warning with the factor."""


@dataclasses.dataclass(frozen=True)
class VideoInputSpec:
    """What a video encoder takes after `preprocess`: (B, 3, frames, size, size), normalized."""

    frames: int
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: int | None = None

    def check(self, *, frame_shape: tuple[int, ...], encoder: str) -> None:
        if len(frame_shape) != 4 or frame_shape[-1] != 3:
            raise InputSpecError(
                f"video samples must be uint8 frames (F, H, W, 3) in RGB, got shape {tuple(frame_shape)} for {encoder}"
            )
        if min(frame_shape[:3]) < 1:
            raise InputSpecError(f"video samples of shape {tuple(frame_shape)} are empty")
        frames, height, width = frame_shape[:3]
        if min(height, width) < MIN_VIDEO_SIDE:
            raise InputSpecError(
                f"video frames of {height}x{width} pixels are below the {MIN_VIDEO_SIDE}-pixel floor; {encoder} would "
                f"upscale them to {self.size}x{self.size} from almost nothing: export the video at a usable resolution"
            )
        target = self.resize or round(self.size * 256 / 224)
        factor = target / min(height, width)
        if factor > MAX_QUIET_UPSCALE:
            logger.warning(
                "video frames of %dx%d pixels are upscaled x%.1f (short side to %d) for %s; export larger frames if "
                "you can",
                height,
                width,
                factor,
                target,
                encoder,
            )
        if frames < self.frames:
            logger.warning(
                "video samples have %d frames and %s takes %d: each frame is repeated about x%.1f",
                frames,
                encoder,
                self.frames,
                self.frames / frames,
            )


class Encoder(nn.Module, metaclass=abc.ABCMeta):
    """Base of all encoders. Subclasses set `modality`, `Config`, `description`, `feature_dim`."""

    modality: ClassVar[str]
    Config: ClassVar[type[EncoderConfig]] = EncoderConfig
    description: ClassVar[str] = ""
    feature_dim: int
    # Conformance kit hooks (docs/plugins.md), the same a plugin encoder declares:
    conformance_options: ClassVar[dict | None] = None
    """Architecture overrides for a small, fast build in the kit; None: the defaults."""
    conformance_reference: ClassVar[bool] = False
    """Whether the kit checks strategies on a small build of this encoder: it has every structure
    strategies target (blocks, attention with fused qkv and proj, biases, a final norm)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.cfg = config
        self.name = getattr(config, "name", None) or type(self).__name__
        self.load_report: LoadReport | None = None

    @classmethod
    def from_config(cls, config: EncoderConfig, *, name: str | None = None, **context) -> Encoder:
        model = cls(config)
        model.name = name or model.name
        if config.checkpoint:
            model.load_report = model.load_checkpoint(
                config.checkpoint, trust=config.trust_checkpoint, strict=config.strict
            )
            logger.info("%s: loaded %s (%s)", type(model).__name__, config.checkpoint, model.load_report)
        return model

    # -- checkpoints -----------------------------------------------------------------------------
    def convert_state_dict(self, obj: object) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Map a file's content to this module's keys; returns (state, ignored keys).

        The default takes a plain state dict or one under 'state_dict', 'model' or 'module'. Encoders
        with official formats override this.
        """
        obj = unwrap_container(obj)
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise InputSpecError(f"checkpoint for {type(self).__name__} is not a state dict of tensors")
        return dict(obj), []

    def expected_missing(self) -> tuple[str, ...]:
        """Key fragments a released checkpoint lacks by design (they keep their initialization)."""
        return ()

    def load_checkpoint(self, path: str, *, trust: bool = False, strict: bool = True) -> LoadReport:
        """Load a weights file, strictly: keys are fitted (wrapper prefixes stripped, logged), NaN/inf
        weights are refused, and parameters left at their initialization beyond `expected_missing`
        are an error unless `strict` is False."""
        what = f"{self.name} checkpoint {str(path)!r}"
        own = set(self.state_dict())
        obj = read_file(path, trust=trust)
        try:
            state, ignored, stripped = fit_keys(obj, self.convert_state_dict, own)
        except CheckpointError as exc:
            raise CheckpointError(f"{what}: {exc}") from None
        if stripped:
            logger.info("%s: stripped the wrapper prefix %r from its keys to fit the model", what, stripped)
        bad = nonfinite_keys(state)
        if bad:
            raise CheckpointError(
                f"{what} holds NaN or inf weights in {fmt_keys(bad)} (a diverged training run?); use another checkpoint"
            )
        try:
            report = load_into(self, state)
        except CheckpointError as exc:
            raise CheckpointError(f"{what}: {exc}") from None
        report.ignored, report.stripped_prefix = ignored, stripped
        surprising = [k for k in report.missing if not any(f in k for f in self.expected_missing())]
        if surprising and strict:
            file_keys = sorted(unwrap_container(obj)) if isinstance(unwrap_container(obj), dict) else []
            raise CheckpointError(
                f"{what} leaves {len(surprising)} of the model's {len(self.state_dict())} weights at their random "
                f"initialization "
                f"({fmt_keys(surprising)}); {likely_cause(report, len(own), file_keys)}. Give this encoder's own "
                f"weights, or set `strict: false` on the encoder to accept a partial load"
            )
        if surprising or report.unexpected:
            logger.warning("%s: %s", what, report)
        return report

    # -- what strategies need --------------------------------------------------------------------
    # `blocks`: every encoder has an ordered sequence of its transformer blocks, input to output
    # (an nn.ModuleList attribute, or a property where blocks sit inside stages, as in Swin).
    blocks: nn.ModuleList | list[nn.Module]

    # The contract's defaults, implemented once in registry/encoder_contract.py (plugins that do not
    # subclass Encoder get the same through adapters/strategies/encoder_parts.py).
    def attention_modules(self) -> list[tuple[str, nn.Module]]:
        """(name, module) of every attention with fused `qkv` and `proj` sub-modules."""
        return encoder_contract.attention_modules(self)

    def bias_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Every bias term (names ending in 'bias' such as `proj.bias`, `q_bias`)."""
        return encoder_contract.bias_parameters(self)

    def final_norm(self) -> nn.Module | None:
        """The norm after the last block (LaBraM's fc_norm, Swin's norm), trained by last_k."""
        return encoder_contract.final_norm(self)

    # Parameters before the first block (layer 0 of layer-wise lr decay); the rest outside blocks
    # is layer L+1, as in LaBraM's official optimizer factory (which puts time_embed there too).
    embedding_prefixes: tuple[str, ...] = ("patch_embed.", "cls_token", "pos_embed", "mask_token", "channel_embed")

    def layer_ids(self) -> dict[str, int]:
        """Layer index of every parameter for layer-wise lr decay: 0 stem, i+1 block i, L+1 the rest."""
        return encoder_contract.layer_ids(self, self.blocks, self.embedding_prefixes)


class EEGEncoder(Encoder):
    """EEG encoders: `encoder(x, channels=names)` with x (B, C, T) in microvolts."""

    modality: ClassVar[str] = "eeg"

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        self._positions_cache: dict[tuple[str, ...], torch.Tensor] = {}

    @property
    @abc.abstractmethod
    def input_spec(self) -> EEGInputSpec:
        """What the encoder takes: sampling rate, patch length, longest window."""

    def channel_positions(self, channels: list[str] | tuple[str, ...], device: torch.device) -> torch.Tensor:
        """Positions (C,) of the channel names in the 10-20 list, validated once per channel set."""
        key = tuple(channels)
        cached = self._positions_cache.get(key)
        if cached is None:
            cached = torch.tensor(channel_names.positions(list(key)), dtype=torch.long)
            self._positions_cache[key] = cached
        return cached.to(device)

    def check_input(self, x: torch.Tensor, channels: list[str] | tuple[str, ...]) -> None:
        """Shape checks that are free (no device sync): (B, C, T), C names, whole patches."""
        name = self.name
        if x.ndim != 3:
            raise InputSpecError(f"{name} takes EEG of shape (batch, channels, samples), got {tuple(x.shape)}")
        if x.shape[1] != len(channels):
            raise InputSpecError(f"{name}: EEG has {x.shape[1]} channels but {len(channels)} channel names were given")
        spec = self.input_spec
        spec.check(sfreq=spec.sfreq, channels=list(channels), n_samples=x.shape[2], encoder=name)


class VideoEncoder(Encoder):
    """Video encoders: `encoder(clip)` with clip (B, 3, T, H, W) normalized; `preprocess` makes it."""

    modality: ClassVar[str] = "video"

    @property
    @abc.abstractmethod
    def input_spec(self) -> VideoInputSpec:
        """What `preprocess` produces: frames, crop size, mean and std."""

    @property
    def preprocessing(self) -> VideoPreprocess:
        """The preprocessing `input_spec` defines; its uint8 part (sampling, resize, crop) can run once
        ahead of training (peftzoo_engine/video_cache.py), leaving only `normalize` per batch."""
        spec = self.input_spec
        return VideoPreprocess(frames=spec.frames, size=spec.size, resize=spec.resize, mean=spec.mean, std=spec.std)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, T, H, W, 3) or (T, H, W, 3) to this encoder's normalized input."""
        return self.preprocessing(frames)


__all__ = [
    "EEGEncoder",
    "EEGInputSpec",
    "Encoder",
    "EncoderConfig",
    "InputSpecError",
    "KINETICS_MEAN",
    "KINETICS_STD",
    "VideoEncoder",
    "VideoInputSpec",
]
