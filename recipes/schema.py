"""The recipe schema: pydantic models built at run time from what the registry holds.

Every component section (data, each side's encoder/strategy/head, loss) is a discriminated union
over the installed components of that kind, keyed by `name`; each variant is the component's own
`Config` plus its `name`, with unknown keys forbidden. So a plugin's options are validated exactly
like built-ins. A bare string is a name with default options.

Errors come back as one message with a line per problem, located by dotted key and saying what is
allowed:  `eeg.strategy.name: 'lora_q' is not a strategy; did you mean 'lora'? (installed: ...)`.

`python -m recipes.schema` prints the JSON Schema of recipes for editors.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import types
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from peftzoo_model.metric_names import SELECTABLE_METRICS, lower_is_better
from recipes.errors import RecipeError
from registry import default, yamlio
from registry.core import Registry
from registry.errors import did_you_mean
from registry.pipes import quiet_on_broken_pipe

BUNDLED_DIR = Path(__file__).parent / "bundled"

WORDS = {
    "encoders": "encoder",
    "strategies": "strategy",
    "heads": "head",
    "losses": "loss",
    "datasets": "data set",
    "callbacks": "training callback",
}


@dataclasses.dataclass(frozen=True)
class ComponentMarker:
    """Annotated metadata that marks a field as a component union (for locating errors)."""

    kind: str
    modality: str | None = None

    def word(self) -> str:
        base = WORDS[self.kind]
        return (
            f"{'an' if self.modality == 'eeg' else 'a'} "
            f"{self.modality.upper() if self.modality == 'eeg' else self.modality} {base}"
            if self.modality
            else f"a {base}"
        )


SEED_MAX = 2**32 - 1  # numpy's seed range
EMBED_DIM_MAX = 65_536


def _numbers_in(annotation: Any) -> bool:
    """The annotation is a number type (int or float, possibly optional or in a list/tuple), not bool."""
    annotation, _ = _unwrap(annotation, [])
    if annotation in (int, float):
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_numbers_in(a) for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) in (list, tuple):
        return any(_numbers_in(a) for a in get_args(annotation) if a is not Ellipsis)
    return False


def _has_bool(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, (list, tuple)) and any(isinstance(v, bool) for v in value))


class StrictNumbers(BaseModel):
    """Base of every recipe model: numbers are finite, and true/false is not a number.

    pydantic's lax mode reads `epochs: true` as 1 and accepts `.inf`/`.nan` within `ge`/`gt` bounds;
    its strict mode would also refuse YAML lists for tuples, so only these two rules are tightened.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return _refuse_bool(cls, value, info)


