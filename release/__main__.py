"""``python -m release``: the command line (:mod:`release.cli`)."""

import sys

from release.cli import main

if __name__ == "__main__":
    sys.exit(main())
