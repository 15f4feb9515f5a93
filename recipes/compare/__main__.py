import sys

from recipes.compare.cli import main

sys.exit(main())