def _refuse_bool(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    field = cls.model_fields.get(info.field_name) if info.field_name else None
    if field is not None and _has_bool(value) and _numbers_in(field.annotation):
        raise ValueError(f"expected a number, got {value!r} (true/false is not a number)")
    return value


class _Section(StrictNumbers):
    pass


SCHEMA_DESCRIPTION = (
    "A peftzoo recipe (python -m recipes.run RECIPE). This schema is generated from the installed "
    "components by `python -m recipes.schema`: regenerate it after installing or removing a plugin, "
    "whose components and options it lists. peftzoo_tools.run also checks what a schema cannot "
    "(finite numbers, architecture consistency, the data against the encoders)."
)


class Recipe(StrictNumbers):
    # The static type of a validated recipe: the base of the model `recipe_model(reg)` builds from the installed
    # components, so code that takes a recipe can say `Recipe` (the component sections' own types exist only at
    # run time: each is a union over what is installed).
    __doc__ = SCHEMA_DESCRIPTION
    model_config = ConfigDict(json_schema_extra={"$comment": "peftzoo recipe"})

    if TYPE_CHECKING:  # the fields build_recipe_model declares, for readers and type checkers
        name: str
        seed: int
        data: Any
        eeg: Any
        video: Any
        embed_dim: int
        loss: Any
        train: TrainConfig
        eval: EvalConfig


_RecipeBase = Recipe


class LrScales(_Section):
    """Learning-rate multipliers by parameter role, applied on top of train.lr and a strategy's own lr_scale."""

    head: float = Field(1.0, ge=0)
    adapter: float = Field(1.0, ge=0)
    """Parameters a strategy adds to an encoder: LoRA matrices, prefixes, prompts, IA3 vectors."""
    encoder: float = Field(1.0, ge=0)
    """Pretrained encoder weights a strategy unfreezes (full, last_k, bitfit); SigLIP fine-tunes these at 0.1."""
    loss: float = Field(1.0, ge=0)
    """The loss's own parameters (temperature, bias)."""


class Select(_Section):
    """Which evaluated epoch's weights to keep as best.safetensors."""

    metric: str = "val/eeg_to_video/R@1"
    mode: Literal["max", "min"] | None = None
    """max or min is better; None: min for val/loss and ranks, max for recalls."""

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in SELECTABLE_METRICS:
            raise ValueError(
                f"{metric!r} is not a metric the evaluation logs{did_you_mean(metric, SELECTABLE_METRICS)}; "
                f"use one of {', '.join(SELECTABLE_METRICS)}"
            )
        return metric

    @model_validator(mode="after")
    def _default_mode(self) -> Select:
        if self.mode is None:
            self.mode = "min" if lower_is_better(self.metric) else "max"
        return self


class EarlyStopping(_Section):
    """Stop when train.select's metric has not improved by min_delta for patience evaluations."""

    patience: int = Field(..., ge=1)
    min_delta: float = Field(0.0, ge=0)


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)
    """Pairs per (micro-)batch; every pair's partner is the positive and the rest of the batch the negatives.
    Under torchrun it is the global batch: each of N processes takes batch_size / N pairs of it."""
    accum_freq: int = Field(1, ge=1)
    """Micro-batches per optimizer step; all accum_freq x batch_size pairs are each other's negatives."""
    lr: float = Field(1e-3, ge=0)
    """Peak learning rate of the heads; encoder parameters get it times their strategy's lr_scale."""
    lr_scales: LrScales = LrScales()
    """Multipliers of lr for heads, adapters, unfrozen pretrained encoder weights and the loss."""
    weight_decay: float = Field(0.05, ge=0)
    """Applied to weight matrices only: never to biases, norms, embeddings or the temperature."""
    optimizer: str = "adamw"
    """A timm optimizer name (adamw, lamb, sgd, ...)."""
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    """Linear warmup over this share of all steps, then cosine decay to min_lr, per step."""
    warmup_steps: int | None = Field(None, ge=0)
    """Warmup length in steps; overrides warmup_fraction."""
    min_lr: float = Field(0.0, ge=0)
    grad_clip_norm: float | None = Field(None, gt=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast precision: auto is bf16 on a GPU that supports it, else fp32; fp16 adds a GradScaler."""
    max_nonfinite_steps: int = Field(10, ge=1)
    """Consecutive steps with a NaN/inf loss or gradient (each skipped) before the run stops."""
    sampler: Literal["auto", "random", "group_disjoint"] = "auto"
    """Batches of pairs from distinct groups (group_disjoint), or any (random); auto chooses
    group_disjoint when pairs share groups and the loss does not mask same-group pairs."""
    feature_cache: bool = True
    """Compute a frozen encoder's features once per stage (and keep them on disk) instead of every step."""
    cache_dir: str | None = None
    """Where cached features are kept; None is <output dir>/.cache/features."""
    num_workers: int = Field(0, ge=0)
    """DataLoader worker processes; 0 loads in the training process."""
    device: str = "auto"
    """auto (cuda if available, else cpu), cpu, cuda, cuda:N."""
    log_every: int = Field(10, ge=1)
    """Steps between training-loss lines in metrics.jsonl; an epoch none of whose steps is a multiple of it
    logs its last step's loss, so every epoch has one."""
    select: Select | None = None
    """Keep the best evaluated epoch's weights as best.safetensors: {metric, mode}; None keeps the last only."""
    early_stopping: EarlyStopping | None = None
    """Stop after `patience` evaluations without an improvement of train.select's metric (default
    val/eeg_to_video/R@1, max) by more than min_delta."""
    loggers: list[Literal["jsonl", "tensorboard"]] = Field(default_factory=lambda: ["jsonl"])
    """Where metrics go: jsonl (metrics.jsonl, always kept: evaluate, compare and doctor read it) and
    tensorboard (RUN/tensorboard/, the same names, plus the recipe's hyperparameters; extra `tensorboard`).
    A logger other than jsonl is the training callback of that name (train.callbacks)."""

    @field_validator("loggers")
    @classmethod
    def _loggers_available(cls, names: list[str]) -> list[str]:
        unique = list(dict.fromkeys(names))
        if "jsonl" not in unique:
            raise ValueError(
                "metrics.jsonl is part of every run directory (evaluate, compare and doctor read it); "
                "keep jsonl in the list"
            )
        if "tensorboard" in unique and importlib.util.find_spec("tensorboard") is None:
            raise ValueError("tensorboard needs the tensorboard package: pip install 'peftzoo[tensorboard]'")
        return unique

    @model_validator(mode="after")
    def _epochs_match_stages(self) -> TrainConfig:
        stages = getattr(self, "stages", None)
        if stages:
            total = sum(s.epochs for s in stages)
            if "epochs" in self.model_fields_set and self.epochs != total:
                raise ValueError(
                    f"epochs is {self.epochs} but the stages add up to {total}; drop epochs or make them agree"
                )
            self.epochs = total
        return self

    @field_validator("optimizer")
    @classmethod
    def _timm_optimizer(cls, name: str) -> str:
        import timm.optim  # here, not at import: timm takes seconds to import

        names = timm.optim.list_optimizers()
        if name.lower() not in names:
            raise ValueError(f"{name!r} is not a timm optimizer{did_you_mean(name.lower(), names)}")
        return name.lower()


class EvalConfig(_Section):
    every_epochs: int = Field(1, ge=1)
    batch_size: int | None = Field(None, ge=1)
    """Batch size for embedding the validation split; None uses train.batch_size."""


def _bare_name(value: Any) -> Any:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict):
        return value
    raise ValueError(f"expected a name or a mapping with `name` and options, got {value!r}")


