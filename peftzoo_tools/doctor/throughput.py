"""data_bound: the step waits on the data loader (fact 5 of docs/reference/doctor-codes.md:
open_clip #681, #13, #899).

The trainer logs per epoch `data_wait_frac`, the share of step time spent waiting for the next
batch. Above 0.2 the accelerator idles a fifth of the time or more (open_clip #13 had it idle about
2x active). The first epoch is left out when there are later ones: it includes starting the
workers and filling the page cache.
"""

from __future__ import annotations

from peftzoo_tools.doctor.curves import median
from peftzoo_tools.doctor.findings import Finding, fmt
from peftzoo_tools.doctor.run_reader import RunRecord

WAIT_SHARE = 0.2


def check_data_bound(run: RunRecord) -> list[Finding]:
    epochs = [e for e in run.epochs if isinstance(e.get("data_wait_frac"), (int, float))]
    judged = epochs[1:] if len(epochs) > 1 else epochs
    if not judged:
        return []
    level = median([float(e["data_wait_frac"]) for e in judged])
    if level <= WAIT_SHARE:
        return []
    workers = int(run.get("train.num_workers", 0) or 0)
    fixes = []
    overrides = {"train.num_workers": max(4, 2 * workers)}
    if not run.get("train.feature_cache", True):
        overrides = {"train.feature_cache": True}
        fixes.append(
            "train.feature_cache: true (a frozen encoder's features, or a training video encoder's resized clips, "
            "computed once instead of every step)"
        )
    fixes.append(f"train.num_workers: {max(4, 2 * workers)} (now {workers})")
    fixes.append("keep the data on local disk (arrays are memory-mapped: a network disk stalls every read)")
    rates = [float(e["samples_per_s"]) for e in judged if isinstance(e.get("samples_per_s"), (int, float))]
    rate = f", {fmt(median(rates))} samples/s" if rates else ""
    shown = ", ".join(f"{fmt(float(e['data_wait_frac']), 2)} (epoch {e.get('epoch')})" for e in epochs[:6])
    return [
        Finding(
            "data_bound",
            "warning",
            f"median data_wait_frac {fmt(level, 2)} over {len(judged)} epoch(s){rate}: the step waited for data "
            f"{fmt(100 * level, 2)}% of the time (per epoch: {shown}{' ...' if len(epochs) > 6 else ''})",
            "; ".join(fixes),
            overrides,
        )
    ]
