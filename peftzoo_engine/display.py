"""Progress a person can watch: a tqdm bar per epoch (loss, samples/s, ETA) and one per caching pass on
a terminal; off a terminal (a log file, a batch job) the same news as plain log lines every
`interval_s` seconds and at each epoch's end.

The step loop pays one clock read and a counter per step: the loss is read from the device (`.item()`)
only when a line or the bar's text is due, at most every `refresh_s` seconds
(benchmarks/step_overhead.py measures the whole trainer against a hand-written loop).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

from peftzoo_engine.callbacks import Callback

logger = logging.getLogger(__name__)

INTERVAL_S = 30.0
"""Seconds between plain progress lines off a terminal."""
REFRESH_S = 0.5
"""Seconds between refreshes of a bar's text (its loss) on a terminal."""


def on_terminal() -> bool:
    """Whether progress bars can be drawn: stderr is a terminal (tqdm draws there)."""
    return sys.stderr.isatty()


def rate_text(done: float, total: float, elapsed: float, unit: str) -> str:
    """'1,234 samples/s, ETA 00:12' (the ETA when `total` is known)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = f", ETA {tqdm.format_interval((total - done) / rate)}" if rate > 0 and total > done else ""
    return f"{rate:,.0f} {unit}/s{eta}"


class ProgressDisplay(Callback):
    """The training progress: a bar per epoch on a terminal, periodic log lines elsewhere (main process only)."""

    def __init__(self, terminal: bool | None = None, interval_s: float = INTERVAL_S, refresh_s: float = REFRESH_S):
        self.terminal = terminal
        self.interval_s = interval_s
        self.refresh_s = refresh_s
        self.bar = None
        self.active = False

    def on_run_start(self, ctx) -> None:
        self.active = ctx.run.writes
        if self.terminal is None:
            self.terminal = on_terminal()

    def on_epoch_start(self, ctx) -> None:
        if not self.active:
            return
        cfg = ctx.recipe.train
        self.samples_per_step = cfg.batch_size * cfg.accum_freq
        self.total = ctx.steps_per_epoch
        self.first = self.done = ctx.progress.batch_in_epoch // cfg.accum_freq  # after a mid-epoch resume
        self.start = time.monotonic()
        self.next_at = self.start + (self.refresh_s if self.terminal else self.interval_s)
        self.loss: float | None = None
        self.what = f"epoch {ctx.progress.epoch}/{cfg.epochs}"
        if self.terminal:
            self.bar = tqdm(
                total=self.total * self.samples_per_step,
                initial=self.done * self.samples_per_step,
                desc=self.what,
                unit="samples",
                unit_scale=True,
                leave=False,
                dynamic_ncols=True,
                mininterval=self.refresh_s,
            )

    def on_step_end(self, ctx, loss, finite: bool) -> None:
        if not self.active:
            return
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.samples_per_step)
        now = time.monotonic()
        if now < self.next_at:
            return
        if finite:
            self.loss = float(loss.detach())
        if self.bar is not None:
            self.next_at = now + self.refresh_s
            self.bar.set_postfix_str(f"loss {self.loss:.4f}" if self.loss is not None else "", refresh=False)
        else:
            self.next_at = now + self.interval_s
            logger.info("%s", self._line(now))

    def _line(self, now: float) -> str:
        steps = self.done - self.first
        rate = rate_text(
            steps * self.samples_per_step,
            (self.total - self.first) * self.samples_per_step,
            now - self.start,
            "samples",
        )
        loss = f", loss {self.loss:.4f}" if self.loss is not None else ""
        return f"{self.what}: step {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f}%){loss}, {rate}"

    def on_epoch_end(self, ctx, record: dict[str, Any]) -> None:
        if not self.active:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        else:
            logger.info(
                "%s done in %s: %s samples/s",
                self.what,
                tqdm.format_interval(time.monotonic() - self.start),
                f"{record.get('samples_per_s', 0.0):,.0f}",
            )

    def on_log(self, ctx, record: dict[str, Any]) -> None:
        if record.get("type") == "train" and "train/loss" in record:
            self.loss = float(record["train/loss"])

    def on_run_end(self, ctx, status: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _Lines:
    """An iterable passed through, with a plain log line every `interval_s` seconds and at its end."""

    def __init__(self, iterable: Iterable, desc: str, total: int | None, unit: str, interval_s: float):
        self.iterable, self.desc, self.total, self.unit, self.interval_s = iterable, desc, total, unit, interval_s

    def __iter__(self) -> Iterator:
        start = time.monotonic()
        next_at = start + self.interval_s
        done = 0
        for item in self.iterable:
            yield item
            done += 1
            now = time.monotonic()
            if now >= next_at:
                next_at = now + self.interval_s
                of = f"/{self.total}" if self.total else ""
                logger.info(
                    "%s: %d%s %ses, %s",
                    self.desc,
                    done,
                    of,
                    self.unit,
                    rate_text(done, self.total or 0, now - start, self.unit),
                )
        if done and time.monotonic() - start >= self.interval_s:
            logger.info("%s: %d %ses in %s", self.desc, done, self.unit, tqdm.format_interval(time.monotonic() - start))


def progress(
    iterable: Iterable,
    desc: str,
    total: int | None = None,
    unit: str = "batch",
    terminal: bool | None = None,
    interval_s: float = INTERVAL_S,
) -> Iterable:
    """`iterable` with its progress shown: a tqdm bar on a terminal, plain lines every `interval_s` seconds elsewhere
    (feature and clip caching, which take minutes with big encoders)."""
    total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    if terminal if terminal is not None else on_terminal():
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True)
    return _Lines(iterable, desc, total, unit, interval_s)
