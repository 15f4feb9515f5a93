"""Strict numbers for user-written YAML models: finite, and true/false is never a number.

pydantic's lax mode reads `epochs: true` as 1 and accepts `.inf`/`.nan` within `ge`/`gt` bounds; its
strict mode would also refuse YAML lists for tuples, so only these two rules are tightened. In
registry/ (the lowest layer) so that recipes and the ingest spec (peftzoo_data/ingest/spec.py) share
one rule, as recipes/schema.py's StrictNumbers states it for recipes.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _strip(tp: Any) -> Any:
    """Strip Annotated and Optional."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def numbers_in(annotation: Any) -> bool:
    """The annotation is a number type (int or float, possibly optional or in a list/tuple/union), not bool."""
    annotation = _strip(annotation)
    if annotation in (int, float):
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(numbers_in(a) for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) in (list, tuple):
        return any(numbers_in(a) for a in get_args(annotation) if a is not Ellipsis)
    return False


def has_bool(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, (list, tuple)) and any(isinstance(v, bool) for v in value))


def refuse_bool(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """A field validator (mode before): true/false given for a number field is an error."""
    field = cls.model_fields.get(info.field_name) if info.field_name else None
    if field is not None and has_bool(value) and numbers_in(field.annotation):
        raise ValueError(f"expected a number, got {value!r} (true/false is not a number)")
    return value


class StrictNumbers(BaseModel):
    """Base model: unknown keys refused, numbers finite, true/false not a number."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_bool(cls, value, info)
