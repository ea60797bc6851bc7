"""``python -m tools.fuzz``: see :mod:`tools.fuzz`."""

import sys

from tools.fuzz.run import main

sys.exit(main())
