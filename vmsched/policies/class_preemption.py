"""Class-preemption phase: a job of a higher class displaces running work of a strictly lower one.

A waiting job above the lowest class first takes room already open to it (what an earlier
preemptor of this cycle opened, a domain reserved for its class); only then does the matcher
find the cheapest victims (by the policy's mode: suspend the domain, suspend the jobs, or requeue them); the site's ``preempt``
plugin may refuse. A job that finds none tries, in turn, its owner's reclaim
(:mod:`vmsched.policies.owner_reclaim`) and taking back its VO's domain frozen for fair share.
"""

from __future__ import annotations

import attrs

from vmsched.cluster import STATE_SUSPENDED
from vmsched.context import CycleContext
from vmsched.matching import MODE_SUSPEND_DOMAIN, MODE_SUSPEND_JOBS
from vmsched.model import DomainState, Job, JobState
from vmsched.plan import RequeueJob, ResumeDomain, RunJob, SuspendDomain, SuspendJob
from vmsched.policies.owner_reclaim import owner_reclaim


class ClassPreemption:
    name = "class preemption"

    def run(self, ctx: CycleContext) -> None:
        ctx.unplaced = preempt(ctx, ctx.unplaced)


def preempt(ctx: CycleContext, unplaced: list[int]) -> list[int]:
    s = ctx.s
    if ctx.s.mode is None:
        return unplaced
    permit = s.plugins.get("preempt")
    lowest = 0
    if not ctx.owners and not any(s._vo_rank_pending):
        return unplaced          # nobody waiting outranks anybody: no preemption to search
    left = []
    tried: set = set()
    shapes = s._hshape
    for h in unplaced:
        jid = s._job_name.get(h)
        if jid is None:
            continue
        shape = shapes[h]
        rank = shape.rank
        if rank <= lowest and not ctx.owners:
            left.append(h)
            continue
        job = s.jobs[jid]
        if rank > lowest:
            # Room an earlier preemptor of this cycle opened, or last cycle's reserved for
            # this class, comes before any new victim: preempting beside free room would
            # freeze work for nothing. (Idle domains held back from the job's over-share VO
            # stay placement's, after share preemption: taking them here would push the VO
            # further over its share and have more hosts frozen for it.)
            slot = ctx.open_slot(h, job, rank, held_back=False)
            if slot is not None and not ctx.vetoed(jid, s._slot_name[slot]):
                ctx.start(h, jid, slot)
                continue
        victims = None
        if rank > lowest and shape not in tried:
            victims = s.engine.find_victims(h, s.mode, ctx.now)
            if victims is None:
                tried.add(shape)
        if victims is not None and permit is not None:
            st = permit.allow(job, [s.jobs[s._job_name[v]] for v in victims.jobs])
            if not st.ok:
                ctx.notes[jid] = st.reason
                victims = None
        if victims is None:
            if ctx.policy.preemption.owner_reclaim and owner_reclaim(ctx, h, job):
                continue
            if rank > lowest and s._by_state[DomainState.SUSPENDED] and s.mode == MODE_SUSPEND_DOMAIN \
                    and _thaw_for(ctx, h, job, permit):
                continue
            left.append(h)
            continue
        _apply_victims(ctx, h, jid, victims)
    return left

