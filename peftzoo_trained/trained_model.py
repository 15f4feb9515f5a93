"""`TrainedModel`: a trained dual encoder for inference (embeddings, similarities, retrieval), whether it
came from a run directory (peftzoo_trained/loading.py) or a bundle (peftzoo_trained/bundle.py)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from registry.component import name_of
from registry.errors import UserError


class Retrieved(NamedTuple):
    scores: torch.Tensor
    """(Q, k) similarities, best first."""
    indices: torch.Tensor
    """(Q, k) gallery rows, best first."""


class TrainedModel:
    """A dual-encoder model for inference: embeddings, similarities and retrieval, on one device."""

    def __init__(
        self,
        model,
        *,
        source: Path,
        weights: str,
        weights_path: Path | None,
        recipe=None,
        data_info: dict | None = None,
        device: torch.device,
        name: str,
    ):
        self.model = model.to(device).eval()
        self.source, self.weights, self.weights_path, self.recipe, self.device, self.name = (
            source,
            weights,
            weights_path,
            recipe,
            device,
            name,
        )
        info = data_info or {}
        self.channels: list[str] | None = list(info["channels"]) if info.get("channels") else None
        """The training data's EEG channel names, the default of `embed_eeg`."""
        self.sfreq: float | None = info.get("sfreq")
        self.n_samples: int | None = info.get("n_samples")
        self.frame_shape: list[int] | None = info.get("frame_shape")
        self.data_info = info

    def __repr__(self) -> str:
        return f"TrainedModel({self.name!r} from {str(self.source)!r}, {self.weights} weights, on {self.device})"

    @property
    def embed_dim(self) -> int:
        return int(
            self.model.eeg.head(torch.zeros(1, self.model.eeg.encoder.feature_dim, device=self.device)).shape[-1]
        )

    # -- embeddings ------------------------------------------------------------------------------
    @torch.no_grad()
    def embed_eeg(
        self,
        x,
        channels: list[str] | None = None,
        batch_size: int = 64,
        progress: bool | None = None,
        sfreq: float | None = None,
    ) -> torch.Tensor:
        """L2-normalized embeddings (N, D) of EEG windows (N, C, T) in microvolts at the encoder's
        sampling rate (a numpy array, memory-mapped or not, or a tensor; one window (C, T) gives (1, D)).

        `channels` name the C rows; default the training data's. Another order or a subset is
        matched by name by the encoder; names it cannot place are an error. `sfreq`, when given, is
        checked against the encoder's rate (an error that says how to resample).
        """
        channels = list(channels) if channels is not None else self.channels
        if channels is None:
            raise UserError(f"{self.source}: the training data's channel names are not recorded; pass channels=[...]")
        x = _as_batched(x, 3, "EEG", "(N, channels, samples)")
        if x.shape[1] != len(channels):
            raise UserError(
                f"EEG has {x.shape[1]} channels but {len(channels)} channel names are given"
                f"{' (the training data has these)' if channels is self.channels else ''}"
            )
        encoder = self.model.eeg.encoder
        spec = encoder.input_spec  # the encoder contract's check (docs/plugins.md), plugin encoders included
        spec.check(sfreq=spec.sfreq, channels=list(channels), n_samples=x.shape[2], encoder=name_of(encoder))
        if sfreq is not None:
            encoder.input_spec.check(sfreq=sfreq, channels=channels, n_samples=x.shape[2], encoder=name_of(encoder))

        def one(batch: np.ndarray | torch.Tensor, start: int) -> torch.Tensor:
            t = (
                batch.float() if torch.is_tensor(batch) else torch.from_numpy(np.array(batch, dtype=np.float32))
            )  # a copy: memmaps are read-only
            bad = (~torch.isfinite(t)).flatten(1).any(1)
            if bad.any():
                rows = (torch.nonzero(bad).flatten() + start).tolist()
                raise UserError(
                    f"EEG windows {rows[:10]}{' ...' if len(rows) > 10 else ''} hold NaN or inf; clean or drop them"
                )
            return self.model.eeg(t.to(self.device), channels=channels)

        return self._batched(x, one, batch_size, progress, "EEG")

    @torch.no_grad()
    def embed_video(self, frames, batch_size: int = 16, progress: bool | None = None) -> torch.Tensor:
        """L2-normalized embeddings (N, D) of uint8 RGB clips (N, F, H, W, 3); the video encoder's
        own preprocessing (frame sampling, resize, crop, normalization) is applied."""
        frames = _as_batched(frames, 5, "video", "(N, frames, height, width, 3)")
        if frames.shape[-1] != 3 or frames.dtype not in (np.uint8, torch.uint8, np.dtype(np.uint8)):
            raise UserError(
                f"video must be uint8 RGB frames (N, frames, height, width, 3), got {frames.dtype} "
                f"{tuple(frames.shape)}"
            )
        encoder = self.model.video.encoder
        encoder.input_spec.check(frame_shape=tuple(frames.shape[1:]), encoder=name_of(encoder))

        def one(batch, start: int) -> torch.Tensor:
            t = batch if torch.is_tensor(batch) else torch.from_numpy(np.array(batch))
            return self.model.video(encoder.preprocess(t.to(self.device)))

        return self._batched(frames, one, batch_size, progress, "video")

    def _batched(self, x, fn, batch_size: int, progress: bool | None, what: str) -> torch.Tensor:
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        n = len(x)
        starts = range(0, n, batch_size)
        show = progress if progress is not None else n > 4 * batch_size
        out = [
            fn(x[s : s + batch_size], s).float()
            for s in tqdm(starts, desc=f"embed {what}", unit="batch", disable=not show)
        ]
        if not out:
            return torch.zeros(0, self.embed_dim, device=self.device)
        return torch.cat(out)

    # -- similarity and retrieval ----------------------------------------------------------------
    @staticmethod
    def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cosine similarities (A, B) of L2-normalized embeddings (the model's logits before its temperature)."""
        return torch.as_tensor(a).float() @ torch.as_tensor(b).float().to(torch.as_tensor(a).device).t()

    def retrieve(self, queries: torch.Tensor, gallery: torch.Tensor, k: int = 5) -> Retrieved:
        """The k gallery embeddings most similar to each query embedding (any direction: EEG
        queries with a video gallery, or the reverse)."""
        if not 1 <= k <= len(gallery):
            raise UserError(f"k={k} must be between 1 and the gallery's {len(gallery)} items")
        scores, indices = self.similarity(queries, gallery).topk(k, dim=1)
        return Retrieved(scores, indices)


def _as_batched(x, ndim: int, what: str, shape: str):
    if not (torch.is_tensor(x) or isinstance(x, np.ndarray)):
        x = np.asarray(x)
    if x.ndim == ndim - 1:
        x = x[None]
    if x.ndim != ndim:
        raise UserError(f"{what} must have shape {shape}, got {tuple(x.shape)}")
    return x
