"""Groups, negatives and splits of ingested pairs: two ideas, two files.

- Groups (groups.npy, `groups.by`: recording, subject, session, block or stimulus) are the leakage
  unit: a split never puts one group on both sides (the pairs would leak across the split).
- Negatives (stimulus.npy and meta["stimuli"], `negatives.by`: stimulus, none or a pair's label)
  say which pairs are never each other's negatives. A stimulus shown to every subject may sit on
  both sides of a split by subject: that is the cross-subject protocol, not leakage.

Splits are by subject or block (ids held out, or EEG2Video's leave-one-block-out fold: block k is
test, the block before it validation) or by fractions of whole groups.
"""

from __future__ import annotations

import numpy as np

from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.spec import GroupsSpec, NegativesSpec, SplitSpec


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


def negative_labels(pairs: list[dict], spec: NegativesSpec) -> list[str]:
    """Per pair, the label whose sharing pairs are never each other's negatives (`none`: the pair's own)."""
    key = spec.by
    if key == "none":
        return [f"{p['recording']}#{i}" for i, p in enumerate(pairs)]
    out = []
    for p in pairs:
        value = p["stim"] if key == "stimulus" else p.get(key)
        if value is None:
            known = sorted(k for k, v in p.items() if isinstance(v, str | int) and k not in ("onset", "start"))
            raise IngestError(
                f"negatives.by: {key} is unknown for recording {p['recording']!r}; use stimulus, none, or a label the "
                f"pairs carry ({', '.join(known)}), e.g. an entity from recordings.entities with (?P<{key}>...)"
            )
        out.append(str(value))
    return out


def stimulus_ids(pairs: list[dict], spec: NegativesSpec) -> tuple[np.ndarray, list[str]]:
    """(stimulus.npy ids, meta["stimuli"] names by id). With negatives.by: none the ids are the pairs' own
    and the names their stimulus (shown by evaluate and retrieve)."""
    if spec.by == "none":
        return np.arange(len(pairs), dtype=np.int64), [str(p["stim"]) for p in pairs]
    return group_ids(negative_labels(pairs, spec))


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
            raise IngestError(
                f"split.by: {key} is unknown for recording {p['recording']!r}; give recordings.entities with "
                f"(?P<{key}>...) or read BIDS"
            )
        values.append(str(p[key]))
    values_arr = np.asarray(values)
    present = sorted(set(values), key=_sort_key)
    if spec.fold is not None:
        if spec.fold >= len(present):
            raise IngestError(
                f"split.fold: {spec.fold} is out of range; there are {len(present)} blocks ({present}), folds "
                f"0..{len(present) - 1}"
            )
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
        seen = sorted(str(x) for x in set(labels[groups == g]))
        if len(seen) > 1:
            why = (
                " (groups.by: stimulus makes the stimulus the leakage unit; for the cross-subject protocol, where "
                "every subject sees the same clips, keep groups.by: recording and say negatives: {by: stimulus})"
                if groups_by == "stimulus"
                else ""
            )
            raise IngestError(
                f"split by {key} cuts a group (pairs of one group in {', '.join(seen)}){why}; group by {key} or by "
                f"something within it (groups.by: recording, or {key})"
            )
    return labels
