"""Frames by presentation time with PyAV, each file decoded once.

A window's F frames are the frames on screen at the centres of F equal parts of its span: for each
target time t, the last frame whose presentation time (pts x time_base) is <= t. Choosing by pts,
never by `round(t * fps)`, is what keeps variable-frame-rate files and files whose first pts is not 0
right (docs/reference/background.md). All target times of a file are served by one pass of decoding.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from peftzoo_data.ingest.errors import IngestError

logger = logging.getLogger("peftzoo_data.ingest")


def frame_times(start: float, seconds: float, frames: int) -> np.ndarray:
    """Centres of `frames` equal parts of [start, start + seconds)."""
    return start + (np.arange(frames) + 0.5) * (seconds / frames)


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the shorter side `short_side`, aspect kept, both even (codecs like even)."""
    scale = short_side / min(width, height)
    w, h = max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
    if width <= height:
        w = short_side
    else:
        h = short_side
    return w, h


@dataclasses.dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    first: float
    """Presentation time of the first frame, seconds."""
    end: float
    """Presentation time at which the last frame stops showing (its pts + its duration), seconds."""
    frames: int
    average_fps: float | None


def probe(path: Path) -> VideoInfo:
    """Frame count, first and end time by reading packets only (no decoding).

    A file whose packets stop well before the duration its header declares was cut short (a copy
    interrupted, a recording that crashed): that is an IngestError naming both times, not a video
    that silently ends early and drops the windows after the cut."""
    av = _av()
    with _open(av, path) as container:
        stream = container.streams.video[0]
        tb = float(stream.time_base)
        pts, data_end = [], 0.0
        try:
            for packet in container.demux():
                if packet.pts is None or not packet.size:
                    continue
                data_end = max(data_end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                if packet.stream.index == stream.index:
                    pts.append(packet.pts)
        except av.error.FFmpegError as exc:
            raise IngestError(
                f"{path}: reading the video failed ({exc}); the file is damaged or truncated, copy it again"
            ) from None
        pts.sort()
        if not pts:
            raise IngestError(f"{path}: the video stream has no frames; the file is empty, truncated or damaged")
        step = np.median(np.diff(pts)) if len(pts) > 1 else (1 / float(stream.average_rate or 25)) / tb
        if container.duration:
            declared = (container.start_time or 0) / 1e6 + container.duration / 1e6
            if data_end < declared - (1.5 * step * tb + 0.01):
                raise IngestError(
                    f"{path}: the header declares {declared:.3f} s but the data stop at {data_end:.3f} s; "
                    f"the file is truncated, copy it again"
                )
        return VideoInfo(
            str(path),
            stream.codec_context.width,
            stream.codec_context.height,
            pts[0] * tb,
            (pts[-1] + step) * tb,
            len(pts),
            float(stream.average_rate) if stream.average_rate else None,
        )


def _av():
    try:
        import av
    except ImportError:
        raise IngestError("video decoding needs PyAV: pip install 'peftzoo[ingest]'") from None
    return av


def _open(av, path: Path):
    if not path.is_file():
        raise IngestError(f"video {str(path)!r} does not exist")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise IngestError(
            f"{path}: could not be opened as a video ({exc}); the file is damaged, truncated or not a video"
        ) from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise IngestError(f"{path}: has no video stream (it holds {', '.join(kinds)}); give the stimulus video file")
    return container


def cover_size(width: int, height: int, size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the smallest aspect-kept resize that covers size = (H, W)."""
    scale = max(size[0] / height, size[1] / width)
    return max(size[1], int(np.ceil(width * scale))), max(size[0], int(np.ceil(height * scale)))


def frames_at(
    path: Path, times: np.ndarray, short_side: int, progress: bool = False, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, VideoInfo]:
    """uint8 (len(times), H, W, 3) RGB: the frame shown at each time; plus each frame's pts (seconds).

    Times past the last frame's end are an IngestError (the caller checks `probe` first and drops
    such windows with a reason); times before the first frame get the first frame, as players hold it.
    One sequential decode of the file serves all `times`, in any order; `progress` shows a bar of
    the seconds decoded (for long movies).
    """
    if progress:
        from tqdm.auto import tqdm
    else:  # a disabled bar, without tqdm.auto's import of asyncio (a quiet ingest's start-up)
        from tqdm.std import tqdm

    av = _av()
    times = np.asarray(times, dtype=np.float64)
    order = np.argsort(times, kind="stable")
    with _open(av, path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        shape = {}  # set from the first decoded frame, which carries the display rotation

        def rgb(frame) -> np.ndarray:
            if not shape:
                shape.update(_geometry(frame, short_side, size))
                warn_upscale(path, frame.width, frame.height, shape)
            g = shape
            pixels = frame.reformat(width=g["w"], height=g["h"], format="rgb24").to_ndarray()
            if g["turns"]:
                pixels = np.rot90(pixels, g["turns"])
            return pixels[g["top"] : g["top"] + g["crop_h"], g["left"] : g["left"] + g["crop_w"]]

        out = None

        def put(i: int, pixels: np.ndarray) -> None:
            nonlocal out
            if out is None:
                out = np.zeros((len(times), *pixels.shape), dtype=np.uint8)
            out[i] = pixels

        chosen = np.full(len(times), np.nan)
        k = 0  # next target (in sorted order)
        previous = None  # (time, frame) on screen before the current one
        horizon = float(times.max()) if len(times) else 0.0
        bar = tqdm(
            total=round(horizon),
            desc=f"decode {path.name}",
            unit="s",
            disable=not progress or horizon < 60,
            leave=False,
        )

        def take(frame_time: float, frame) -> None:
            nonlocal k
            pixels = None
            while k < len(order) and (frame_time is None or times[order[k]] < frame_time):
                if pixels is None:
                    pixels = rgb(previous[1])
                put(order[k], pixels)
                chosen[order[k]] = previous[0]
                k += 1

        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base)
                if previous is None:
                    previous = (t, frame)
                    # targets before the first frame: the first frame (players hold it)
                    while k < len(order) and times[order[k]] < t:
                        put(order[k], rgb(frame))
                        chosen[order[k]] = t
                        k += 1
                    continue
                take(t, frame)
                previous = (t, frame)
                if int(t) > bar.n:
                    bar.update(min(int(t), bar.total) - bar.n)
                if k == len(order):
                    break
        except av.error.FFmpegError as exc:
            raise IngestError(
                f"{path}: decoding failed ({exc}); the file is damaged or truncated, copy it again"
            ) from None
        finally:
            bar.close()
        if previous is None:
            raise IngestError(f"{path}: no frame could be decoded")
        if k < len(order):
            take(None, None)  # remaining targets: the last frame (the caller has checked they lie before its end)
    if out is None:  # no target times
        g = _geometry(None, short_side, size, width, height)
        out = np.zeros((0, g["crop_h"], g["crop_w"], 3), dtype=np.uint8)
    info = VideoInfo(str(path), width, height, float("nan"), float("nan"), -1, None)
    return out, chosen, info


def warn_upscale(path: Path, width: int, height: int, geometry: dict) -> None:
    """A warning when frames are enlarged: upscaling adds pixels, not detail, and often means
    video.short_side (or video.size) was meant for other stimuli."""
    if geometry["w"] > width or geometry["h"] > height:
        logger.warning(
            "%s is %dx%d; video.short_side/video.size upscale it to %dx%d, which adds no detail; a "
            "short side of %d or less keeps the original pixels",
            path.name,
            width,
            height,
            geometry["w"],
            geometry["h"],
            min(width, height),
        )


def _geometry(frame, short_side: int, size: tuple[int, int] | None, width: int = 0, height: int = 0) -> dict:
    """Resize and crop of a frame, upright: a display matrix (a phone's portrait video is stored
    landscape with a 90-degree rotation; PyAV's `frame.rotation`, counter-clockwise degrees) turns
    the decoded picture by quarter turns, so sizes are chosen on the displayed picture."""
    if frame is not None:
        width, height = frame.width, frame.height
    turns = round(getattr(frame, "rotation", 0) / 90) % 4 if frame is not None else 0
    shown_w, shown_h = (width, height) if turns % 2 == 0 else (height, width)
    w, h = output_size(shown_w, shown_h, short_side) if size is None else cover_size(shown_w, shown_h, size)
    crop_h, crop_w = (h, w) if size is None else size
    decode_w, decode_h = (w, h) if turns % 2 == 0 else (h, w)
    return {
        "w": decode_w,
        "h": decode_h,
        "turns": turns,
        "crop_h": crop_h,
        "crop_w": crop_w,
        "top": (h - crop_h) // 2,
        "left": (w - crop_w) // 2,
    }