def _thaw_for(ctx: CycleContext, h: int, job: Job, permit) -> bool:
    """A job that outranks the work running on a host may take back its own image's
    domain there when that domain was frozen for fair share and has room for the job
    beside its frozen work: the share preemptor's domain is frozen in turn and the
    frozen work resumes beside the job. Without this, a VO frozen out by share could not
    start even an interactive job until the other VO's hosts drained. (A frozen domain
    with no room beside its work cannot take the job: that is not preemption's to fix.)
    The displaced work is frozen by class while the job runs, and for share after: it
    comes back when the domain it made way for empties, or after ``share_after`` when
    its VO is owed the host."""
    s = ctx.s
    sh = s._hshape[h]
    if sh in ctx.thaw_failed:
        return False
    candidates = []
    for bname in sorted(s._by_state[DomainState.SUSPENDED]):
        b = s.domains[bname]
        frozen = [s.jobs[j] for j in s.domain_jobs.get(bname, ())]
        host = s.hosts[b.host]
        if not frozen or not host.up or not ctx.could_run_in(sh, b, host, frozen) \
                or not ctx.frozen_for_share(b.host):
            continue
        room = ctx.rooms[b.host]
        actives = [s.domains[n] for n in room.domains if s.domains[n].state.active]
        if len(actives) != 1 or actives[0].name in ctx.claimed or not room.fits(b.cores, b.memory_mb, actives):
            continue
        victims = sorted(s.domain_jobs.get(actives[0].name, ()))
        ranks = [ctx.rank(s.jobs[j]) for j in victims]
        if any(r >= sh.rank for r in ranks):
            continue
        cost = (max(ranks, default=-1), sum(s.jobs[j].cores for j in victims), b.host, bname)
        candidates.append((cost, actives[0].name, victims))
    for (victim_rank, _, hname, bname), aname, victims in sorted(candidates):
        if ctx.vetoed(job.id, bname):
            continue
        if permit is not None and victims:
            st = permit.allow(job, [s.jobs[v] for v in victims])
            if not st.ok:
                ctx.notes[job.id] = st.reason
                continue
        ctx.switch(hname, aname, bname, by=job.id, share_for=None)
        ctx.actions.append(RunJob(job.id, bname))
        s.engine.start_job(h, s._slot_h[bname], ctx.now)
        s._mark_running(job.id, bname, ctx.now, via_engine=True)
        if victim_rank >= 0:
            ctx.reserve(bname, victim_rank + 1)
        return True
    if not candidates:        # (a veto is the job's own: other jobs of its shape may pass)
        ctx.thaw_failed.add(sh)
    return False

def _apply_victims(ctx: CycleContext, h: int, jid: str, victims) -> None:
    s, now = ctx.s, ctx.now
    target = s._slot_name[victims.slot]
    victim_rank = max((ctx.rank(s.jobs[s._job_name[v]]) for v in victims.jobs), default=-1)
    if s.mode == MODE_SUSPEND_DOMAIN:
        for slot in victims.suspend_slots:
            name = s._slot_name[slot]
            ctx.actions.append(SuspendDomain(name, by=jid))
            ctx.rooms[s.domains[name].host].give(s.domains[name])
            for v in sorted(s.domain_jobs[name]):
                s.jobs[v] = attrs.evolve(s.jobs[v], state=JobState.SUSPENDED)
                s._set_status(v, STATE_SUSPENDED)
            s._mark_domain(name, DomainState.SUSPENDED, now)
        d = s.domains[target]
        ctx.rooms[d.host].take(d.cores, d.memory_mb)
        ctx.actions.append(ResumeDomain(target))
        s._mark_domain(target, DomainState.FREE, now)
    else:
        for v in victims.jobs:
            vid = s._job_name[v]
            vjob = s.jobs[vid]
            if s.mode == MODE_SUSPEND_JOBS:
                ctx.actions.append(SuspendJob(vid, by=jid))
                s.remove_job(vid)
                s.jobs[vid] = attrs.evolve(vjob, state=JobState.SUSPENDED)
                s._set_status(vid, STATE_SUSPENDED)
                s._domain_add(vjob.domain, vid)
            else:
                ctx.actions.append(RequeueJob(vid, by=jid))
                s.remove_job(vid)
                s.set_job(attrs.evolve(vjob, state=JobState.QUEUED, domain=None, start_time=None))
                ctx.requeued[vid] = f"requeued: preempted by {jid}"
    ctx.actions.append(RunJob(jid, target))
    s.engine.start_job(h, victims.slot, now)
    s._mark_running(jid, target, now, via_engine=True)
    ctx.claimed.add(target)
    if victims.jobs:
        ctx.reserve(target, victim_rank + 1)
