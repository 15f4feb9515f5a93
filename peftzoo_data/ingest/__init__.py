"""Real recordings in: EEG files and stimulus videos become an arrays directory of training pairs.

`python -m recipes.ingest SPEC --out DIR` (peftzoo_data/ingest/cli.py); `ingest(spec, out)` from
Python. Modules: spec (the YAML spec), sources (which recordings), eeg (MNE reading and LaBraM's
preprocessing), dsp (those filters and the polyphase resampling in numpy), events (onsets and
stimulus ids), windows (events to windows), video (frames by presentation time, PyAV), recording
(one recording to pairs), groups (groups and splits), preview (preview.png, Pillow), pipeline
(caching and atomic output), stimuli (the stimulus map), integrity (truncated EEG files), merge
(`--merge` of ingested folders).
"""

from __future__ import annotations

from pathlib import Path

from peftzoo_data.ingest.errors import IngestError
from peftzoo_data.ingest.spec import IngestSpec

__all__ = ["IngestError", "IngestSpec", "ingest"]


def ingest(
    spec: IngestSpec | dict | str | Path,
    out: str | Path,
    base: str | Path | None = None,
    quiet: bool = False,
    workers: int | None = 1,
) -> dict:
    """Ingest `spec` (an IngestSpec, a mapping, or a YAML path) into `out`; returns the report.

    Relative paths in the spec are taken from `base` (default: the spec file's folder, else the
    current folder). `workers`: recordings processed at once, each in its own process (None: one per CPU core;
    the command's --workers defaults to that)."""
    from peftzoo_data.ingest import pipeline
    from peftzoo_data.ingest import spec as spec_module

    if isinstance(spec, (str, Path)):
        path = Path(spec).expanduser()
        spec, _ = spec_module.read(path)
        base = base if base is not None else path.resolve().parent
    elif isinstance(spec, dict):
        spec = spec_module.validate(spec)
    return pipeline.run(spec, Path(base or ".").expanduser().resolve(), Path(out), quiet=quiet, workers=workers)
