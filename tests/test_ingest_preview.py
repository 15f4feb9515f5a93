"""preview.png (peftzoo_data/ingest/preview.py, drawn with Pillow): a trace for every channel, a
microvolt scale bar, the window's edges and the frame times, and the frames themselves."""

from __future__ import annotations

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

from peftzoo_data.ingest import preview  # noqa: E402


def previews(channels: int, count: int = 2) -> list[dict]:
    t = np.arange(800) / 200
    rng = np.random.default_rng(0)
    return [
        {
            "eeg": (rng.standard_normal((channels, 800)) * 5 + 20 * np.sin(2 * np.pi * 10 * t)).astype(np.float32),
            "first": 800 * i,
            "window": [800 * i + 200, 800 * i + 600],
            "frames": np.stack([np.full((48, 64, 3), (30 * k, 200 - 20 * k, 90), np.uint8) for k in range(4)]),
            "times": np.array([0.25, 0.75, 1.25, 1.75]),
            "pair": {"recording": "s01", "stim": "a", "frame_pts": [0.2, 0.7, 1.2, 1.7]},
        }
        for i in range(count)
    ]


def test_every_channel_is_drawn_with_a_scale_bar_and_the_marks(tmp_path):
    names = [f"E{i}" for i in range(62)]
    preview.draw(previews(62), names, 200.0, tmp_path / "all.png")
    preview.draw(previews(8), names[:8], 200.0, tmp_path / "few.png")
    many, few = Image.open(tmp_path / "all.png"), Image.open(tmp_path / "few.png")
    assert many.width == few.width == preview.WIDTH
    assert many.height - few.height == 2 * (62 - 8) * preview.ROW  # one row per channel, in both previews
    pixels = np.asarray(many)  # palette indices
    for colour in (preview.INK, preview.WINDOW, preview.FRAME, preview.SHADE):
        assert (pixels == colour).any()
    bar_x = preview.WIDTH - preview.RIGHT + 24  # the scale bar: a vertical run of ink right of the traces
    assert (pixels[:, bar_x] == preview.INK).sum() >= preview.ROW
    window_columns = np.flatnonzero((pixels == preview.WINDOW).sum(axis=0) > 62 * preview.ROW // 2)
    assert len(window_columns) >= 4  # two edges of two pixels, in each previewed window
    assert len(np.unique(pixels)) > 8  # the frames' colours, from the palette's colour cube


def test_nice_scale_bar_lengths():
    assert [preview._nice(v) for v in (0.7, 3.0, 9.9, 10.0, 37.0, 180.0)] == [0.5, 2.0, 5.0, 10.0, 20.0, 100.0]
