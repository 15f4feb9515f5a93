"""Which code computed a cache entry: library versions and a hash of the project's own source files.

A cached result is only valid for the code that made it. Each module that defines a class used by
the encoder (every submodule's class and its bases, so adapters of earlier stages count too) or by
its preprocessing is named by its distribution's version when it is an installed library (torch,
timm, peft, torchvision), and by a sha256 of its source file when it is the project's own or an
editable plugin's code (a version number does not change with every edit there). Files are hashed
once per process and size/mtime.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import sys
import types
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _distribution_version(top_level: str) -> str | None:
    for dist in _distributions().get(top_level, []):
        try:
            return f"{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@functools.cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def module_identity(name: str) -> str | None:
    """`dist==version` for an installed library's module, `sha256:<16 hex>` of its source otherwise."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if module is None or file is None:
        return None  # builtins and C extensions come with the interpreter or their library's version
    path = Path(file)
    installed = any(part in ("site-packages", "dist-packages") for part in path.parts)
    if installed:
        top = name.split(".")[0]
        version = _distribution_version(top) or getattr(sys.modules.get(top), "__version__", None)
        if version is not None:
            return str(version)
    stat = path.stat()
    return f"sha256:{_file_sha256(str(path), stat.st_size, stat.st_mtime_ns)}"


def classes_of(objects: Iterable[object]) -> set[type]:
    """The classes of the objects, of every submodule of the torch modules among them, and their bases."""
    classes: set[type] = set()
    for obj in objects:
        parts = obj.modules() if isinstance(obj, torch.nn.Module) else [obj]
        for part in parts:
            classes.update(c for c in type(part).__mro__ if c is not object)
    return classes


def _is_installed(name: str) -> bool:
    """A module of the standard library or an installed distribution (not the project's own code)."""
    file = getattr(sys.modules.get(name), "__file__", None)
    if file is None or name.split(".")[0] in sys.stdlib_module_names:
        return True
    return any(part in ("site-packages", "dist-packages") for part in Path(file).parts)


def imported_by(name: str) -> set[str]:
    """Modules whose functions, classes or selves a project module uses by global name (one level)."""
    out = set()
    for value in vars(sys.modules[name]).values():
        if isinstance(value, types.ModuleType):
            out.add(value.__name__)
        elif (
            callable(value) and isinstance(getattr(value, "__module__", None), str) and value.__module__ in sys.modules
        ):
            out.add(value.__module__)
    return out


def code_identity(objects: Iterable[object], modules: Iterable[str] = ()) -> dict[str, str]:
    """Module name -> identity for the code of `objects` and the named `modules`, plus the runtime.

    `modules` are the caller's own computing code (taken as is, without their imports).

    A project module's helpers in other modules (a preprocessing function it imports) count too, one
    import level deep: an edit there changes results as much as one in the class itself.
    """
    names = {c.__module__ for c in classes_of(objects)}
    for name in list(names):
        if name in sys.modules and not _is_installed(name):
            names |= imported_by(name)
    for name in modules:
        importlib.import_module(name)
    names |= set(modules)
    out = {}
    for name in sorted(names):
        top = name.split(".")[0]
        if top in ("torch", "numpy") or top in sys.stdlib_module_names:
            continue  # the interpreter, torch (with its CUDA build) and numpy are named once below
        identity = module_identity(name)
        if identity is not None:
            # A library is listed once, under its top-level package, not per module.
            out[name.split(".")[0] if "==" in identity else name] = identity
    out["python"] = sys.version.split()[0]
    out["numpy"] = np.__version__
    out["torch"] = (
        f"{torch.__version__} cuda {torch.version.cuda} cudnn "
        f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}"
    )
    out["peftzoo"] = _distribution_version("recipes") or "unknown"
    return out
