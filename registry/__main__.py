"""`python -m registry` is `list-registry`."""

import sys

from registry.cli import main

sys.exit(main())
