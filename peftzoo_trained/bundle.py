"""A self-contained trained model: what `recipes.load(BUNDLE)` needs and nothing else.

    bundle.json              architecture of each side (encoder options without a checkpoint, the
                             strategies to re-apply, head), embed_dim, loss, training data's channel
                             names / rate / window / frame shape, video preprocessing, source run
                             and weights (best or last), library versions
    eeg_encoder.safetensors  the encoder's full state, adapters merged into the base weights where
    video_encoder.safetensors    their strategy offers `merge()` (LoRA, peft tuners, plugins with the
                             hook); adapter weights that cannot merge (prefix, prompt, ...) stay, and
                             their strategies are re-applied
    strategies.pt            each re-applied strategy's `state_dict()` (a seed, a step count), loaded
                             back after re-applying it (torch.load weights_only); only where one
                             of them keeps state
    heads.safetensors        both heads and the loss's tensors (temperature)
    recipe.yaml              the run's resolved recipe (for the record; not read by the loader)
    manifest.json            sha256 and size of every other file, checked on load

`--merged` exports write the same layout with every adapter merged (none to re-apply) plus a recipe
that trains on from the merged encoders; both load with `recipes.load`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from peftzoo_engine.rundir import atomic_write, now, versions
from peftzoo_trained.bundle_schema import (
    AGAIN,
    FORMAT,
    FORMAT_VERSION,
    BundleError,
    BundleInfo,
    read_manifest,
    validate_info,
)
from peftzoo_trained.trained_model import TrainedModel
from registry.errors import UserError

logger = logging.getLogger(__name__)

SIDES = ("eeg", "video")


def is_bundle(path: Path) -> bool:
    return (Path(path) / "bundle.json").is_file()


def foldable(strategy) -> bool:
    """Whether the strategy offers the `merge(encoder)` hook (folds its adapters into the base weights)."""
    from adapters.strategies.base import offers

    return offers(strategy, "merge")


def adapting(tower) -> list:
    """The strategies applied to the tower's encoder that change it: they train or wrap something
    (a strategy that does neither, such as head_only, needs no merging nor re-applying)."""
    return [s for s, report in tower.applied.values() if report.trainable or s.wrapped_modules(tower.encoder)]


def merged_encoder(tower) -> tuple[torch.nn.Module, list, list]:
    """(a merged copy of the tower's encoder, strategies folded into it, the other strategies).

    The encoder and its strategies are copied together, so a strategy's references to the layers it
    wrapped point into the copy, and each foldable strategy's own `merge()` folds it there; the
    trained model is left as it was."""
    encoder, strategies = copy.deepcopy((tower.encoder, adapting(tower)))
    folded = [s for s in strategies if foldable(s)]
    for strategy in folded:
        strategy.merge(encoder)
    return encoder.eval(), folded, [s for s in strategies if not foldable(s)]


def loads_as_plain(config: dict, state: dict[str, torch.Tensor]) -> bool:
    """Whether `state` is a plain checkpoint of the encoder `config` builds: every parameter it has
    after the encoder's own checkpoint conversion (LaBraM grows the q/v biases BitFit trained), and no
    other. Then no strategy needs re-applying: the merged weights are the whole encoder."""
    import registry

    fresh = registry.default().build("encoders", without_checkpoint(config))
    # an encoder without an official file format to convert from (a plugin may have none) takes its own keys
    convert = getattr(fresh, "convert_state_dict", None)
    converted = convert(dict(state))[0] if callable(convert) else dict(state)
    params = {n for n, _ in fresh.named_parameters()}
    return params <= set(converted) and set(converted) <= set(fresh.state_dict())


def has_checkpoint_option(config: dict) -> bool:
    """Whether the encoder's options include `checkpoint` (optional in the plugin contract)."""
    return "checkpoint" in config


def without_checkpoint(config: dict) -> dict:
    """The encoder's options with no checkpoint file, and no trust flag (a bundle never unpickles)."""
    out = {**config, "checkpoint": None} if has_checkpoint_option(config) else dict(config)
    if "trust_checkpoint" in out:
        out["trust_checkpoint"] = False
    return out


def _spec(config) -> dict:
    return config.model_dump(mode="json")


def _tensors(state: dict) -> dict[str, torch.Tensor]:
    # Copies: safetensors refuses tensors that share memory (tied or viewed weights).
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items() if isinstance(v, torch.Tensor)}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_bundle(trained, out: Path, *, require_merged: bool = False, final_path: Path | None = None) -> dict:
    """Write the bundle of `trained` (peftzoo_trained.loading.TrainedModel of a run) into the empty directory `out`.

    With `require_merged`, a strategy that cannot be merged is an error naming it (before any file
    is written). `final_path` is where `out` will be moved, for paths written into recipe.yaml.
    Returns bundle.json's content.
    """
    model, recipe = trained.model, trained.recipe
    if require_merged:
        _require_checkpoint_options(model, recipe)
    sides, states, strategy_states = {}, {}, {}
    for side in SIDES:
        sides[side], states[side], strategy_states[side] = _side_entry(model, recipe, side, require_merged)
    info = _bundle_info(trained, recipe)
    _write_files(out, model, recipe, info, sides, states, strategy_states, require_merged, final_path)
    return info


