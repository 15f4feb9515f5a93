"""`python -m recipes.export`: a documented command, kept as a thin alias of its home, peftzoo_trained.export."""

import sys

from peftzoo_trained.export import main

if __name__ == "__main__":
    sys.exit(main())
