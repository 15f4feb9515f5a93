"""Read a component's one-line description from its source file, without importing it.

Listing must import nothing (a plugin may be slow or broken to import), yet a listing without
descriptions is of little use. So the module file is located with import-system finders that do
not execute code, and parsed with `ast`: a class attribute `description = "..."`, else the first
line of the docstring. A target `TABLE.row` (a row of a table such as encoders/presets.py's) is
read from a module-level `TABLE = Call(...)`: the row is a keyword or a dict key inside it, and its
description the `description=` keyword or first string argument of the row's call; an alias
`Old = TABLE.row` is followed. No library does this, hence the hand-written helper.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import sys
from functools import cache


def _module_file(module: str) -> str | None:
    parts = module.split(".")
    try:
        top = sys.modules.get(parts[0])
        spec = top.__spec__ if top is not None else importlib.util.find_spec(parts[0])
        for part in parts[1:]:
            if spec is None or not spec.submodule_search_locations:
                return None
            spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    except (ImportError, ValueError, AttributeError):
        return None
    origin = getattr(spec, "origin", None)
    return origin if origin and origin.endswith(".py") else None


def _member(node: ast.AST, key: str) -> ast.AST | None:
    """The value filed under `key` in a call's keywords or a dict literal, searched through call arguments."""
    if isinstance(node, ast.Dict):
        for k, v in zip(node.keys, node.values):
            if isinstance(k, ast.Constant) and k.value == key:
                return v
    if isinstance(node, ast.Call):
        for kw in node.keywords:
            if kw.arg == key:
                return kw.value
        for arg in node.args:
            found = _member(arg, key)
            if found is not None:
                return found
    return None


def _row_description(node: ast.AST | None) -> str:
    """The `description=` keyword, else the first positional string, of a row's call."""
    if not isinstance(node, ast.Call):
        return ""
    texts = [kw.value for kw in node.keywords if kw.arg == "description"] + node.args[:1]
    for text in texts:
        if isinstance(text, ast.Constant) and isinstance(text.value, str):
            return _first_line(text.value)
    return ""


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0].strip() if text and text.strip() else ""


def _parse(module: str) -> ast.Module | None:
    """The module's syntax tree, or None when its source cannot be found or read (listing then shows no text)."""
    path = _module_file(module)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return None


def _class_description(node: ast.ClassDef) -> str | None:
    """A class attribute `description = "..."` (plain or annotated), which wins over the docstring."""
    for item in node.body:
        target = None
        if isinstance(item, ast.Assign) and len(item.targets) == 1:
            target = item.targets[0]
        elif isinstance(item, ast.AnnAssign):
            target = item.target
        if (
            isinstance(target, ast.Name)
            and target.id == "description"
            and isinstance(item.value, ast.Constant)
            and isinstance(item.value.value, str)
        ):
            return _first_line(item.value.value)
    return None


def _assigned(node: ast.Assign, module: str, name: str, rest: list[str], depth: int) -> str | None:
    """For `name = ...`: a table row's description, or the one an alias `name = TABLE.row` points at."""
    if not any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
        return None
    if rest:
        return _row_description(_member(node.value, rest[0]))
    if isinstance(node.value, ast.Attribute) and depth < 3:  # an alias of a row: `Old = TABLE.row`
        return static_description(module, ast.unparse(node.value), depth + 1)
    return None


def _defined(node: ast.ClassDef | ast.FunctionDef, name: str) -> str | None:
    """For `class name` or `def name`: its description attribute (a class's), else its docstring's first line."""
    if node.name != name:
        return None
    if isinstance(node, ast.ClassDef):
        described = _class_description(node)
        if described is not None:
            return described
    return _first_line(ast.get_docstring(node))


def _imported(node: ast.ImportFrom, name: str, depth: int) -> str | None:
    """For `from pkg.impl import name` (absolute): the description where the name is defined."""
    if not (node.module and node.level == 0 and depth < 3):
        return None
    for alias in node.names:
        if (alias.asname or alias.name) == name:
            return static_description(node.module, alias.name, depth + 1)
    return None


def _statement_description(node: ast.AST, module: str, name: str, rest: list[str], depth: int) -> str | None:
    """The description a top-level statement gives `name` (an assignment, a definition or an import),
    or None when the statement is not about it and the search goes on."""
    if isinstance(node, ast.Assign):
        return _assigned(node, module, name, rest, depth)
    if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
        return _defined(node, name)
    if isinstance(node, ast.ImportFrom):
        return _imported(node, name, depth)
    return None


@cache
def static_description(module: str, attr: str | None, _depth: int = 0) -> str:
    """The description of `module:attr` read from source, or '' when it cannot be read statically.

    A name the module re-exports (`from pkg.impl import Name`, absolute) is followed, a few levels deep.
    """
    tree = _parse(module)
    if tree is None:
        return ""
    if not attr:
        return _first_line(ast.get_docstring(tree))
    top_attr, *rest = attr.split(".")
    for node in tree.body:
        found = _statement_description(node, module, top_attr, rest, _depth)
        if found is not None:
            return found
    return ""
