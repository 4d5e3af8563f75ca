"""Resume phase: work that preemption froze comes back as soon as its host has room for it.

A suspended domain whose preemptor's domain has gone idle is resumed (the idle one steps
aside); jobs suspended inside an active domain (``suspend-jobs`` mode) resume when it has
room. This runs before matching, so waiting jobs never take the room frozen work is owed.
"""

from __future__ import annotations

import attrs

from vmsched.cluster import STATE_RUNNING, STATE_SUSPENDED
from vmsched.context import CycleContext
from vmsched.matching import EngineError
from vmsched.model import Domain, DomainState, JobState
from vmsched.plan import ResumeDomain, ResumeJob, SuspendDomain


class ResumeFrozen:
    name = "resume"

    def run(self, ctx: CycleContext) -> None:
        resume_suspended(ctx)


def resume_suspended(ctx: CycleContext) -> None:
    s = ctx.s
    for name in sorted((n for n in s._by_state[DomainState.SUSPENDED] if s.domain_jobs.get(n)),
                       key=lambda n: (s.domains[n].since, n)):
        d = s.domains[name]
        host = s.hosts[d.host]
        if not host.up:
            continue
        used = s._room_used.get(d.host)
        if used is not None and used[0] >= host.max_active and not s._idle_active.get(d.host):
            continue          # no active slot left and no idle domain to step aside (the kept indexes say)
        # The preemptor's domain, idle now that its work ended, steps aside.
        others = [s.domains[n] for n in s.host_domains[d.host]]
        idle = [o for o in others if o.state is DomainState.FREE and not ctx.busy(o.name)]
        if not idle and sum(o.state.active for o in others) >= host.max_active:
            continue          # every active slot of the host is busy: nothing can step aside
        room = ctx.rooms[d.host]
        freed: list[Domain] = []
        while not room.fits(d.cores, d.memory_mb, freed) and len(freed) < len(idle):
            freed.append(idle[len(freed)])
        if room.fits(d.cores, d.memory_mb, freed):
            for f in freed:
                ctx.actions.append(SuspendDomain(f.name))
                room.give(f)
                s._mark_domain(f.name, DomainState.OCCUPIED, ctx.now)
                ctx.claimed.add(f.name)
            room.take(d.cores, d.memory_mb)
            ctx.actions.append(ResumeDomain(name))
            s._mark_domain(name, DomainState.RUNNING, ctx.now)
            for jid in sorted(s.domain_jobs[name]):
                if s.status.get(jid) == STATE_SUSPENDED:
                    s.set_job(attrs.evolve(s.jobs[jid], state=JobState.RUNNING))
            ctx.claimed.add(name)
    # Jobs suspended inside an active domain (suspend-jobs mode) resume when it has room.
    inside_active = [j for n, inside in s._frozen_domains().items() if s.domains[n].state.active for j in inside]
    for jid in sorted(inside_active, key=lambda j: (s.jobs[j].start_time or 0.0, j)):
        job = s.jobs[jid]
        d = s.domains[job.domain]
        running = [s.jobs[o] for o in s.domain_jobs[d.name] if s.status.get(o) == STATE_RUNNING]
        if d.name in ctx.reserved and ctx.rank(job) < ctx.reserved[d.name]:
            continue
        if ctx.fits_with(job, d, running):
            try:
                s.set_job(attrs.evolve(job, state=JobState.RUNNING))
            except EngineError:
                continue
            ctx.actions.append(ResumeJob(jid))
