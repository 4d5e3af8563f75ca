"""``python -m vmsched``: the same as the ``vmsched`` command."""

import sys

from vmsched.cli import main

sys.exit(main())
