import sys

from peftzoo_tools.sweep.cli import main

sys.exit(main())
