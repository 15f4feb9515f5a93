"""YAML reading for recipes and overrides: PyYAML's safe loader, with `3e-4` read as a number.

YAML 1.1 (PyYAML) reads `3e-4` as a string because it lacks a dot; YAML 1.2 and every researcher
read it as 3e-4. The float resolver below is the YAML 1.2 one (the fix PyYAML users commonly apply).
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class RecipeLoader(yaml.SafeLoader):
    pass


RecipeLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load(text: str) -> Any:
    return yaml.load(text, Loader=RecipeLoader)  # noqa: S506 (a SafeLoader subclass)
