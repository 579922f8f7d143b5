"""``python -m messagehooks``: the same as the ``messagehooks`` command."""

import sys

from cli.main import main

sys.exit(main())
