"""`python -m recipes.compare`: a documented command, kept as a thin alias of its home, peftzoo_tools.compare.cli."""

import sys

from peftzoo_tools.compare.cli import main

if __name__ == "__main__":
    sys.exit(main())
