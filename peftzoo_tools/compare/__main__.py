import sys

from peftzoo_tools.compare.cli import main

sys.exit(main())
