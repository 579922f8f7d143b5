"""``python -m messagehooks``: the same as the ``messagehooks`` command."""

import sys

from messagehooks.cli import main

sys.exit(main())
