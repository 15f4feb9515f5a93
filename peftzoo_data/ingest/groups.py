"""Groups and splits of ingested pairs: by recording, subject, session, block or stimulus.

Splits are by subject or block (ids held out, or EEG2Video's leave-one-block-out fold: block k is
test, the block before it validation) or by fractions of whole groups. A split that would put one
group on both sides is refused with the group named: the pairs would leak across the split.
"""

from __future__ import annotations

import numpy as np

from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.spec import GroupsSpec, SplitSpec


def group_ids(labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """int64 ids in order of first appearance, and the label of each id."""
    index: dict[str, int] = {}
    ids = np.array([index.setdefault(label, len(index)) for label in labels], dtype=np.int64)
    return ids, list(index)


def group_labels(pairs: list[dict], spec: GroupsSpec) -> list[str]:
    """Per pair, the label of its group (`recording` is the recording's name)."""
    key = spec.by
    out = []
    for p in pairs:
        value = p["stim"] if key == "stimulus" else p.get(key) if key != "recording" else p["recording"]
        if value is None:
            raise IngestError(
                f"groups.by: {key} is unknown for recording {p['recording']!r}; give recordings.entities, a file-name "
                f"regex with (?P<{key}>...), or read BIDS"
            )
        out.append(str(value))
    return out


def _sort_key(value: str):
    return (0, int(value), value) if value.lstrip("-").isdigit() else (1, 0, value)


def split_labels(pairs: list[dict], groups: np.ndarray, spec: SplitSpec, groups_by: str = "recording") -> np.ndarray:
    """(N,) strings train / val / test."""
    n = len(pairs)
    if spec.by == "fraction":
        from peftzoo_data.splits import DataError, group_split

        labels = np.full(n, "train", dtype="<U5")
        try:
            if spec.test:
                first = group_split(groups, spec.test, spec.seed)
                labels[first["val"]] = "test"
            if spec.val:
                rest = np.flatnonzero(labels == "train")
                share = spec.val / (1 - spec.test) if spec.test else spec.val
                second = group_split(groups[rest], share, spec.seed + 1)
                labels[rest[second["val"]]] = "val"
        except DataError:
            raise IngestError(
                f"split: val {spec.val} / test {spec.test} leave no pair for training: there are only "
                f"{len(np.unique(groups))} groups (groups.by: {groups_by}); group by something finer "
                f"(groups.by: stimulus) or lower split.val / split.test"
            ) from None
        return labels
    key = spec.by
    values = []
    for p in pairs:
        if p.get(key) is None:
            raise IngestError(f"split.by: {key} is unknown for recording {p['recording']!r}; give recordings.entities with (?P<{key}>...) or read BIDS")
        values.append(str(p[key]))
    values_arr = np.asarray(values)
    present = sorted(set(values), key=_sort_key)
    if spec.fold is not None:
        if spec.fold >= len(present):
            raise IngestError(f"split.fold: {spec.fold} is out of range; there are {len(present)} blocks ({present}), folds 0..{len(present) - 1}")
        test, val = [present[spec.fold]], [present[spec.fold - 1]] if len(present) > 2 else []
    else:
        test, val = list(spec.test), list(spec.val)
        for name, ids in (("test", test), ("val", val)):
            missing = [i for i in ids if i not in present]
            if missing:
                raise IngestError(f"split.{name}: {key} ids {missing} do not occur (present: {present})")
    labels = np.full(n, "train", dtype="<U5")
    labels[np.isin(values_arr, val)] = "val"
    labels[np.isin(values_arr, test)] = "test"
    if (labels == "train").sum() == 0:
        raise IngestError(f"split: holding out {key} {sorted(set(val) | set(test))} leaves no pair for training")
    for g in np.unique(groups):
        seen = sorted(set(labels[groups == g]))
        if len(seen) > 1:
            raise IngestError(
                f"split by {key} cuts a group (pairs of one group in {seen}); group by {key} or by something "
                f"within it (groups.by: recording, or {key})"
            )
    return labels
