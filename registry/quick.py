"""The quick, import-level checks of the plugin contract: what `list-registry --check` runs for every
listed component, and the first part of the conformance kit (peftzoo_conformance imports them from here).

They import the component and look at its class only (no build, no torch computation), so they
take milliseconds per component. They live in the registry, the lowest layer, so that
`list-registry` needs nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from registry.component import describe


class ConformanceError(AssertionError):
    """A component breaks the plugin contract; the message starts with `[check_name]`."""

    def __init__(self, check: str, kind: str, name: str, message: str):
        self.check, self.kind, self.name = check, kind, name
        super().__init__(f"[{check}] {kind} {name!r}: {message}")


def require(condition: bool, check: str, kind: str, name: str, message: str) -> None:
    if not condition:
        raise ConformanceError(check, kind, name, message)


UNKNOWN_KEY = "conformance_unknown_key"
MODALITIES = ("eeg", "video")
CALLBACK_HOOKS = (
    "on_run_start",
    "on_epoch_start",
    "on_step_end",
    "on_epoch_end",
    "on_evaluation_end",
    "on_log",
    "on_run_end",
    "state_dict",
    "load_state_dict",
)
"""The hooks a training callback may define (peftzoo_engine/callbacks.py calls them)."""


def check_config_is_pydantic(kind: str, name: str, component: Any) -> None:
    config = getattr(component, "Config", None)
    require(
        isinstance(config, type) and issubclass(config, BaseModel),
        "config_is_pydantic",
        kind,
        name,
        "`Config` must be a pydantic model (subclass registry.component.ComponentConfig)",
    )


def check_config_refuses_unknown_keys(kind: str, name: str, component: Any) -> None:
    try:
        component.Config.model_validate({UNKNOWN_KEY: 1})
    except ValidationError as exc:
        kinds = {e["type"] for e in exc.errors()}
        require(
            "extra_forbidden" in kinds,
            "config_refuses_unknown_keys",
            kind,
            name,
            f"an unknown key was refused for another reason ({sorted(kinds)}), not as unknown; "
            f"set model_config extra='forbid' (subclass registry.component.ComponentConfig)",
        )
        return
    raise ConformanceError(
        "config_refuses_unknown_keys",
        kind,
        name,
        f"`Config` accepted the unknown key {UNKNOWN_KEY!r}: a typo in a recipe would be ignored silently; "
        f"subclass registry.component.ComponentConfig (extra='forbid')",
    )


def check_config_has_description(kind: str, name: str, component: Any) -> None:
    require(
        bool(describe(component)),
        "config_has_description",
        kind,
        name,
        "no description: set a one-line class attribute `description` (shown by list-registry)",
    )


def check_has_from_config(kind: str, name: str, component: Any) -> None:
    require(
        callable(getattr(component, "from_config", None)),
        "has_from_config",
        kind,
        name,
        "no `from_config(config, **context)` classmethod to build it",
    )


def check_kind_attributes(kind: str, name: str, component: Any) -> None:
    """What each kind needs on the class, before anything is built."""
    if kind == "encoders":
        modality = getattr(component, "modality", None)
        require(
            modality in MODALITIES,
            "kind_attributes",
            kind,
            name,
            f"`modality` is {modality!r}; an encoder declares modality = 'eeg' or 'video' as a class attribute",
        )
        if modality == "video":
            require(
                callable(getattr(component, "preprocess", None)),
                "kind_attributes",
                kind,
                name,
                "a video encoder needs `preprocess(frames uint8 (B, T, H, W, 3)) -> clip`",
            )
    elif kind == "strategies":
        require(
            callable(getattr(component, "apply", None)),
            "kind_attributes",
            kind,
            name,
            "a strategy needs `apply(encoder) -> StrategyReport`",
        )
        for hook in ("state_dict", "load_state_dict"):
            attr = getattr(component, hook, None)
            require(attr is None or callable(attr), "kind_attributes", kind, name, f"`{hook}` must be a method")
        has = [h for h in ("state_dict", "load_state_dict") if callable(getattr(component, h, None))]
        require(
            len(has) != 1,
            "kind_attributes",
            kind,
            name,
            f"`{has[0] if has else ''}` without its counterpart: define both state_dict and load_state_dict",
        )
    elif kind == "losses":
        require(
            callable(getattr(component, "forward", None)) or callable(component),
            "kind_attributes",
            kind,
            name,
            "a loss is an nn.Module with forward(eeg, video, groups=None, index=None) -> scalar",
        )
    elif kind == "callbacks":
        for hook in CALLBACK_HOOKS:
            attr = getattr(component, hook, None)
            require(attr is None or callable(attr), "kind_attributes", kind, name, f"`{hook}` must be a method")
        has = [h for h in ("state_dict", "load_state_dict") if callable(getattr(component, h, None))]
        require(
            len(has) != 1,
            "kind_attributes",
            kind,
            name,
            f"`{has[0] if has else ''}` without its counterpart: define both state_dict and load_state_dict",
        )
    elif kind in ("heads", "datasets"):
        pass  # from_config is all they need before building


QUICK_CHECKS: list[Callable[[str, str, Any], None]] = [
    check_config_is_pydantic,
    check_has_from_config,
    check_config_refuses_unknown_keys,
    check_config_has_description,
    check_kind_attributes,
]


def quick_problems(kind: str, name: str, component: Any) -> list[str]:
    """The quick checks' failures for one loaded component, as '[check] ...' messages; [] when it passes."""
    problems = []
    for check in QUICK_CHECKS:
        try:
            check(kind, name, component)
        except ConformanceError as exc:
            problems.append(str(exc))
            if exc.check == "config_is_pydantic":
                break  # the rest read the Config
    return problems
