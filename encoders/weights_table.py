"""The known pretrained checkpoints, as data: where each is published, its file name, and what its publisher says.

An encoder option `pretrained: NAME` finds `FILE` in the weights cache (encoders/pretrained.py), and
`peftzoo weights` lists these rows with the command that downloads each. Nothing here is made up:
a size or hash the publisher does not give is None and the row says so. torchvision publishes the
first 8 hex digits of each file's sha256 in its name (torch.hub checks them on download) and the
size in MB in its model metadata (`Swin3D_T_Weights.KINETICS400_V1.meta["_file_size"]`);
tests/test_weights.py checks these rows against torchvision's own metadata.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One published weights file."""

    name: str
    """What a recipe writes: `pretrained: NAME`."""
    family: str
    """The encoder family whose architecture options it fits (`labram`, `video_swin`)."""
    preset: str
    """The registered encoder preset whose architecture it is (`encoder: PRESET`)."""
    url: str
    """The publisher's download address."""
    file: str
    """The file name in the weights cache (the publisher's own)."""
    source: str
    """Where the publisher describes it (a page a person can read)."""
    description: str
    size_mb: float | None = None
    """Size in MB as the publisher gives it (rounded), None where none is given."""
    sha256: str | None = None
    """The full sha256 as the publisher gives it; None where none is published."""
    sha256_prefix: str | None = None
    """The leading hex digits of the sha256 the publisher gives (torchvision's file names)."""
    notes: str = ""


_TORCHVISION = "https://docs.pytorch.org/vision/stable/models/generated/torchvision.models.video.{}.html"
_TORCHVISION_NOTE = "torchvision state dict; the file name carries the first 8 hex digits of its sha256"
_VIDEO_SWIN = "https://github.com/SwinTransformer/Video-Swin-Transformer#kinetics-400"
_VIDEO_SWIN_RELEASE = "https://github.com/SwinTransformer/storage/releases/download/v1.0.4/"
_VIDEO_SWIN_NOTE = (
    "official Video-Swin (mmaction2 0.x) file: weights under state_dict, keys backbone.*; no size or hash published"
)

CHECKPOINTS: tuple[Checkpoint, ...] = (
    Checkpoint(
        name="labram-base",
        family="labram",
        preset="labram_base",
        url="https://github.com/935963004/LaBraM/raw/main/checkpoints/labram-base.pth",
        file="labram-base.pth",
        source="https://github.com/935963004/LaBraM/tree/main/checkpoints",
        description="LaBraM-Base pretrained on about 2,500 hours of EEG (ICLR 2024); the only released LaBraM size",
        notes="a pretraining checkpoint: weights under model, backbone under student., beside optimizer state and "
        "the training arguments (an argparse Namespace, read without unpickling code); no size or hash published",
    ),
    Checkpoint(
        name="swin3d-t-k400",
        family="video_swin",
        preset="swin3d_t",
        url="https://download.pytorch.org/models/swin3d_t-7615ae03.pth",
        file="swin3d_t-7615ae03.pth",
        source=_TORCHVISION.format("swin3d_t"),
        description="Video Swin-T, ImageNet-1k then Kinetics-400 (torchvision Swin3D_T_Weights.KINETICS400_V1)",
        size_mb=121.543,
        sha256_prefix="7615ae03",
        notes=_TORCHVISION_NOTE,
    ),
    Checkpoint(
        name="swin3d-s-k400",
        family="video_swin",
        preset="swin3d_s",
        url="https://download.pytorch.org/models/swin3d_s-da41c237.pth",
        file="swin3d_s-da41c237.pth",
        source=_TORCHVISION.format("swin3d_s"),
        description="Video Swin-S, ImageNet-1k then Kinetics-400 (torchvision Swin3D_S_Weights.KINETICS400_V1)",
        size_mb=218.288,
        sha256_prefix="da41c237",
        notes=_TORCHVISION_NOTE,
    ),
    Checkpoint(
        name="swin3d-b-k400",
        family="video_swin",
        preset="swin3d_b",
        url="https://download.pytorch.org/models/swin3d_b_1k-24f7c7c6.pth",
        file="swin3d_b_1k-24f7c7c6.pth",
        source=_TORCHVISION.format("swin3d_b"),
        description="Video Swin-B, ImageNet-1k then Kinetics-400 (torchvision Swin3D_B_Weights.KINETICS400_V1)",
        size_mb=364.134,
        sha256_prefix="24f7c7c6",
        notes=_TORCHVISION_NOTE,
    ),
    Checkpoint(
        name="swin3d-b-k400-in22k",
        family="video_swin",
        preset="swin3d_b",
        url="https://download.pytorch.org/models/swin3d_b_22k-7c6ae6fa.pth",
        file="swin3d_b_22k-7c6ae6fa.pth",
        source=_TORCHVISION.format("swin3d_b"),
        description="Video Swin-B, ImageNet-22k then Kinetics-400 "
        "(torchvision Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1)",
        size_mb=364.134,
        sha256_prefix="7c6ae6fa",
        notes=_TORCHVISION_NOTE,
    ),
    Checkpoint(
        name="video-swin-t-k400",
        family="video_swin",
        preset="swin3d_t",
        url=_VIDEO_SWIN_RELEASE + "swin_tiny_patch244_window877_kinetics400_1k.pth",
        file="swin_tiny_patch244_window877_kinetics400_1k.pth",
        source=_VIDEO_SWIN,
        description="Video Swin-T, ImageNet-1k then Kinetics-400, the authors' release (78.8 top-1)",
        notes=_VIDEO_SWIN_NOTE,
    ),
    Checkpoint(
        name="video-swin-s-k400",
        family="video_swin",
        preset="swin3d_s",
        url=_VIDEO_SWIN_RELEASE + "swin_small_patch244_window877_kinetics400_1k.pth",
        file="swin_small_patch244_window877_kinetics400_1k.pth",
        source=_VIDEO_SWIN,
        description="Video Swin-S, ImageNet-1k then Kinetics-400, the authors' release (80.6 top-1)",
        notes=_VIDEO_SWIN_NOTE,
    ),
    Checkpoint(
        name="video-swin-b-k400",
        family="video_swin",
        preset="swin3d_b",
        url=_VIDEO_SWIN_RELEASE + "swin_base_patch244_window877_kinetics400_1k.pth",
        file="swin_base_patch244_window877_kinetics400_1k.pth",
        source=_VIDEO_SWIN,
        description="Video Swin-B, ImageNet-1k then Kinetics-400, the authors' release (80.6 top-1)",
        notes=_VIDEO_SWIN_NOTE,
    ),
    Checkpoint(
        name="video-swin-b-k400-in22k",
        family="video_swin",
        preset="swin3d_b",
        url=_VIDEO_SWIN_RELEASE + "swin_base_patch244_window877_kinetics400_22k.pth",
        file="swin_base_patch244_window877_kinetics400_22k.pth",
        source=_VIDEO_SWIN,
        description="Video Swin-B, ImageNet-22k then Kinetics-400, the authors' release (82.7 top-1)",
        notes=_VIDEO_SWIN_NOTE,
    ),
)
