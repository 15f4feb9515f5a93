"""Small inputs and small builds for the checks: what to build each component with, and what to feed it.

The kit keeps no table of components: every component, built-in or plugin, steers it through the
same optional class attributes (docs/plugins.md, "The conformance kit"):
- `conformance_options` — options for a small, fast build (an encoder's architecture overrides, a
  data set's size), a dict or a classmethod returning one; the kit also checks the defaults validate;
- `conformance_example(directory) -> dict` (datasets whose options have required keys, e.g. a
  path): writes a small example into `directory` and returns the options that read it;
- `conformance_encoders: list[dict]` (strategies) — encoder specs to check the strategy on, in
  order; the first the strategy accepts is used. Default: the reference encoders below;
- `conformance_reference = True` (encoders) — a small build of it has every structure strategies
  target (blocks, attention with fused qkv and proj, biases, a final norm), so strategies are checked
  on it: EEG references first, then video ones, each in name order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import registry

EEG_CHANNELS = ["Fp1", "Fp2", "C3", "Cz", "O1", "Oz"]


def small_options(kind: str, name: str, component: Any) -> dict[str, Any]:
    """The options the kit builds `name` with: the component's `conformance_options`, else {} (the defaults)."""
    own = getattr(component, "conformance_options", None)
    if callable(own):
        own = own()
    if own is None:
        return {}
    if not isinstance(own, dict):
        from peftzoo_conformance.errors import ConformanceError

        raise ConformanceError(
            "conformance_options",
            kind,
            name,
            f"`conformance_options` must be a dict of options, got {type(own).__name__}",
        )
    return dict(own)


def reference_encoders() -> list[dict[str, Any]]:
    """Specs of the installed encoders that declare `conformance_reference`, small: EEG first, then video.
    An encoder that fails to load is left out here (its own checks report it)."""
    found = []
    for name in registry.names("encoders"):
        try:
            component = registry.get("encoders", name)
        except Exception:  # noqa: BLE001 - reported by the encoder's own checks, never breaking strategies'
            continue
        if getattr(component, "conformance_reference", False) is True:
            found.append(
                (getattr(component, "modality", None) != "eeg", name, small_options("encoders", name, component))
            )
    return [{"name": name, **options} for _, name, options in sorted(found, key=lambda f: (f[0], f[1]))]


def dataset_options(name: str, component: Any, directory: Path) -> dict[str, Any] | None:
    """Options that build a small instance of dataset `name`, or None when the kit cannot make one."""
    example = getattr(component, "conformance_example", None)
    if callable(example):
        return dict(example(directory))
    options = small_options("datasets", name, component)
    required = [f for f, info in component.Config.model_fields.items() if info.is_required() and f not in options]
    return None if required else options


def eeg_samples(spec: Any) -> int:
    """A window length the EEG input spec accepts: two patches, else two seconds."""
    patch = getattr(spec, "patch_samples", None)
    return int(2 * patch) if patch else int(round(2 * float(spec.sfreq)))


def example_call(encoder: Any, batch: int = 2, seed: int = 1) -> tuple[tuple, dict]:
    """(args, kwargs) of a valid forward call of `encoder`, following its modality and input spec."""
    g = torch.Generator().manual_seed(seed)
    spec = encoder.input_spec
    if encoder.modality == "eeg":
        x = torch.randn(batch, len(EEG_CHANNELS), eeg_samples(spec), generator=g) * 20  # microvolts
        return (x,), {"channels": list(EEG_CHANNELS)}
    frames = torch.randint(0, 256, (batch, spec.frames, spec.size, spec.size, 3), generator=g, dtype=torch.uint8)
    return (encoder.preprocess(frames),), {}


def run(encoder: Any, call: tuple[tuple, dict]) -> torch.Tensor:
    args, kwargs = call
    return encoder(*args, **kwargs)
