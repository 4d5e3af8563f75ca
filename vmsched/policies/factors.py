"""Fair-share factors for this cycle, handed to the matcher.

The matcher (C or Python) orders the queue by priority = fairshare * factor + class * rank +
age * hours waited; the factors change slowly (``[fairshare] refresh``), so the matcher is
told only when they changed.
"""

from __future__ import annotations

from vmsched.context import CycleContext


class FairShareFactors:
    """The first phase: every later phase sees the queue in this cycle's priority order."""

    name = "fair-share factors"

    def run(self, ctx: CycleContext) -> None:
        s = ctx.s
        f = s.factors(ctx.now)
        if s._factors_pushed != (id(f), len(s._entities)):   # the matcher has these already
            s.engine.set_factors([f.get(p, 0.0) for p, _ in sorted(s._entities.items(), key=lambda kv: kv[1])])
            s._factors_pushed = (id(f), len(s._entities))


