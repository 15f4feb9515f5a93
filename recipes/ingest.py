"""`python -m recipes.ingest`: a documented command, kept as a thin alias of its home, peftzoo_data.ingest.cli."""

import sys

from peftzoo_data.ingest.cli import main

if __name__ == "__main__":
    sys.exit(main())