def _as_list(value: Any) -> Any:
    if isinstance(value, (str, dict)):
        return [value]
    if isinstance(value, list):
        return value
    raise ValueError(f"expected a strategy name, a mapping with `name`, or a list of them, got {value!r}")


def _no_callback_installed(value: Any) -> Any:
    name = value.get("name") if isinstance(value, dict) else value
    raise ValueError(f"{name!r} is not a training callback (installed: none)")


def _variant(kind: str, name: str, component: Any) -> type[BaseModel]:
    """The component's Config plus `name: Literal[name]`, unknown keys forbidden."""
    namespace = {
        "__annotations__": {"name": Literal[name]},
        "model_config": ConfigDict(extra="forbid", allow_inf_nan=False),
        "__module__": __name__,
        "__doc__": getattr(component, "description", None) or component.Config.__doc__,
    }
    title = f"{WORDS[kind].title().replace(' ', '')}_{name}"
    # Explicit fields, not "*": pydantic allows no before-validator on the discriminator `name`.
    numeric = [f for f, info in component.Config.model_fields.items() if _numbers_in(info.annotation)]
    if numeric:
        namespace["_no_bool_for_numbers"] = field_validator(*numeric, mode="before")(classmethod(_refuse_bool))
    return type(component.Config)(title, (component.Config,), namespace)


