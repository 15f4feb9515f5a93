"""`python -m recipes.embed`: a documented command, kept as a thin alias of its home, peftzoo_tools.embed."""

import sys

from peftzoo_tools.embed import main

if __name__ == "__main__":
    sys.exit(main())
