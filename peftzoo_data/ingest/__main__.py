"""`python -m peftzoo_data.ingest` (and its alias `python -m recipes.ingest`): see cli.py."""

import sys

from peftzoo_data.ingest.cli import main

if __name__ == "__main__":
    sys.exit(main())
