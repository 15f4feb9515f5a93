"""`python -m recipes.cache`: see peftzoo_engine/cache/cli.py."""

import sys

from peftzoo_engine.cache.cli import main

sys.exit(main())
