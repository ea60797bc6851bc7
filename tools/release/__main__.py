"""``python -m tools.release``: the command line (:mod:`tools.release.cli`)."""

import sys

from tools.release.cli import main

if __name__ == "__main__":
    sys.exit(main())
