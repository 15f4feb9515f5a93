"""`python -m recipes.cache`: a documented command, kept as a thin alias of its home, peftzoo_engine.cache.cli."""

import sys

from peftzoo_engine.cache.cli import main

if __name__ == "__main__":
    sys.exit(main())
