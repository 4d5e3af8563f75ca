"""Owner reclaim: hosts a group owns (a Tier-3's) are lent while idle and taken back by preemption.

Called by class preemption for a job of an owner group that found no victims by class alone;
the search for the borrower domains to evict is
:func:`vmsched.policies.preemption.find_owner_reclaim`.
"""

from __future__ import annotations

import attrs

from vmsched.cluster import STATE_RUNNING, STATE_SUSPENDED
from vmsched.context import CycleContext
from vmsched.matching import MODE_REQUEUE
from vmsched.model import DomainState, Host, Job, JobState
from vmsched.plan import RequeueJob, ShutdownDomain, SuspendDomain
from vmsched.policies import lifecycle
from vmsched.policies.preemption import find_owner_reclaim


def owner_reclaim(ctx: CycleContext, h: int, job: Job) -> bool:
    """The job's group owns hosts that borrowers hold: evict the cheapest borrower
    domains of lower class and place the job there (boot or activate its image).

    Nothing is evicted unless the job can then be placed: the placement is worked out on
    a copy of the host first, so a reclaim never leaves borrowers frozen for nothing."""
    s, now = ctx.s, ctx.now
    if s.mode is None or not (job.group in ctx.owners or job.vo in ctx.owners):
        return False
    images = s.images_for(job)
    key = (job.group, job.vo, images, job.cores, job.memory_mb, job.features, ctx.rank(job))
    if not images or key in ctx.reclaim_failed:
        return False
    owned = {n: ctx.rooms[n] for n in ctx.owners.get(job.group, []) + ctx.owners.get(job.vo, [])}
    running = {j: s.jobs[j] for r in owned.values() for d in r.domains for j in s.domain_jobs.get(d, ())
               if s.status.get(j) == STATE_RUNNING}
    rec = find_owner_reclaim(job, ctx.rank, owned, s.domains, s.domain_jobs, running,
                             lambda host: _size_for(ctx, job, host), now)
    placement = None
    if rec is not None:
        requeue = s.mode == MODE_REQUEUE
        room = ctx.rooms[rec.host]
        trial = lifecycle.HostRoom(room.host, [n for n in room.domains if not (requeue and n in rec.domains)],
                                   room.active, room.cores, room.memory)
        view = dict(s.domains)
        for dname in rec.domains:
            trial.give(s.domains[dname])
            view[dname] = attrs.evolve(s.domains[dname], state=DomainState.SHUTTING_DOWN if requeue
                                       else DomainState.SUSPENDED)
        placement = lifecycle.plan_placement(
            job, images, {rec.host: trial}, view,
            lambda n: ctx.busy(n) or (n in rec.domains and not requeue), ctx.policy.flavors,
            ctx.policy.lifecycle, ctx.boots_left, now)
    if placement is None:
        ctx.reclaim_failed.add(key)
        return False
    room = ctx.rooms[rec.host]
    for dname in rec.domains:
        room.give(s.domains[dname])
        ctx.claimed.add(dname)
        victims = sorted(s.domain_jobs.get(dname, ()))
        if requeue:
            for vid in victims:
                vjob = s.jobs[vid]
                ctx.actions.append(RequeueJob(vid, by=job.id))
                s.remove_job(vid)
                s.set_job(attrs.evolve(vjob, state=JobState.QUEUED, domain=None, start_time=None))
                ctx.requeued[vid] = f"requeued: host {rec.host}'s owner reclaimed it for job {job.id}"
            ctx.actions.append(ShutdownDomain(dname))
            room.domains.remove(dname)
            s._mark_domain(dname, DomainState.SHUTTING_DOWN, now)
        else:
            ctx.actions.append(SuspendDomain(dname, by=job.id if victims else None))
            for vid in victims:
                s.jobs[vid] = attrs.evolve(s.jobs[vid], state=JobState.SUSPENDED)
                s._set_status(vid, STATE_SUSPENDED)
            s._mark_domain(dname, DomainState.SUSPENDED if victims else DomainState.OCCUPIED, now)
    placement = lifecycle.plan_placement(job, images, {rec.host: room}, s.domains, ctx.busy,
                                         ctx.policy.flavors, ctx.policy.lifecycle,
                                         ctx.boots_left, now)
    if placement is None:   # cannot happen: the trial above found one on the same room
        raise AssertionError(f"owner reclaim for {job.id}: placement vanished")
    ctx.apply_placement(h, job.id, job, placement)
    return True

def _size_for(ctx: CycleContext, job: Job, host: Host) -> tuple[int, int] | None:
    """Room a domain for ``job`` takes on ``host``: an idle inactive domain of its image
    there, else the flavor lifecycle would boot."""
    s = ctx.s
    images = set(s.images_for(job))
    for dname in s.host_domains.get(host.name, ()):
        d = s.domains[dname]
        if d.image in images and d.state in (DomainState.OCCUPIED, DomainState.SUSPENDED) \
                and not s.domain_jobs.get(dname) and d.cores >= job.cores and d.memory_mb >= job.memory_mb:
            return d.cores, d.memory_mb
    if not ctx.policy.lifecycle.dynamic_boot:
        return None
    f = lifecycle.choose_flavor(job, ctx.policy.flavors, host)
    return None if f is None else f.size_on(host)