def _require_checkpoint_options(model, recipe) -> None:
    """A merged export is trained on from its recipe, which names the merged weights as a `checkpoint`."""
    for side in SIDES:
        if not has_checkpoint_option(_spec(getattr(model, side).encoder.cfg)):
            raise UserError(
                f"{side}: encoder {getattr(recipe, side).encoder.name} has no `checkpoint` option, so a recipe "
                f"cannot train on from merged weights; export with --bundle (loads with recipes.load)"
            )


def _side_entry(model, recipe, side: str, require_merged: bool) -> tuple[dict, dict, list]:
    """One side's bundle.json entry, its encoder's merged state and its unmerged strategies' states."""
    tower = getattr(model, side)
    encoder, folded, others = merged_encoder(tower)
    config = without_checkpoint(_spec(encoder.cfg))
    state = _tensors(encoder.state_dict())
    plain = loads_as_plain(config, state)
    if not plain and not others:
        extra = sorted(set(state) - set(tower.encoder.state_dict()))
        raise UserError(
            f"{side}: merging left weights ({', '.join(extra[:3]) or 'changed structure'}) that no strategy "
            f"of this side re-creates; export with --peft or use the run directory"
        )
    if require_merged and not plain:
        raise UserError(
            f"{side}: strategy {', '.join(s.name for s in others)} adds weights that cannot be merged into the "
            f"encoder; "
            f"export with --bundle (self-contained, loads with recipes.load)"
        )
    entry = {
        "encoder": config,
        "plain": plain,
        "strategies": [] if plain else [_spec(s.cfg) for s in others],
        "merged": [s.name for s in folded],
        "head": _spec(getattr(recipe, side).head),
        "preprocessing": _preprocessing(encoder),
    }
    return entry, state, [] if plain else [_strategy_state(s) for s in others]


def _bundle_info(trained, recipe) -> dict:
    """bundle.json's fields other than the sides'."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": trained.name,
        "created": now(),
        "source": {
            "run": str(trained.source),
            "weights": trained.weights,
            "weights_sha256": sha256_file(trained.weights_path) if trained.weights_path else None,
        },
        "embed_dim": int(recipe.embed_dim),
        "loss": _spec(recipe.loss),
        "data": {k: trained.data_info.get(k) for k in ("channels", "sfreq", "n_samples", "frame_shape")},
        "versions": versions(),
    }


def _write_files(
    out: Path,
    model,
    recipe,
    info: dict,
    sides: dict,
    states: dict,
    strategy_states: dict,
    require_merged: bool,
    final_path: Path | None,
) -> None:
    """The bundle's files, each written atomically, bundle.json then the manifest of them all last."""
    from recipes import schema

    heads = {}
    for side in SIDES:
        atomic_write(out / f"{side}_encoder.safetensors", save(states[side]))
        heads.update({f"{side}.head.{k}": v for k, v in _tensors(getattr(model, side).head.state_dict()).items()})
        info[side] = sides[side]
    heads.update({f"loss.{k}": v for k, v in _tensors(model.loss.state_dict()).items()})
    atomic_write(out / "heads.safetensors", save(heads))
    if any(state for states_of_side in strategy_states.values() for state in states_of_side):
        atomic_write(out / "strategies.pt", _torch_bytes(strategy_states))
    if require_merged:
        atomic_write(out / "recipe.yaml", _merged_recipe(recipe, final_path or out))
    else:
        atomic_write(out / "recipe.yaml", schema.dump(recipe))
    atomic_write(out / "bundle.json", json.dumps(info, indent=2) + "\n")
    files = sorted(p for p in out.iterdir() if p.is_file() and p.name != "manifest.json")
    manifest = {"files": {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files}}
    atomic_write(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")


def _strategy_state(strategy) -> dict:
    """The strategy's `state_dict()`, tensors moved to the CPU (loaded back with weights_only)."""
    return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in strategy.state_dict().items()}


