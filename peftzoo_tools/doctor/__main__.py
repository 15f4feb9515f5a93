"""`python -m peftzoo_tools.doctor` (and its alias `python -m recipes.doctor`): see cli.py."""

import sys

from peftzoo_tools.doctor.cli import main

if __name__ == "__main__":
    sys.exit(main())
