"""The one error the kit raises: it names the check that failed and the component it failed on.

Defined beside the quick checks in registry/quick.py (list-registry raises it without the kit)."""

from __future__ import annotations

from registry.quick import ConformanceError, require

__all__ = ["ConformanceError", "require"]