def _torch_bytes(value) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _read_strategy_states(path: Path) -> dict:
    """Side -> list of re-applied strategies' states; {} where no strategy keeps state (no file).
    Read with torch's weights-only reader, which refuses any object beyond tensors and plain
    containers: a pickle planted here never runs."""
    file = path / "strategies.pt"
    if not file.is_file():
        return {}
    try:
        states = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "WeightsUnpickler error" in line), lines[0] if lines else "")
        raise BundleError(
            f"{file} cannot be read as plain tensors ({type(exc).__name__}: {reason}); "
            f"it is not the strategy states a bundle holds: {AGAIN}"
        ) from None
    if not isinstance(states, dict):
        raise BundleError(f"{file} does not hold strategy states per side; {AGAIN}")
    return states


def _preprocessing(encoder) -> dict:
    import dataclasses

    spec = getattr(encoder, "input_spec", None)
    if spec is None or not dataclasses.is_dataclass(spec):
        return {}

    return {"input_spec": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(spec).items()}}


def _merged_recipe(recipe, out: Path) -> str:
    """The run's recipe on the merged encoders: head_only on each side, no stages (their strategies
    are in the merged weights now), so training on from it does not apply them twice."""
    import registry
    from recipes import schema

    raw = recipe.model_dump(mode="json")
    for side in SIDES:
        raw[side]["encoder"]["checkpoint"] = str(Path(out).resolve() / f"{side}_encoder.safetensors")
        raw[side]["strategy"] = ["head_only"]
    raw["train"]["stages"] = None
    if recipe.train.stages:
        raw["train"]["epochs"] = sum(s.epochs for s in recipe.train.stages)
    return schema.dump(schema.validate(raw, registry.default()))


# -- reading ------------------------------------------------------------------------------------
def verify(path: Path) -> dict[str, dict]:
    """The manifest lists exactly the bundle's files (peftzoo_trained/bundle_schema.py), and every one
    has its size and sha256: checked before any file of the bundle is read."""
    files = read_manifest(path)
    for name, entry in files.items():
        file = path / name
        if file.stat().st_size != entry["bytes"] or sha256_file(file) != entry["sha256"]:
            raise BundleError(f"{file} differs from the bundle's manifest (size or sha256); {AGAIN}")
    return files


def _read_info(path: Path) -> BundleInfo:
    file = path / "bundle.json"
    try:
        raw = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{file} cannot be read as JSON ({exc}); {AGAIN}") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{file} is not a JSON object; {AGAIN}")
    return validate_info(raw, file)


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors (never a pickle: safetensors holds none)."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{path} is not a readable safetensors file ({exc}); {AGAIN}") from None


def _build(reg, kind: str, spec: dict, file: Path, where: str, **context):
    """A component from bundle.json; its own Config refuses edited options (one message naming the key)."""
    try:
        return reg.build(kind, spec, **context)
    except UserError as exc:
        raise BundleError(f"{file}: {where}: {exc}; {AGAIN}") from None


