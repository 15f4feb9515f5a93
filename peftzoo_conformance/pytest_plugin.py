"""The kit's pytest plugin (entry point `pytest11`): one option, imported by every pytest run, so it is tiny.

--peftzoo-distribution NAME   check only the components that distribution registers
"""

from __future__ import annotations


def pytest_addoption(parser) -> None:
    group = parser.getgroup("peftzoo-conformance")
    group.addoption(
        "--peftzoo-distribution",
        default=None,
        metavar="NAME",
        help="peftzoo conformance kit: check only the components this distribution registers (default: all installed)",
    )
