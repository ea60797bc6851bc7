"""``python -m tools.cost``: see :mod:`tools.cost.cli`."""

import sys

from tools.cost.cli import main

sys.exit(main())
