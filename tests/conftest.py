"""After a run that fuzzed (tests/test_fuzz.py), say how many inputs each target tried and
how they ended; ``VMSCHED_FUZZ_REPORT=FILE`` also writes it as JSON."""

from __future__ import annotations

import json
import os
import sys


def pytest_terminal_summary(terminalreporter):
    fuzz = sys.modules.get("tests.fuzz")
    counts = getattr(fuzz, "COUNTS", None)
    if not counts:
        return
    terminalreporter.section("fuzz inputs per target")
    for target in sorted(counts):
        c = counts[target]
        rest = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k != "tried")
        terminalreporter.write_line(f"{target}: {c['tried']} tried ({rest})")
    report = os.environ.get("VMSCHED_FUZZ_REPORT")
    if report:
        with open(report, "w", encoding="utf-8") as fh:
            json.dump({t: dict(c) for t, c in sorted(counts.items())}, fh, indent=1, sort_keys=True)
            fh.write("\n")
