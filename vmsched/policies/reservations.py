"""Reservation phase: room a preemptor made stays for work of its class.

While a host holds work suspended by class preemption, its active domains take only jobs
that outrank that work; otherwise an equal job would slip into the room and the suspended
jobs would in effect be preempted by their equals.
"""

from __future__ import annotations

from vmsched.context import CycleContext


class ReserveForPreemptors:
    name = "reserve for preemptors"

    def run(self, ctx: CycleContext) -> None:
        reserve_for_preemptors(ctx)


def reserve_for_preemptors(ctx: CycleContext) -> None:
    """While a host holds suspended work, its active domains serve only jobs that outrank
    it: otherwise an equal job would slip into the room a preemptor made, and the
    suspended jobs would in effect be preempted by their equals. Domains frozen for fair
    share reserve nothing: no preemptor made that room (see ``CycleContext.host_frozen``)."""
    s = ctx.s
    frozen = s._frozen_hosts()
    if not frozen:
        return
    top = ctx.ranked_running_top()
    needs = []
    for hname in sorted(frozen):
        high, for_share = ctx.host_frozen(hname, top)
        if for_share:
            continue
        for n in s.host_domains[hname]:
            if s.domains[n].state.active:
                needs.append((n, high + 1))
    ctx.reserve_many(needs)
