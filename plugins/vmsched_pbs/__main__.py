"""``python -m vmsched_pbs``: the ``vmsched-pbs`` command."""

import sys

from vmsched_pbs.cli import main

sys.exit(main())
