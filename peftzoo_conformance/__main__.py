"""`python -m peftzoo_conformance [pytest options]` (also `peftzoo-conformance`): run the kit over every installed
component."""

from __future__ import annotations

import sys

from registry.pipes import quiet_on_broken_pipe

PYTEST = "pytest>=7.4"


@quiet_on_broken_pipe
def main(argv: list[str] | None = None) -> int:
    try:
        import pytest
    except ImportError:  # the kit's checks run as pytest tests; say how to get it, in one line
        print(
            f"error: the conformance kit runs on pytest, which is not installed here; install it with: "
            f"{sys.executable} -m pip install '{PYTEST}'",
            file=sys.stderr,
        )
        return 2
    args = sys.argv[1:] if argv is None else argv
    return int(
        pytest.main(
            ["--pyargs", "peftzoo_conformance", "-p", "no:cacheprovider", "-o", "python_files=test_*.py", *args]
        )
    )


if __name__ == "__main__":
    sys.exit(main())
