"""``python -m testing.fuzz``: see :mod:`testing.fuzz`."""

import sys

from testing.fuzz.run import main

sys.exit(main())
