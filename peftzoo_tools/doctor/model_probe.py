"""Rebuilding a run's model from its recipe.yaml and weights, and embedding a sample of its data.

The doctor rebuilds twice from the same recipe: once as the run started (same seed, so the same
initial weights: what `frozen_adapter` compares the saved tensors with) and once with the saved
weights loaded (what the embedding checks look at). For each side that trains encoder tensors it
also keeps the base encoder (no strategy applied, the pretrained or seeded weights of the run's
start), whose features `frozen_adapter` compares with the trained encoder's. A run whose
components are not installed here, or whose weights do not fit, is not an error of the doctor:
the model checks are skipped and the reason is reported as a note.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from typing import Any

import numpy as np
import torch

from adapters import peft_names
from peftzoo_tools.doctor.run_reader import RunRecord
from registry.errors import UserError

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Probe:
    recipe: Any
    """The validated recipe (pydantic)."""
    data: Any
    """peftzoo_data.base.PairedData of the run's recipe."""
    model: torch.nn.Module
    """The trained model (weights loaded), in eval mode."""
    initial: dict[str, torch.Tensor]
    """Encoder-side trainable tensors as the run started (same seed), by parameter name."""
    saved: dict[str, torch.Tensor]
    """Every tensor of the weights file, by parameter name."""
    device: torch.device
    base: dict[str, torch.nn.Module] = dataclasses.field(default_factory=dict)
    """Side -> its encoder without strategies, as the run started (sides that train encoder tensors only)."""
    base_missing: dict[str, str] = dataclasses.field(default_factory=dict)
    """Side -> why its base encoder could not be rebuilt."""


def _seed(seed: int) -> None:
    # As the trainer seeds before building data and model, so initial weights come out identical.
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _build(recipe, data, reg):
    from recipes.compose import compose_all_stages, planned_steps

    # later stages add their strategies: the weights file holds their tensors too
    return compose_all_stages(recipe, data, reg, lambda stage: planned_steps(recipe, data, stage.epochs))


def rebuild(run: RunRecord, device: str | torch.device = "cpu") -> tuple[Probe | None, str | None]:
    """(Probe, None), or (None, why the model checks cannot run)."""
    from safetensors.torch import load_file

    import registry
    from peftzoo_engine.weights import load_trainable
    from recipes import schema

    weights = run.weights_path()
    if weights is None:
        return None, "no trainable.safetensors (the run did not finish): model checks skipped"
    reg = registry.default()
    try:
        recipe = schema.validate(run.recipe, reg, source=f"{run.path}/recipe.yaml")
        _seed(recipe.seed)
        data = reg.build("datasets", recipe.data, seed=recipe.seed)
        init_model = _build(recipe, data, reg)
        initial = {
            n: p.detach().clone()
            for n, p in init_model.named_parameters()
            if p.requires_grad and ".encoder." in f".{n}"
        }
        base, base_missing = {}, {}
        for side in sorted({n.split(".", 1)[0] for n in initial}):
            base[side], why = base_encoder(getattr(recipe, side).encoder, getattr(init_model, side).encoder, reg)
            if base[side] is None:
                del base[side]
                base_missing[side] = why
        del init_model
        _seed(recipe.seed)
        model = _build(recipe, data, reg)
        if len(model.channels) == 0:
            model.channels = tuple(data.channels)
        load_trainable(model, weights)
        saved = load_file(str(weights))
    except UserError as exc:
        return None, f"the model could not be rebuilt from recipe.yaml ({exc}): model checks skipped"
    except (OSError, RuntimeError, ValueError) as exc:
        return None, f"the model could not be rebuilt ({type(exc).__name__}: {exc}): model checks skipped"
    device = torch.device(device)
    model.to(device).eval()
    for encoder in base.values():
        encoder.to(device).eval()
    return Probe(recipe, data, model, initial, saved, device, base, base_missing), None


def base_encoder(spec, started: torch.nn.Module, reg) -> tuple[torch.nn.Module | None, str]:
    """(the encoder `spec` builds, with no strategy, holding the values `started` (the run's encoder
    with its strategies, as the run started) has for the encoder's own tensors; why not, or None).

    The state is copied rather than rebuilt with the same seed: a strategy may draw random numbers
    between the two encoders' builds, and unfrozen weights (full, bitfit) must be their start values.
    peft tuners move a wrapped layer's tensors under `base_layer`; those are followed."""
    encoder = reg.build("encoders", spec)
    have = started.state_dict()
    state = {}
    for key in encoder.state_dict():
        found = peft_names.current(key, have)
        if found not in have:
            return None, f"the strategies renamed {key} beyond recognition"
        state[key] = have[found]
    encoder.load_state_dict(state)
    return encoder, ""


@torch.no_grad()
def base_feature_gap(probe: Probe, side: str, indices: np.ndarray, batch_size: int = 16) -> float:
    """Relative distance ||F_trained - F_base|| / ||F_base|| (Frobenius, over the sample) between the
    trained and the base `side` encoder's features of the dataset pairs `indices`, both in eval mode."""
    trained, base = getattr(probe.model, side).encoder, probe.base[side]
    trained.eval()
    diff = norm = 0.0
    for start in range(0, len(indices), batch_size):
        idx = np.asarray(indices[start : start + batch_size])
        if side == "eeg":
            x = torch.from_numpy(np.array(probe.data.eeg[idx], dtype=np.float32)).to(probe.device)
            a, b = trained(x, channels=probe.model.channels), base(x, channels=probe.model.channels)
        else:
            frames = torch.from_numpy(np.array(probe.data.video[idx])).to(probe.device)
            a, b = trained(trained.preprocess(frames)), base(base.preprocess(frames))
        diff += float((a.float() - b.float()).pow(2).sum())
        norm += float(b.float().pow(2).sum())
    return (diff / norm) ** 0.5 if norm > 0 else float("inf")


def sample_indices(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over range(n) (all when n <= k)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


@torch.no_grad()
def embed(probe: Probe, indices: np.ndarray, batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalized (eeg, video) embeddings of the dataset pairs `indices`, float32 on the CPU."""
    data, model = probe.data, probe.model
    model.cached = {}
    eeg_out, video_out = [], []
    for start in range(0, len(indices), batch_size):
        idx = np.asarray(indices[start : start + batch_size])
        batch = {
            "eeg": torch.from_numpy(np.array(data.eeg[idx], dtype=np.float32)),
            "video": torch.from_numpy(np.array(data.video[idx])),
            "group": torch.from_numpy(np.asarray(data.groups[idx], dtype=np.int64)),
            "index": torch.from_numpy(idx.astype(np.int64)),
        }
        e, v, _ = model.embed_batch(batch, probe.device)
        eeg_out.append(e.float().cpu())
        video_out.append(v.float().cpu())
    return torch.cat(eeg_out), torch.cat(video_out)
