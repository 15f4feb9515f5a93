"""`python -m recipes.sweep`: a documented command, kept as a thin alias of its home, peftzoo_tools.sweep.cli."""

import sys

from peftzoo_tools.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
