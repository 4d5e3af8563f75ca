"""Second-chance phase: idle domains held back for a VO under its share that nobody took go back.

Idle cores help nobody: after placement, the held-back domains no under-share VO used are
opened again to their own VO's waiting jobs, in priority order.
"""

from __future__ import annotations

from vmsched.cluster import Shape
from vmsched.context import CycleContext
from vmsched.matching import SLOT_ACTIVE
from vmsched.model import DomainState
from vmsched.plan import RunJob


class SecondChance:
    name = "second chance"

    def run(self, ctx: CycleContext) -> None:
        second_chance(ctx, ctx.held_back, ctx.unplaced)


def second_chance(ctx: CycleContext, held_back: set[str], queue: list[int]) -> None:
    """Held-back domains that no under-share VO took this cycle go back to their own VO:
    idle cores help nobody. ``queue`` is what placement went through, in priority order."""
    s, now = ctx.s, ctx.now
    claimed, domains, slot_h = ctx.claimed, s.domains, s._slot_h
    back = [slot_h[n] for n in held_back if n not in claimed and n in domains
            and domains[n].state is DomainState.FREE]
    if not back:
        return
    s.engine.set_slot_states(back, SLOT_ACTIVE)
    nofit: set[Shape] = set()     # starting jobs only fills domains: no slot stays no slot
    groups = []
    for (sh, _notes), jids in ctx.waits.items():
        if sh not in nofit:
            if s.engine.best_slot(s._job_h[jids[0]]) is None:
                nofit.add(sh)
            else:
                groups.append(jids)
    if not groups:
        return
    if len(groups) == 1:
        order = [s._job_h[j] for j in groups[0]]
    else:
        waiting = {j for jids in groups for j in jids}
        order = [h for h in queue if s._job_name.get(h) in waiting]
    for h in order:
        jid = s._job_name[h]
        if s._hshape[h] in nofit:
            continue
        slot = s.engine.best_slot(h)
        if slot is None:
            nofit.add(s._hshape[h])
            continue
        if ctx.vetoed(jid, s._slot_name[slot]):
            continue
        dname = s._slot_name[slot]
        ctx.actions.append(RunJob(jid, dname))
        s.engine.start_job(h, slot, now)
        s._mark_running(jid, dname, now, via_engine=True)
        ctx.claimed.add(dname)
        ctx.started_late.add(jid)
