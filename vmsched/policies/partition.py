"""Fair share across images: how many cores each VO's images should hold right now.

MetaCenter and KIT found that one dynamically partitioned cluster (any image on any host,
balanced by fair share) beats fixed per-group partitions. Here the targets are computed by
water-filling: a VO that wants less than its share gets what it wants, and what it leaves is
split among the others in proportion to their shares. A VO that holds more than its target
while another with waiting work holds less gives up its *idle* domains first; running work
is never killed for this (preemption is a separate, class-based policy).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["targets", "over_share"]


def targets(capacity: float, shares: Mapping[str, float], demand: Mapping[str, float]) -> dict[str, float]:
    """Cores each VO should hold: min(demand, water-filled share of ``capacity``)."""
    want = {vo: max(0.0, float(d)) for vo, d in demand.items() if d > 0}
    out = {vo: 0.0 for vo in demand}
    left = float(capacity)
    active = {vo for vo in want if shares.get(vo, 0.0) > 0}
    while active and left > 1e-9:
        total = sum(shares[vo] for vo in active)
        satisfied = set()
        for vo in sorted(active):
            give = left * shares[vo] / total
            if out[vo] + give >= want[vo] - 1e-9:
                satisfied.add(vo)
        if not satisfied:
            for vo in sorted(active):
                out[vo] += left * shares[vo] / total
            left = 0.0
            break
        for vo in sorted(satisfied):
            left -= want[vo] - out[vo]
            out[vo] = want[vo]
        active -= satisfied
    return out


def over_share(held: Mapping[str, float], target: Mapping[str, float], waiting: Mapping[str, float]) -> set[str]:
    """VOs that hold more than their target while some VO with waiting work holds less."""
    starved = any(waiting.get(vo, 0) > 0 and held.get(vo, 0.0) < target.get(vo, 0.0) - 1e-9 for vo in target)
    if not starved:
        return set()
    return {vo for vo, h in held.items() if h > target.get(vo, 0.0) + 1e-9}
