"""preview.png: each previewed window as EEG traces of every channel (the ones eeg.channels chose,
else all) on one amplitude scale with a microvolt scale bar, the window's edges and the times of
the frames chosen for it, above those frames, so that alignment and amplitude can be checked by eye
(a flat, noisy or wrongly scaled channel stands out against the others).

Drawn by hand with Pillow's ImageDraw rather than matplotlib: importing pyplot and laying out a
figure took most of a 10-minute recording's ingest time (seconds of a command that otherwise takes
about one; benchmarks/ingest_vs_mne.py), while Pillow imports in tens of milliseconds and a
polyline per channel is all a trace needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WIDTH = 1100  # pixels of the whole image
LEFT, RIGHT = 64, 96  # margins: channel names on the left, the scale bar on the right
ROW = 11  # pixels per channel trace
# A palette image (PNG mode P): a third of the bytes of RGB to compress, five times quicker to save.
# Indices of the drawing's colours, then a 6 x 6 x 6 colour cube for the frames.
WHITE, INK, WINDOW, SHADE, FRAME, GREY = range(6)  # WINDOW: the window's edges (blue); FRAME: frame times (orange)
_COLOURS = [(255, 255, 255), (20, 20, 20), (70, 130, 230), (228, 236, 250), (230, 120, 20), (150, 150, 150)]
_CUBE = [(r * 51, g * 51, b * 51) for r in range(6) for g in range(6) for b in range(6)]


def _palette() -> list[int]:
    flat = [v for rgb in _COLOURS + _CUBE for v in rgb]
    return flat + [0] * (768 - len(flat))


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size)  # Pillow's bundled TrueType font (FreeType builds)
    except TypeError:  # Pillow < 10.1: the fixed-size bitmap font
        return ImageFont.load_default()


def _nice(value: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above `value` (the scale bar's length)."""
    value = max(value, 1e-6)
    power = 10.0 ** np.floor(np.log10(value))
    return max(m * power for m in (1, 2, 5) if m * power <= value)


def _panel(draw, p: dict, channels: list[str], sfreq: float, top: int, font, small, spread: float) -> int:
    """One window's title and traces from `top`; returns the y below them."""
    eeg = np.asarray(p["eeg"], dtype=np.float64)
    n_ch, n = eeg.shape
    x0, x1 = LEFT, WIDTH - RIGHT
    t0 = p["first"] / sfreq
    span = max(n / sfreq, 1 / sfreq)

    def x_of(t: float) -> float:
        return x0 + (t - t0) / span * (x1 - x0)

    a, b = np.asarray(p["window"]) / sfreq
    pair = p["pair"]
    draw.text(
        (8, top),
        f"{pair['recording']}   stim {pair['stim']}   window {a:.2f}-{b:.2f} s "
        f"(blue: window edges; orange: frame times)",
        fill=INK,
        font=font,
    )
    top += 18
    height = n_ch * ROW
    bottom = top + height
    draw.rectangle([x_of(a), top, x_of(b), bottom], fill=SHADE)
    video_start = p["times"][0] - (b - a) / (2 * len(p["times"]))  # times are centres of equal parts
    for ft in p["times"]:
        draw.line([(x_of(a + (ft - video_start)), top), (x_of(a + (ft - video_start)), bottom)], fill=FRAME)
    for edge in (a, b):
        draw.line([(x_of(edge), top), (x_of(edge), bottom)], fill=WINDOW, width=2)
    px_per_uv = ROW / spread
    xs = x0 + np.arange(n) / max(n - 1, 1) * (x1 - x0)
    for c in range(n_ch):
        mid = top + (c + 0.5) * ROW
        ys = np.clip(mid - eeg[c] * px_per_uv, top - ROW, bottom + ROW)
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=INK, width=1)
        draw.text((4, mid - 5), channels[c] if c < len(channels) else str(c), fill=INK, font=small)
    # The scale bar: a round number of microvolts at the traces' scale.
    bar_uv = _nice(min(spread * 4, height / px_per_uv))
    bar = bar_uv * px_per_uv
    bx = x1 + 24
    draw.line([(bx, bottom - bar), (bx, bottom)], fill=INK, width=3)
    draw.text((bx + 6, bottom - bar / 2 - 6), f"{bar_uv:g} uV", fill=INK, font=small)  # the bundled font has no µ
    # Time axis: a tick every whole second (every 0.5 s for short spans).
    step = 0.5 if span <= 3 else 1.0
    draw.line([(x0, bottom + 2), (x1, bottom + 2)], fill=GREY)
    for t in np.arange(np.ceil(t0 / step) * step, t0 + span + 1e-9, step):
        draw.line([(x_of(t), bottom + 2), (x_of(t), bottom + 6)], fill=GREY)
        draw.text((x_of(t) - 12, bottom + 7), f"{t:.1f}", fill=INK, font=small)
    draw.text((x1 - 170, bottom + 20), "seconds from the first sample", fill=INK, font=small)
    return bottom + 36


def draw(previews: list[dict], channels: list[str], sfreq: float, path: Path) -> None:
    """Write preview.png for `previews` (peftzoo_data/ingest/recording.py makes them: EEG with
    context around the window, its sample range, the frames and their times, the pair)."""
    if not previews:
        return
    from PIL import Image, ImageDraw

    font, small = _font(12), _font(10)
    # One vertical scale for every channel and window, so amplitudes compare across the whole image:
    # a trace may use about 1.4 rows (the 99th percentile of |x|). Microvolts per row:
    spread = max(max(float(np.percentile(np.abs(p["eeg"]), 99)) for p in previews) * 2 / 1.4, 1e-3)
    n_frames = len(previews[0]["frames"])
    thumb_w = min(160, (WIDTH - 16) // max(n_frames, 1) - 4)
    heights = []
    for p in previews:
        h, w = np.asarray(p["frames"][0]).shape[:2]
        heights.append(max(1, int(round(thumb_w * h / max(w, 1)))))
    total = sum(18 + len(p["eeg"]) * ROW + 36 + th + 22 for p, th in zip(previews, heights)) + 8
    image = Image.new("P", (WIDTH, total), WHITE)
    image.putpalette(_palette())
    pen = ImageDraw.Draw(image)
    y = 6
    for p, th in zip(previews, heights):
        y = _panel(pen, p, channels, sfreq, y, font, small, spread)
        for f, frame in enumerate(p["frames"]):
            x = 8 + f * (thumb_w + 4)
            thumb = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).resize((thumb_w, th), Image.BILINEAR)
            image.paste(thumb.quantize(palette=image), (x, y))
            pen.text((x, y + th + 2), f"{p['pair']['frame_pts'][f]:.2f} s", fill=INK, font=small)
        y += th + 22
    image.save(path, compress_level=1)  # zlib at its fastest: the default takes longer than the drawing
