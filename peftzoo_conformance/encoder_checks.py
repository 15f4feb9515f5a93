"""Encoder checks: a small build, the input contract, pooled features, trainability, no-decay names."""

from __future__ import annotations

import torch

import registry
from peftzoo_conformance import probes
from peftzoo_conformance.errors import require

KIND = "encoders"


def build_small(name: str):
    component = registry.get(KIND, name)
    torch.manual_seed(0)
    return registry.build(KIND, {"name": name, **probes.small_options(KIND, name, component)}).eval()


def check_builds_with_defaults(name: str) -> None:
    """The defaults validate, and a (small) build has what the core reads."""
    component = registry.get(KIND, name)
    component.Config.model_validate({})
    encoder = build_small(name)
    dim = getattr(encoder, "feature_dim", None)
    require(isinstance(dim, int) and dim > 0, "builds_with_defaults", KIND, name, f"feature_dim must be a positive int, got {dim!r}")
    require(getattr(encoder, "modality", None) == component.modality, "builds_with_defaults", KIND, name,
            "the built encoder's `modality` differs from its class's")
    spec = getattr(encoder, "input_spec", None)
    require(spec is not None and callable(getattr(spec, "check", None)), "builds_with_defaults", KIND, name,
            "`input_spec` must have a `check(...)` method (see encoders.base.EEGInputSpec / VideoInputSpec)")
    blocks = getattr(encoder, "blocks", None)
    require(blocks is not None and all(isinstance(b, torch.nn.Module) for b in blocks), "builds_with_defaults", KIND, name,
            "`blocks` must be the ordered sequence of the encoder's blocks (modules), for strategies that train the last blocks")


def check_forward_gives_pooled_features(name: str) -> None:
    encoder = build_small(name)
    spec = encoder.input_spec
    if encoder.modality == "eeg":
        spec.check(sfreq=spec.sfreq, channels=probes.EEG_CHANNELS, n_samples=probes.eeg_samples(spec), encoder=name)
    else:
        frames = torch.zeros(2, spec.frames, spec.size, spec.size, 3, dtype=torch.uint8)
        clip = encoder.preprocess(frames)
        require(clip.dtype.is_floating_point and tuple(clip.shape) == (2, 3, spec.frames, spec.size, spec.size),
                "forward_gives_pooled_features", KIND, name,
                f"preprocess(uint8 (2, {spec.frames}, {spec.size}, {spec.size}, 3)) must give float (2, 3, {spec.frames}, "
                f"{spec.size}, {spec.size}), got {clip.dtype} {tuple(clip.shape)}")
    with torch.no_grad():
        out = probes.run(encoder, probes.example_call(encoder, batch=3))
    require(tuple(out.shape) == (3, encoder.feature_dim), "forward_gives_pooled_features", KIND, name,
            f"a batch of 3 gave shape {tuple(out.shape)}, not (3, feature_dim={encoder.feature_dim})")
    require(bool(torch.isfinite(out).all()), "forward_gives_pooled_features", KIND, name, "features hold NaN or inf")


def check_all_parameters_train(name: str) -> None:
    """With every parameter trainable (full fine-tuning), one step changes the output."""
    encoder = build_small(name)
    call = probes.example_call(encoder)
    with torch.no_grad():
        before = probes.run(encoder, call).clone()
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-2)
    encoder.train()
    probes.run(encoder, call).pow(2).mean().backward()
    optimizer.step()
    encoder.eval()
    with torch.no_grad():
        after = probes.run(encoder, call)
    require(not torch.allclose(before, after, atol=1e-6, rtol=0), "all_parameters_train", KIND, name,
            "one step on every parameter left the output unchanged")


def check_no_weight_decay_names(name: str) -> bool:
    """`no_weight_decay()` (timm's convention) names existing parameters. False when not offered."""
    encoder = build_small(name)
    hook = getattr(encoder, "no_weight_decay", None)
    if not callable(hook):
        return False
    names = set(hook())
    params = {n for n, _ in encoder.named_parameters()}
    # timm allows module-name prefixes as well as full parameter names
    unknown = sorted(n for n in names if n not in params and not any(p.startswith(n + ".") for p in params))
    require(not unknown, "no_weight_decay_names", KIND, name, f"no_weight_decay() names no parameter of the encoder: {unknown[:5]}")
    return True
