"""peftzoo's conformance kit: the contract checks every component (built-in or plugin) must pass.

Run it in any environment where peftzoo and your plugin are installed:

    python -m peftzoo_conformance                       # every installed component
    python -m peftzoo_conformance --peftzoo-distribution my-plugin   # only yours
    python -m pytest --pyargs peftzoo_conformance -k strategies      # the same, as plain pytest

Each check is a plain function named `check_<what>` that raises `ConformanceError` naming itself,
so the same checks serve pytest (peftzoo_conformance/test_conformance.py) and
`list-registry --check` (the quick, import-level ones in `quick.py`). The written contract they
check is docs/plugins.md.
"""

from peftzoo_conformance.errors import ConformanceError

__all__ = ["ConformanceError"]
