"""`python -m recipes.evaluate`: a documented command, kept as a thin alias of its home, peftzoo_tools.evaluate."""

import sys

from peftzoo_tools.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
