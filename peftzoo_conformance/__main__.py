"""`python -m peftzoo_conformance [pytest options]`: run the kit over every installed component."""

import sys

import pytest

sys.exit(pytest.main(["--pyargs", "peftzoo_conformance", "-p", "no:cacheprovider", *sys.argv[1:]]))
