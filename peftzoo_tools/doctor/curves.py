"""Helpers shared by the metric checks: the post-warm-up part of a curve, chance-level retrieval."""

from __future__ import annotations

import math
import statistics
from typing import Any

from peftzoo_tools.doctor.run_reader import RunRecord


def after_warmup(run: RunRecord, key: str) -> list[tuple[int, float]]:
    """(step, value) of `key` in the train lines logged after warm-up ended (all lines when warm-up
    covers the whole logged part: a run that never left warm-up is still judged on what it did)."""
    points = [(int(line["step"]), float(line[key])) for line in run.train if _finite(line.get(key))]
    warm = run.warmup_steps()
    later = [p for p in points if p[0] > warm]
    return later or points


def tail(values: list[float], share: float = 1 / 3) -> list[float]:
    """The last `share` of values (at least one)."""
    return values[-max(1, math.ceil(len(values) * share)) :] if values else []


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def chance_band(chance: float, n: int) -> float:
    """Highest R@1 still consistent with chance: chance + 3 binomial standard deviations over n queries."""
    n = max(int(n), 1)
    return chance + 3 * math.sqrt(max(chance * (1 - chance), 0.0) / n)


def r_at_1(line: dict[str, Any], prefix: str = "val") -> float | None:
    """Mean R@1 of the two retrieval directions of an eval line (None if absent)."""
    values = [line.get(f"{prefix}/eeg_to_video/R@1"), line.get(f"{prefix}/video_to_eeg/R@1")]
    values = [float(v) for v in values if _finite(v)]
    return sum(values) / len(values) if values else None


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
