"""`python -m recipes.cache`: see recipes/cache/cli.py."""

import sys

from recipes.cache.cli import main

sys.exit(main())
