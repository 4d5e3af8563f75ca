"""Make ``vmsched_pbs`` (installed from ``plugins/`` by ``pip install``) importable from this
tree too, so the tests run against the tree's code whether or not it was installed."""

import sys
from pathlib import Path

_PLUGINS = str(Path(__file__).resolve().parent.parent / "plugins")
if _PLUGINS not in sys.path:
    sys.path.insert(0, _PLUGINS)
