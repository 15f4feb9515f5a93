"""uint8 video frames to a video encoder's normalized input, with torchvision's functional transforms.

The same recipe as torchvision's `VideoClassification` preset (short-side resize, center crop,
mean/std on [0, 1]), plus uniform temporal sampling to the encoder's frame count. It is two parts:
the geometric one on uint8 (sampling, resize, crop), which `peftzoo_engine/video_cache.py` runs once per
data set, and the normalization, which runs per batch on the training device.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF  # the functional the swin3d preset uses

KINETICS_MEAN = (0.485, 0.456, 0.406)
KINETICS_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class VideoPreprocess:
    frames: int
    size: int
    resize: int | None = None
    """Short side before the center crop; None resizes to `size * 256 / 224` as torchvision does."""
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD

    @property
    def resize_to(self) -> int:
        return self.resize or int(round(self.size * 256 / 224))

    def __call__(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 frames (B, T, H, W, 3) or (T, H, W, 3) to normalized clips (B, 3, frames, size, size)."""
        return self.normalize(self.sample_resize_crop(frames))

    def sample_resize_crop(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 frames (B, T, H, W, 3) or (T, H, W, 3) to uint8 (B, frames, size, size, 3) at the input size."""
        video = torch.as_tensor(np.asarray(frames)) if isinstance(frames, np.ndarray) else frames
        single = video.ndim == 4
        if single:
            video = video.unsqueeze(0)
        if video.ndim != 5 or video.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames (B, T, H, W, 3), got shape {tuple(video.shape)}")
        b, t = video.shape[:2]
        index = torch.from_numpy(np.linspace(0, t - 1, self.frames).round().astype(np.int64))
        video = video[:, index.to(video.device)]  # (B, T', H, W, 3)
        x = video.permute(0, 1, 4, 2, 3).reshape(b * self.frames, 3, *video.shape[2:4])
        # The preset's order (resize and crop on uint8, then scale to [0, 1]) gives bit-equal inputs.
        x = TF.resize(x, [self.resize_to], interpolation=InterpolationMode.BILINEAR, antialias=False)
        x = TF.center_crop(x, [self.size, self.size])
        x = x.reshape(b, self.frames, 3, self.size, self.size).permute(0, 1, 3, 4, 2)
        return x[0] if single else x

    def normalize(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 (B, frames, size, size, 3) or (frames, size, size, 3) at the input size to normalized
        float (B, 3, frames, size, size); float input is taken as already scaled to [0, 1]."""
        single = clips.ndim == 4
        if single:
            clips = clips.unsqueeze(0)
        expected = (self.frames, self.size, self.size, 3)
        if clips.ndim != 5 or tuple(clips.shape[1:]) != expected:
            raise ValueError(
                f"expected clips at the input size (B, {', '.join(map(str, expected))}), got shape "
                f"{tuple(clips.shape)}; "
                f"clips cached for another frames/size setting do not fit this encoder"
            )
        b = clips.shape[0]
        x = clips.permute(0, 1, 4, 2, 3).reshape(b * self.frames, 3, self.size, self.size)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        x = TF.normalize(x, list(self.mean), list(self.std))
        x = x.reshape(b, self.frames, 3, self.size, self.size).permute(0, 2, 1, 3, 4).contiguous()
        return x[0] if single else x
