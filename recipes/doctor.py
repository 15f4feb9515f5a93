"""`python -m recipes.doctor`: a documented command, kept as a thin alias of its home, peftzoo_tools.doctor.cli."""

import sys

from peftzoo_tools.doctor.cli import main

if __name__ == "__main__":
    sys.exit(main())
