"""uint8 video frames to a video encoder's normalized input, with torchvision's functional transforms.

The same recipe as torchvision's `VideoClassification` preset (short-side resize, center crop,
mean/std on [0, 1]), plus uniform temporal sampling to the encoder's frame count.
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

    def __call__(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
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
        resize = self.resize or int(round(self.size * 256 / 224))
        # The preset's order (resize and crop on uint8, then scale to [0, 1]) gives bit-equal inputs.
        x = TF.resize(x, [resize], interpolation=InterpolationMode.BILINEAR, antialias=False)
        x = TF.center_crop(x, [self.size, self.size])
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        x = TF.normalize(x, list(self.mean), list(self.std))
        x = x.reshape(b, self.frames, 3, self.size, self.size).permute(0, 2, 1, 3, 4).contiguous()
        return x[0] if single else x