def read_bundle(path: Path, device: torch.device, checkpoint: str | None = None):
    """The TrainedModel a bundle holds, without the run, its data or the base checkpoints.

    Nothing in the bundle is trusted: the manifest and every file's sha256 first, then bundle.json's
    schema (no trust flag, no checkpoint path), then the safetensors files, and the architecture
    bundle.json describes is checked against their shapes. A bundle holds one set of weights; asking
    for the other (`checkpoint`) is an error."""
    import registry
    from adapters.strategies.base import apply_strategies, report_for
    from peftzoo_model.model import DualEncoderCLIP, Tower

    verify(path)
    info = _read_info(path)
    held = info.source.weights
    if checkpoint is not None and checkpoint != held:
        raise UserError(
            f"{path} is a bundle of the run's {held} weights only; export the {checkpoint} ones with "
            f"python -m recipes.export RUN --bundle OUT --checkpoint {checkpoint}"
        )
    reg = registry.default()
    heads = _load_tensors(path / "heads.safetensors")
    encoder_states = {side: _load_tensors(path / f"{side}_encoder.safetensors") for side in SIDES}
    strategy_states = _read_strategy_states(path)
    bundle_json = path / "bundle.json"
    towers = {}
    for side in SIDES:
        spec = getattr(info, side)
        encoder_spec = spec.encoder.model_dump()
        if "trust_checkpoint" in encoder_spec:
            encoder_spec["trust_checkpoint"] = False  # refused above when set; never on for a bundle
        file = path / f"{side}_encoder.safetensors"
        applied: dict = {}
        if spec.plain and has_checkpoint_option(encoder_spec):
            # the merged weights are the whole encoder: load them as its checkpoint (LaBraM converts them);
            # the file was read above as safetensors, so the encoder's reader takes it as such, never as a pickle
            encoder = _build(reg, "encoders", {**encoder_spec, "checkpoint": str(file)}, bundle_json, f"{side}.encoder")
        else:
            encoder = _build(reg, "encoders", encoder_spec, bundle_json, f"{side}.encoder")
        if spec.plain:
            report = report_for("merged", encoder, [])
        else:
            report = report_for("bundle", encoder, [])
            strategy_specs = [s.model_dump() for s in spec.strategies]
            states = strategy_states.get(side) or [{}] * len(strategy_specs)
            if not isinstance(states, list) or len(states) != len(strategy_specs):
                raise BundleError(
                    f"{path / 'strategies.pt'} does not hold one {side} state for each of the "
                    f"{len(strategy_specs)} strategies in bundle.json; {AGAIN}"
                )
            for i, (strategy_spec, state) in enumerate(zip(strategy_specs, states)):
                strategy = _build(reg, "strategies", strategy_spec, bundle_json, f"{side}.strategies[{i}]")
                report = apply_strategies(encoder, [strategy], applied)
                if state:
                    strategy.load_state_dict(state)
        _load_strict(encoder, encoder_states[side], file, f"{side}.encoder {_options(encoder_spec)}")
        encoder.requires_grad_(False)
        head = _build(
            reg,
            "heads",
            spec.head.model_dump(),
            bundle_json,
            f"{side}.head",
            in_dim=encoder.feature_dim,
            out_dim=info.embed_dim,
        )
        prefix = f"{side}.head."
        head_state = {k[len(prefix) :]: v for k, v in heads.items() if k.startswith(prefix)}
        _load_strict(
            head,
            head_state,
            path / "heads.safetensors",
            f"embed_dim {info.embed_dim} and {side}.head {_options(spec.head.model_dump())} on the encoder's "
            f"{encoder.feature_dim} features",
            prefix,
        )
        tower = Tower(encoder, head, report, [s for s, _ in applied.values()])
        tower.applied = applied
        towers[side] = tower
    loss = _build(reg, "losses", info.loss.model_dump(), bundle_json, "loss")
    loss_state = {k[len("loss.") :]: v for k, v in heads.items() if k.startswith("loss.")}
    _check_shapes(loss, loss_state, path / "heads.safetensors", f"loss {_options(info.loss.model_dump())}", "loss.")
    result = loss.load_state_dict(loss_state, strict=False)
    if result.unexpected_keys:
        raise BundleError(
            f"{path / 'heads.safetensors'} holds loss tensors {result.unexpected_keys} this loss lacks; {AGAIN}"
        )
    data = info.data.model_dump()
    model = DualEncoderCLIP(towers["eeg"], towers["video"], loss, channels=data.get("channels") or [])
    logger.info("%s: bundle of %s (%s weights)", path, info.source.run, held)
    return TrainedModel(
        model,
        source=path,
        weights=f"{held} (bundle)",
        weights_path=None,
        recipe=None,
        data_info=data,
        device=device,
        name=info.name,
    )


def _options(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True)


def _check_shapes(module: torch.nn.Module, state: dict, file: Path, described: str, prefix: str = "") -> None:
    """One message when a tensor's shape differs from what bundle.json's numbers build (an edited
    embed_dim or architecture option), instead of torch's size-mismatch traceback."""
    own = module.state_dict()
    for key, tensor in state.items():
        if key in own and tuple(own[key].shape) != tuple(tensor.shape):
            raise BundleError(
                f"{file}: {prefix}{key} is {tuple(tensor.shape)}, but bundle.json's {described} gives "
                f"{tuple(own[key].shape)}: bundle.json does not describe these weights; {AGAIN}"
            )


def _load_strict(module: torch.nn.Module, state: dict, file: Path, described: str, prefix: str = "") -> None:
    _check_shapes(module, state, file, described, prefix)
    result = module.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise BundleError(
            f"{file} does not fit the architecture in bundle.json ({described}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}); {AGAIN}"
        )
