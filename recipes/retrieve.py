"""`python -m recipes.retrieve`: a documented command, kept as a thin alias of its home, peftzoo_tools.retrieve."""

import sys

from peftzoo_tools.retrieve import main

if __name__ == "__main__":
    sys.exit(main())
