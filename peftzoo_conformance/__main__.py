"""`python -m peftzoo_conformance [pytest options]` (also `peftzoo-conformance`): run the kit over every installed component."""

from __future__ import annotations

import sys

from registry.pipes import quiet_on_broken_pipe


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    import pytest

    args = sys.argv[1:] if argv is None else argv
    return int(pytest.main(["--pyargs", "peftzoo_conformance", "-p", "no:cacheprovider", "-o", "python_files=test_*.py", *args]))


if __name__ == "__main__":
    sys.exit(main())
