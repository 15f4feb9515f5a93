"""The sweep's summary: one row per configuration (trials that differ only in `seed` are one), sorted
by the selection metric, with mean and sample standard deviation over seeds."""

from __future__ import annotations

import json
import statistics
from typing import Any

SEED_KEY = "seed"


def configurations(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows: {config (swept values without seed), seeds, trials, statuses, final/best mean and std}, best first."""
    metric, mode = data["select"]["metric"], data["select"]["mode"]
    groups: dict[str, dict[str, Any]] = {}
    for trial in data["trials"]:
        config = {k: v for k, v in trial["overrides"].items() if k != SEED_KEY}
        row = groups.setdefault(
            json.dumps(config, sort_keys=True),
            {"config": config, "trials": [], "seeds": [], "statuses": [], "final": [], "best": []},
        )
        row["trials"].append(trial["id"])
        row["seeds"].append(trial["overrides"].get(SEED_KEY))
        row["statuses"].append(trial["status"])
        if trial["status"] == "completed":
            final = (trial.get("final_metrics") or {}).get(metric)
            best = (trial.get("best_metrics") or {}).get(metric)
            if isinstance(final, (int, float)):
                row["final"].append(final)
            if isinstance(best, (int, float)):
                row["best"].append(best)
    rows = []
    for row in groups.values():
        for part in ("final", "best"):
            values = row.pop(part)
            row[f"{part}_n"] = len(values)
            row[f"{part}_mean"] = statistics.fmean(values) if values else None
            row[f"{part}_std"] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
        rows.append(row)
    sign = -1 if mode == "max" else 1
    rows.sort(key=lambda r: (r["best_mean"] is None, sign * (r["best_mean"] or 0.0)))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _stat(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def table(data: dict[str, Any]) -> str:
    """A plain-text table of configurations, best first by the selection metric."""
    rows = configurations(data)
    keys = list(dict.fromkeys(k for r in rows for k in r["config"]))
    # an axis of one value (a fixed list, e.g. train.loggers=[[jsonl,tensorboard]]) tells rows apart in nothing
    keys = [k for k in keys if len(rows) < 2 or len({json.dumps(r["config"].get(k), sort_keys=True) for r in rows}) > 1]
    metric = data["select"]["metric"]
    with_seeds = any(len(r["trials"]) > 1 for r in rows)
    header = ["rank", *keys, *(["seeds"] if with_seeds else []), f"best {metric}", f"final {metric}", "status"]
    lines = []
    for rank, row in enumerate(rows, 1):
        statuses = sorted(set(row["statuses"]))
        status = statuses[0] if len(statuses) == 1 else ",".join(f"{row['statuses'].count(s)} {s}" for s in statuses)
        lines.append(
            [
                str(rank),
                *(_fmt(row["config"].get(k, "")) for k in keys),
                *([str(len(row["trials"]))] if with_seeds else []),
                _stat(row["best_mean"], row["best_std"], row["best_n"]),
                _stat(row["final_mean"], row["final_std"], row["final_n"]),
                status,
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    mode = data["select"]["mode"]
    note = f"sorted by best {metric} ({mode})" + (", mean ± std over seeds" if with_seeds else "")
    return "\n".join(out) + f"\n({note})"
