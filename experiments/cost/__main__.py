"""``python -m experiments.cost``: see :mod:`experiments.cost.cli`."""

import sys

from experiments.cost.cli import main

sys.exit(main())