def _union(marker: ComponentMarker, components: dict[str, Any]) -> Any:
    if not components:
        raise RecipeError(f"no {marker.word()[2:].strip()} is installed; reinstall peftzoo (pip install -e .)")
    variants = tuple(Annotated[_variant(marker.kind, n, c), Tag(n)] for n, c in sorted(components.items()))
    union = Annotated[Union[variants], Field(discriminator="name")]  # noqa: UP007 (runtime Union of a tuple)
    bare = Literal[tuple(sorted(components))]  # a bare name: one of the installed ones (an enum in the JSON Schema)
    return Annotated[union, BeforeValidator(_bare_name, json_schema_input_type=bare | union), marker]


def build_recipe_model(reg: Registry) -> type[BaseModel]:
    """The Recipe model for the components installed in `reg`."""
    encoders = reg.load_all("encoders")
    by_modality = {
        m: {n: c for n, c in encoders.items() if getattr(c, "modality", None) == m} for m in ("eeg", "video")
    }
    strategy = _union(ComponentMarker("strategies"), reg.load_all("strategies"))
    head = _union(ComponentMarker("heads"), reg.load_all("heads"))
    strategies = Annotated[
        list[strategy],
        BeforeValidator(_as_list, json_schema_input_type=strategy | Annotated[list[strategy], Field(min_length=1)]),
        Field(min_length=1),
    ]

    def side(modality: str) -> type[BaseModel]:
        return create_model(
            f"{modality.title()}Side",
            __base__=StrictNumbers,
            encoder=(_union(ComponentMarker("encoders", modality), by_modality[modality]), ...),
            # defaults validated like written values: a bare default string would stay a string (its letters iterated)
            strategy=(strategies, Field("head_only", validate_default=True)),
            head=(head, Field("linear", validate_default=True)),
        )

    stage_side = create_model("StageSide", __base__=StrictNumbers, strategy=(strategies, ...))
    stage = create_model(
        "Stage",
        __base__=StrictNumbers,
        __doc__="One training stage: its epochs, its lr, and the strategies of the sides that change.",
        epochs=(int, Field(..., ge=1)),
        lr=(float | None, Field(None, ge=0)),
        eeg=(stage_side | None, None),
        video=(stage_side | None, None),
    )
    installed_callbacks = reg.load_all("callbacks")
    if installed_callbacks:
        callback = _union(ComponentMarker("callbacks"), installed_callbacks)
    else:  # none installed: every name is refused, as an unknown one is
        callback = Annotated[Any, BeforeValidator(_no_callback_installed), ComponentMarker("callbacks")]
    train = create_model(
        "Train",
        __base__=TrainConfig,
        stages=(list[stage] | None, Field(None, min_length=1)),
        callbacks=(
            list[callback],
            Field(
                default_factory=list,
                description=(
                    "Training callbacks (their registry names, or {name, options}): hooks at the run's start and end, "
                    "each step, epoch and evaluation, with state kept in checkpoints (peftzoo_engine/callbacks.py)."
                ),
            ),
        ),
    )

    recipe = create_model(
        "Recipe",
        __base__=_RecipeBase,
        name=(str, Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")),
        seed=(int, Field(0, ge=0, le=SEED_MAX)),
        data=(_union(ComponentMarker("datasets"), reg.load_all("datasets")), ...),
        eeg=(side("eeg"), ...),
        video=(side("video"), ...),
        embed_dim=(int, Field(256, ge=1, le=EMBED_DIM_MAX)),
        loss=(_union(ComponentMarker("losses"), reg.load_all("losses")), Field("clip", validate_default=True)),
        train=(train, Field(default_factory=train)),
        eval=(EvalConfig, Field(default_factory=EvalConfig)),
    )
    return recipe


@lru_cache(maxsize=4)
def _cached_model(reg_id: int, reg: Registry) -> type[BaseModel]:
    return build_recipe_model(reg)


def recipe_model(reg: Registry) -> type[BaseModel]:
    return _cached_model(id(reg), reg)


# -- reading ---------------------------------------------------------------------------------------
def bundled_names() -> list[str]:
    return sorted(p.name for p in BUNDLED_DIR.glob("*.yaml"))


def resolve(source: str | Path) -> Path:
    """A recipe path as given, else a bundled recipe by name (with or without .yaml)."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    if str(source) in (path.name, name.removesuffix(".yaml")) or path.parent == Path("."):
        bundled = BUNDLED_DIR / name
        if bundled.is_file():
            return bundled
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.y*ml"))
        if "recipe.yaml" in inside:
            hint = f"; a run directory continues with --resume {str(source)!r}, or give {str(path / 'recipe.yaml')!r}"
        else:
            hint = f" (it holds {', '.join(inside[:5])})" if inside else ""
        raise RecipeError(
            f"recipe {str(source)!r} is a directory, not a recipe file; give the path of a .yaml recipe{hint}"
        )
    names = bundled_names()
    raise RecipeError(
        f"recipe {str(source)!r} is neither a file nor a bundled recipe{did_you_mean(name, names)} "
        f"(bundled: {', '.join(names)})"
    )


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"recipe {str(path)!r} could not be read: {exc}") from None
    try:
        raw = yamlio.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"recipe {str(path)!r} is not valid YAML{where}: {problem}") from None
    if raw is None:
        raise RecipeError(f"recipe {str(path)!r} is empty; see the bundled recipes for the sections it needs")
    if not isinstance(raw, dict):
        raise RecipeError(
            f"recipe {str(path)!r} must be a mapping of sections (name, data, eeg, video, ...), not a "
            f"{type(raw).__name__}"
        )
    return raw


def validate(raw: dict[str, Any], reg: Registry, source: str = "recipe") -> BaseModel:
    model = recipe_model(reg)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [format_error(err, model, raw, reg) for err in exc.errors(include_url=False)]
        unique = list(dict.fromkeys(lines))
        raise RecipeError(f"{source} is not a valid recipe:\n" + "\n".join(f"  {line}" for line in unique)) from None


def dump(recipe: BaseModel) -> str:
    """The fully resolved recipe as YAML (every default written out)."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)


# -- error locations -------------------------------------------------------------------------------
def _unwrap(tp: Any, meta: list) -> tuple[Any, list]:
    """Strip Annotated (collecting its metadata) and Optional."""
    while True:
        if get_origin(tp) is Annotated:
            args = get_args(tp)
            tp, meta = args[0], meta + list(args[1:])
        elif get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp, meta
            tp = rest[0]
        else:
            return tp, meta


def _variants(tp: Any) -> dict[str, type[BaseModel]]:
    """Tag -> variant model of a component union (a union of one variant is that model itself)."""
    out = {}
    for arg in get_args(tp) if get_origin(tp) is Union else (tp,):
        model, _ = _unwrap(arg, [])
        if isinstance(model, type) and issubclass(model, BaseModel) and "name" in model.model_fields:
            annotation = model.model_fields["name"].annotation
            if get_origin(annotation) is Literal:
                out[get_args(annotation)[0]] = model
    return out


def _locate(model: type[BaseModel], loc: tuple, raw: Any):
    """Walk `loc` through the model's types: (dotted key parts, last model reached, last marker)."""
    clean: list[str] = []
    tp: Any = model
    meta: list = []
    marker = None
    parent: type[BaseModel] | None = None
    node = raw
    for part in loc:
        tp, meta = _unwrap(tp, meta)
        marker = next((m for m in meta if isinstance(m, ComponentMarker)), marker)
        variants = _variants(tp)
        if part in variants:  # the discriminator tag pydantic puts in the location
            tp, meta = variants[part], []
            continue
        if get_origin(tp) is Union:
            tp = None
        if get_origin(tp) is list and isinstance(part, int):
            if isinstance(node, list):
                clean.append(str(part))
                node = node[part] if part < len(node) else None
            tp, meta = get_args(tp)[0], []
            continue
        clean.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
        if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            parent = tp
            field = tp.model_fields[part]
            tp, meta = field.annotation, list(field.metadata)
            marker = next((m for m in _unwrap(tp, meta)[1] if isinstance(m, ComponentMarker)), None)
        else:
            parent = tp if isinstance(tp, type) and issubclass(tp, BaseModel) else parent
            tp = None
    _, meta = _unwrap(tp, meta)
    marker = next((m for m in meta if isinstance(m, ComponentMarker)), marker)
    return clean, parent, marker


def _is_component(tp: Any, meta: list) -> bool:
    tp, meta = _unwrap(tp, meta)
    return any(isinstance(m, ComponentMarker) for m in meta)


def _allowed(model: type[BaseModel] | None) -> list[str]:
    return list(model.model_fields) if model is not None else []


def _installed(reg: Registry, marker: ComponentMarker) -> list[str]:
    components = reg.load_all(marker.kind)
    return sorted(n for n, c in components.items() if marker.modality in (None, getattr(c, "modality", None)))


def component_message(reg: Registry, marker: ComponentMarker, name: Any) -> str:
    """Why `name` is not usable here: unknown (did you mean), failed to load, or the wrong modality."""
    kind = marker.kind
    installed = _installed(reg, marker)
    if isinstance(name, str) and name in reg.names(kind):
        err = reg.load_error(kind, name)
        if err is not None:
            return str(err)
        other = getattr(reg.get(kind, name), "modality", None)
        if marker.modality and other != marker.modality:
            return (
                f"{name!r} is a {other} {WORDS[kind]}, this side needs {marker.word()} "
                f"(installed: {', '.join(sorted(installed))})"
            )
    listing = ", ".join(sorted(installed)) or "none"
    return f"{name!r} is not {marker.word()}{did_you_mean(str(name), installed)} (installed: {listing})"


def format_error(err: dict, model: type[BaseModel], raw: dict, reg: Registry) -> str:
    clean, parent, marker = _locate(model, tuple(err["loc"]), raw)
    key = ".".join(clean) or "(recipe)"
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "union_tag_invalid" and marker is not None:
        return f"{key}.name: {component_message(reg, marker, ctx.get('tag'))}"
    if kind == "union_tag_not_found" and marker is not None:
        return f"{key}: missing `name`; {marker.word()} is given by name, e.g. {key.split('.')[-1]}: {{name: ..., ...}}"
    if kind == "extra_forbidden":
        allowed = _allowed(parent)
        bad = clean[-1] if clean else "?"
        return f"{key}: unknown key{did_you_mean(bad, allowed)} (allowed: {', '.join(allowed)})"
    if kind == "missing":
        if marker is not None and clean and _is_component_key(parent, clean[-1]):
            installed = ", ".join(_installed(reg, marker)) or "none"
            return f"{key}: required section is missing; name {marker.word()} (installed: {installed})"
        return f"{key}: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or kind == "value_error" else f" (got {value!r})"
    return f"{key}: {msg}{shown}"


def _is_component_key(parent: type[BaseModel] | None, key: str) -> bool:
    if parent is None or key not in parent.model_fields:
        return False
    field = parent.model_fields[key]
    return _is_component(field.annotation, list(field.metadata))


def json_schema(reg: Registry) -> dict[str, Any]:
    """The JSON Schema of recipes for the components installed in `reg` (validation side: what a recipe file
    may hold)."""
    schema = recipe_model(reg).model_json_schema(mode="validation")
    schema["description"] = SCHEMA_DESCRIPTION
    return schema


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    """Print the JSON Schema of recipes (for editors: yaml-language-server, VS Code, ...)."""
    parser = argparse.ArgumentParser(
        prog="python -m recipes.schema",
        description="Print the JSON Schema of peftzoo recipes for the installed components "
        "(regenerate it after installing a plugin): python -m recipes.schema > recipe.schema.json",
    )
    parser.parse_args(argv)
    print(json.dumps(json_schema(default()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
