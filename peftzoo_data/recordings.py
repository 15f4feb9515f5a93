"""`recordings`: raw EEG recordings and stimulus videos, ingested once into a cache, then arrays.

The recipe's `data:` block holds an ingest spec (peftzoo_data/ingest/spec.py; the same keys as a spec
file for `python -m recipes.ingest`) plus `cache_dir` and `base`. The first run ingests into
`<cache_dir>/recordings-<key>`, keyed by the spec and the sha256 of every recording (and, checked
on reuse, of every video); later runs read that folder memory-mapped, like `arrays`.

    data:
      name: recordings
      recordings: {files: raw/*.vhdr, entities: 'sub-(?P<subject>\\d+)'}
      events: {match: 'movie/(?P<stim>\\w+)'}
      window: {seconds: 2}
      video: {clips: 'stimuli/{stim}.mp4', frames: 8, short_side: 128}   # quoted: {} inside {...}
      split: {by: subject, val: ['03']}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from pydantic import model_validator

from peftzoo_data.base import DatasetConfig, PairedData, PairedDataset
from peftzoo_data.ingest.spec import IngestSections, IngestSpec, SplitSpec


class RecordingsConfig(DatasetConfig, IngestSections):
    """The ingest spec's sections (IngestSections, one definition), plus where the cache lives; the
    split may be left to the recipe's `val_fraction`."""

    split: SplitSpec | None = None
    """None: a split by fractions with `val_fraction` (whole groups, seeded by the recipe)."""
    cache_dir: str | None = None
    """Where ingested data are kept; None: $PEFTZOO_INGEST_CACHE, else ~/.cache/peftzoo/ingest."""
    base: str | None = None
    """Folder that relative paths start from; None: the current folder."""

    @model_validator(mode="after")
    def _one_split(self) -> RecordingsConfig:
        if self.split is not None and "val_fraction" in self.model_fields_set:
            raise ValueError("give either val_fraction or split (split.by: fraction takes val/test shares), not both")
        # the spec's checks across sections (split ids need entities, bids events need a BIDS root)
        self.check_across(self.split or SplitSpec())
        return self


def ingest_spec(config: RecordingsConfig, seed: int) -> IngestSpec:
    """The IngestSpec this block describes (val_fraction -> split by fraction)."""
    split = config.split or SplitSpec(by="fraction", val=config.val_fraction, test=0.0, seed=seed)
    fields = {name: getattr(config, name) for name in IngestSections.model_fields}
    return IngestSpec(**fields, split=split)


class Recordings(PairedDataset):
    """Raw EEG recordings + stimulus videos (an ingest spec), ingested once into a cache."""

    description = "Raw EEG recordings + stimulus videos (an ingest spec inline), ingested once into a cache"
    Config = RecordingsConfig

    @classmethod
    def from_config(cls, config: RecordingsConfig, *, seed: int = 0, **context) -> PairedData:
        from peftzoo_data import arrays
        from peftzoo_data.ingest import pipeline
        from peftzoo_data.ingest.cache import cache_root
        from peftzoo_data.ingest.sources import find

        spec = ingest_spec(config, seed)
        base = Path(config.base or ".").expanduser().resolve()
        keys = [pipeline.recording_key(rec, spec, base) for rec in find(spec, base)]
        payload = {"spec": spec.model_dump(mode="json"), "recordings": keys}
        key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]
        out = cache_root(config.cache_dir) / f"recordings-{key}"
        # a rerun into the same folder reuses every recording whose videos are unchanged
        pipeline.run(spec, base, out, quiet=False)
        data = arrays.load(out, config.val_fraction, seed)
        return dataclasses.replace(data, fingerprint=f"recordings-{key}")
