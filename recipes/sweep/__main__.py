import sys

from recipes.sweep.cli import main

sys.exit(main())
