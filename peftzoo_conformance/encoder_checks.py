"""Encoder checks: a small build, the input contract, pooled features (float32, on the input's device), the
input left as it was, trainability, no-decay names."""

from __future__ import annotations

import torch

import registry
from peftzoo_conformance import probes
from peftzoo_conformance.errors import ConformanceError, named_check, require

KIND = "encoders"


def build_small(name: str):
    component = registry.get(KIND, name)
    torch.manual_seed(0)
    return registry.build(KIND, {"name": name, **probes.small_options(KIND, name, component)}).eval()


@named_check("builds_with_defaults", KIND)
def check_builds_with_defaults(name: str) -> None:
    """The defaults validate, and a (small) build has what the core reads."""
    component = registry.get(KIND, name)
    component.Config.model_validate({})
    encoder = build_small(name)
    dim = getattr(encoder, "feature_dim", None)
    require(
        isinstance(dim, int) and dim > 0,
        "builds_with_defaults",
        KIND,
        name,
        f"feature_dim must be a positive int, got {dim!r}",
    )
    require(
        getattr(encoder, "modality", None) == component.modality,
        "builds_with_defaults",
        KIND,
        name,
        "the built encoder's `modality` differs from its class's",
    )
    spec = getattr(encoder, "input_spec", None)
    require(
        spec is not None and callable(getattr(spec, "check", None)),
        "builds_with_defaults",
        KIND,
        name,
        "`input_spec` must have a `check(...)` method (see encoders.base.EEGInputSpec / VideoInputSpec)",
    )
    blocks = getattr(encoder, "blocks", None)
    require(
        blocks is not None and all(isinstance(b, torch.nn.Module) for b in blocks),
        "builds_with_defaults",
        KIND,
        name,
        "`blocks` must be the ordered sequence of the encoder's blocks (modules), "
        "for strategies that train the last blocks",
    )


@named_check("forward_gives_pooled_features", KIND)
def check_forward_gives_pooled_features(name: str) -> None:
    encoder = build_small(name)
    spec = encoder.input_spec
    if encoder.modality == "eeg":
        spec.check(sfreq=spec.sfreq, channels=probes.EEG_CHANNELS, n_samples=probes.eeg_samples(spec), encoder=name)
    else:
        frames = torch.zeros(2, spec.frames, spec.size, spec.size, 3, dtype=torch.uint8)
        clip = encoder.preprocess(frames)
        require(
            clip.dtype.is_floating_point and tuple(clip.shape) == (2, 3, spec.frames, spec.size, spec.size),
            "forward_gives_pooled_features",
            KIND,
            name,
            f"preprocess(uint8 (2, {spec.frames}, {spec.size}, {spec.size}, 3)) must give float (2, 3, {spec.frames}, "
            f"{spec.size}, {spec.size}), got {clip.dtype} {tuple(clip.shape)}",
        )
    with torch.no_grad():
        out = probes.run(encoder, probes.example_call(encoder, batch=3))
    require(
        tuple(out.shape) == (3, encoder.feature_dim),
        "forward_gives_pooled_features",
        KIND,
        name,
        f"a batch of 3 gave shape {tuple(out.shape)}, not (3, feature_dim={encoder.feature_dim})",
    )
    require(bool(torch.isfinite(out).all()), "forward_gives_pooled_features", KIND, name, "features hold NaN or inf")


@named_check("all_parameters_train", KIND)
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
    require(
        not torch.allclose(before, after, atol=1e-6, rtol=0),
        "all_parameters_train",
        KIND,
        name,
        "one step on every parameter left the output unchanged",
    )


@named_check("no_weight_decay_names", KIND)
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
    require(
        not unknown,
        "no_weight_decay_names",
        KIND,
        name,
        f"no_weight_decay() names no parameter of the encoder: {unknown[:5]}",
    )
    return True


def _tensors(call: tuple[tuple, dict]) -> list[torch.Tensor]:
    args, kwargs = call
    return [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]


@named_check("output_dtype_and_device", KIND)
def check_output_dtype_and_device(name: str) -> None:
    """float32 input (and float32 weights) give float32 features on the input's device: the heads are
    float32, so float64 features stop training at the first head; features on another device too. On a
    machine with a GPU the encoder is also run there."""
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        encoder = build_small(name).to(device)
        if encoder.modality == "video":
            spec = encoder.input_spec
            frames = torch.zeros(2, spec.frames, spec.size, spec.size, 3, dtype=torch.uint8, device=device)
            clip = encoder.preprocess(frames)
            require(
                clip.dtype == torch.float32 and clip.device.type == device.type,
                "output_dtype_and_device",
                KIND,
                name,
                f"preprocess(uint8 frames on {device}) gave {clip.dtype} on {clip.device}, not float32 on {device}",
            )
        args, kwargs = probes.example_call(encoder.cpu())
        encoder.to(device)
        call = (tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args), kwargs)
        with torch.no_grad():
            out = probes.run(encoder, call)
        require(
            isinstance(out, torch.Tensor) and out.dtype == torch.float32,
            "output_dtype_and_device",
            KIND,
            name,
            f"float32 input gave features of dtype {getattr(out, 'dtype', type(out).__name__)}, not float32 "
            f"(the heads after it are float32; cast inside forward, e.g. `.float()`)",
        )
        require(
            out.device.type == device.type,
            "output_dtype_and_device",
            KIND,
            name,
            f"input on {device} gave features on {out.device}; keep every tensor on the input's device",
        )


@named_check("input_not_modified", KIND)
def check_input_not_modified(name: str) -> None:
    """forward (train and eval mode) and a video encoder's preprocess leave their input as it was: the
    trainer feeds one batch to more than one place (the feature cache, both loss directions, evaluation)."""
    encoder = build_small(name)
    if encoder.modality == "video":
        spec = encoder.input_spec
        frames = torch.randint(
            0,
            256,
            (2, spec.frames, spec.size, spec.size, 3),
            dtype=torch.uint8,
            generator=torch.Generator().manual_seed(5),
        )
        kept = frames.clone()
        encoder.preprocess(frames)
        require(
            torch.equal(frames, kept),
            "input_not_modified",
            KIND,
            name,
            "preprocess(frames) changed the frames it was given",
        )
    for mode in ("train", "eval"):
        call = probes.example_call(encoder)
        before = [t.clone() for t in _tensors(call)]
        encoder.train(mode == "train")
        with torch.set_grad_enabled(mode == "train"):
            probes.run(encoder, call)
        changed = [i for i, (t, b) in enumerate(zip(_tensors(call), before)) if not torch.equal(t, b)]
        if changed:
            raise ConformanceError(
                "input_not_modified",
                KIND,
                name,
                f"forward in {mode} mode changed its input tensor in place (argument {changed[0]}); "
                f"work on a copy (`x = x / s`, not `x /= s`)",
            )
