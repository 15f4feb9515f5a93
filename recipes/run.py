"""`python -m recipes.run`: a documented command, kept as a thin alias of its home, peftzoo_tools.run."""

import sys

from peftzoo_tools.run import main

if __name__ == "__main__":
    sys.exit(main())
