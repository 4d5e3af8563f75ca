"""Match phase: queued jobs into free room of active domains, in priority order.

The matcher (the C core, or the Python reference with a ``queue_sort`` or ``score`` plugin)
does the work; this phase applies the site's ``pre_filter`` and ``filter`` plugins around it
and leaves the jobs it could not place in ``ctx.unplaced``, in queue order, for the phases
that open room (preemption, placement).
"""

from __future__ import annotations

from vmsched.cluster import STATE_PENDING, STATE_RUNNING
from vmsched.context import CycleContext
from vmsched.extensions import Code
from vmsched.model import Domain, Job
from vmsched.plan import Pending, RunJob, Verdict


class Match:
    name = "match"

    def run(self, ctx: CycleContext) -> None:
        ctx.unplaced = match(ctx)


def match(ctx: CycleContext) -> list[int]:
    s, w = ctx.s, ctx.policy.priority
    prefilter = ctx.s.plugins.get("pre_filter")
    blocked = []
    if prefilter is not None:
        for jid, st in sorted(s.status.items()):
            if st == STATE_PENDING and jid in s._job_h:
                status = prefilter.pre_filter(s.jobs[jid], ctx.now)
                if not status.ok:
                    blocked.append(jid)
                    s.engine.remove_job(s._job_h[jid])
                    ctx.pending[jid] = Pending(
                        Verdict.NEVER if status.code is Code.UNSCHEDULABLE_NEVER else Verdict.NOT_NOW,
                        status.reason)
    try:
        if "queue_sort" in s.plugins or "score" in s.plugins:
            placed, unplaced = _match_python(ctx, w)
        else:
            res = s.engine.match(ctx.now, w.fairshare, w.klass, w.age, ctx.policy.max_starts_per_cycle)
            placed = list(res.placed)
            unplaced = res.pending_jobs()
        flt = s.plugins.get("filter")
        for h, slot in placed:
            jid, dname = s._job_name[h], s._slot_name[slot]
            if flt is not None:
                st = flt.filter(s.jobs[jid], s.domains[dname], s.hosts[s.domains[dname].host])
                if not st.ok:
                    s.engine.requeue_job(h)
                    ctx.notes[jid] = st.reason
                    unplaced.append(h)
                    continue
            ctx.actions.append(RunJob(jid, dname))
            s._mark_running(jid, dname, ctx.now, via_engine=True)
            ctx.claimed.add(dname)
    finally:
        for jid in blocked:
            job = s.jobs[jid]
            h = s._job_h.pop(jid)
            del s._job_name[h]
            if s.status.get(jid) == STATE_PENDING:
                s._engine_add(job, STATE_PENDING, handle=h)
    return unplaced

def _match_python(ctx: CycleContext, w) -> tuple[list, list]:
    """The plugin path: a Python queue order and domain scores; same matcher state."""
    s = ctx.s
    sorter, scorer = s.plugins.get("queue_sort"), s.plugins.get("score")
    order = s.engine.order(ctx.now, w.fairshare, w.klass, w.age)
    if sorter is not None:
        order = sorted(order, key=lambda h: sorter.sort_key(
            s.jobs[s._job_name[h]], s.engine.priority(h, ctx.now, w.fairshare, w.klass, w.age)))
    placed, unplaced = [], []
    extra: dict[str, list[Job]] = {}   # placed in this loop, not yet in the scheduler's state
    for h in order:
        if 0 <= ctx.policy.max_starts_per_cycle <= len(placed):
            unplaced.append(h)
            continue
        slot = s.engine.best_slot(h)
        if slot is not None and scorer is not None:
            job = s.jobs[s._job_name[h]]
            best = None
            for dname in sorted(s.domains):
                d = s.domains[dname]
                if _fits_now(ctx, job, d, extra.get(dname, [])):
                    key = (-scorer.score(job, d, s.hosts[d.host]), s._slot_h[dname])
                    best = key if best is None or key < best else best
            slot = best[1] if best else None
        if slot is None:
            unplaced.append(h)
            continue
        s.engine.start_job(h, slot, ctx.now)
        placed.append((h, slot))
        extra.setdefault(s._slot_name[slot], []).append(s.jobs[s._job_name[h]])
    return placed, unplaced

def _fits_now(ctx: CycleContext, job: Job, d: Domain, extra: list[Job]) -> bool:
    s = ctx.s
    if not d.state.active or d.name in ctx.reserved or d.name in ctx.held_back or \
            s._kind(d.image, s.hosts[d.host].features) not in s._job_kinds(job):
        return False
    running = [s.jobs[o] for o in s.domain_jobs.get(d.name, ()) if s.status.get(o) == STATE_RUNNING] + extra
    return ctx.fits_with(job, d, running)
