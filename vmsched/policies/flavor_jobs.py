"""Flavor-jobs phase: a job that named a flavor (WNoDeS: a VM of that size, or a whole node)
runs only in a domain of that flavor.

The matcher knows domains by image and host features, not by flavor, so such a job is given
to it with no kind at all (it never places one, and one never finds victims) and is placed
here, right after the match, in the matcher's queue order: a free domain of its flavor,
image and host features with room; else a domain of that flavor booting for its image; else
lifecycle's placement, which activates or boots that flavor only. A free domain of another
flavor is not used, however well it would fit: the user asked for that VM (a whole node is
asked for its isolation, not its size), and taking a smaller one would break the promise
while a bigger one would waste it. Such a job does not preempt.

A flavor the policy does not define, or one that cannot hold the job on any host, is a
*never* naming the flavor. Without ``bind_on_boot`` a domain booted for such a job is, like
any other, open to the matcher once up, so another job of its image may take it first;
WNoDeS binds the job to the VM prepared for it, and then nothing can.
"""

from __future__ import annotations

from vmsched.cluster import STATE_BOUND, STATE_PENDING, STATE_RUNNING
from vmsched.context import CycleContext
from vmsched.model import Domain, DomainState, Job
from vmsched.plan import Pending, Verdict
from vmsched.policies import lifecycle


class FlavorJobs:
    name = "flavor jobs"

    def run(self, ctx: CycleContext) -> None:
        ctx.unplaced = place_flavor_jobs(ctx, ctx.unplaced)


def place_flavor_jobs(ctx: CycleContext, unplaced: list[int]) -> list[int]:
    """Place the jobs of ``unplaced`` (matcher handles, in queue order) that named a flavor;
    the others are returned, in order, for the phases after this one.

    What one job found no way to do, a job asking the same (flavor, images, size, features,
    class) finds no way to do either in this cycle, since what the cycle gives away only
    narrows it: such a job waits with the first one's reason, without a look of its own
    (not with a filter plugin, whose verdict is per job). A queue of thousands of such jobs
    costs a cycle one look per kind of ask."""
    s = ctx.s
    named = s.flavor_jobs
    status, handles = s.status, s._job_h
    # pending ones only: a site whose flavor jobs all run pays nothing below
    mine = {handles[j] for j in named if status.get(j) == STATE_PENDING and j in handles} if named else None
    if not mine:
        return unplaced
    rest = [h for h in unplaced if h not in mine]
    domains = _active_by_flavor(ctx, {s.jobs[j].flavor for j in named if j in s.jobs})
    look = _Pass(ctx)
    failed: dict[tuple, Pending] = {}
    for h in unplaced:
        jid = s._job_name.get(h)
        if h not in mine or jid is None or s.status.get(jid) != STATE_PENDING:
            continue
        job = s.jobs[jid]
        key = (job.flavor, s.images_for(job), job.cores, job.memory_mb, job.features, ctx.rank(job))
        if look.can_skip and key in failed:
            ctx.pending[jid] = failed[key]
            continue
        why = _place_one(ctx, look, h, jid, job, key, domains.get(job.flavor, ()))
        if why is not None:
            ctx.pending[jid] = why
            if look.final:
                failed[key] = why
    return rest


class _Pass:
    """What one run of the phase keeps from job to job: starts so far, booting domains
    promised, and whether the last reason holds for every job asking the same."""

    def __init__(self, ctx: CycleContext):
        s = ctx.s
        self.started = sum(1 for a in ctx.actions if a.verb == "run")
        self.promised: set[str] = set()
        self.bound = {s.jobs[j].domain for j in s._listed[STATE_BOUND]}
        self.booting = [s.domains[n] for n in sorted(s._by_state[DomainState.BOOTING]) if not s.domain_jobs.get(n)]
        self.final = False
        self.no_domain: set[tuple] = set()   # asks that found no active domain of their flavor
        self.can_skip = "filter" not in s.plugins


def _place_one(ctx: CycleContext, look: _Pass, h: int, jid: str, job: Job, key: tuple,
               candidates: list[Domain]) -> Pending | None:
    """Start, bind or boot for one job naming a flavor; its reason when it must wait."""
    s = ctx.s
    look.final = True
    why = never_reason(ctx, job)
    if why is not None:
        return Pending(Verdict.NEVER, why)
    d = None if key in look.no_domain else _own_flavor_domain(ctx, jid, job, candidates)
    if d is None and look.can_skip:
        look.no_domain.add(key)     # starts only narrow what the next job of this ask finds
    limit = ctx.policy.max_starts_per_cycle
    if d is not None and 0 <= limit <= look.started:
        return Pending(Verdict.NOT_NOW, f"domain {d.name} (flavor {job.flavor}) has room, but this cycle has "
                                        f"started max_starts_per_cycle = {limit} jobs")
    if d is not None:
        ctx.start(h, jid, s._slot_h[d.name])
        look.started += 1
        return None
    booting = _booting_own_flavor(ctx, job, look)
    if booting is not None:
        look.promised.add(booting)
        look.final = False
        return Pending(Verdict.NOT_NOW, f"waiting for domain {booting} (flavor {job.flavor}) to boot")
    return _open_own_flavor(ctx, h, jid, job)


def _active_by_flavor(ctx: CycleContext, flavors: set[str]) -> dict[str, list[Domain]]:
    """The active domains of the flavors asked for, per flavor, by name."""
    s = ctx.s
    out: dict[str, list[Domain]] = {}
    for name in sorted(s._by_state[DomainState.FREE] | s._by_state[DomainState.RUNNING]):
        d = s.domains[name]
        if d.flavor in flavors:
            out.setdefault(d.flavor, []).append(d)
    return out


def never_reason(ctx: CycleContext, job: Job) -> str | None:
    """Why no domain of the job's flavor could ever hold it here, or None."""
    s, flavors = ctx.s, ctx.policy.flavors
    f = flavors.get(job.flavor)
    if f is None:
        return (f"asks for flavor {job.flavor}, which the policy does not define "
                f"(known: {', '.join(sorted(flavors))})")
    hosts = {(h.cores, h.memory_mb, h.disk_gb): h for h in s.hosts.values() if job.features <= h.features}
    if ctx.policy.lifecycle.dynamic_boot:
        fits = [h for h in hosts.values() if lifecycle.flavor_choices(job, flavors, h)]
        if not hosts or any(h.disk_gb is None or f.disk_for(f.size_on(h)[0]) <= h.disk_gb for h in fits):
            return None
        if fits:
            return (f"asks for flavor {f.name}, whose disk ({f.disk_for(f.size_on(fits[0])[0])} GB or more) "
                    "no host it fits has")
        c, m = max(f.size_on(h) for h in hosts.values())
        return (f"asks for {job.cores} cores and {job.memory_mb} MB in flavor {f.name}, which gives at most "
                f"{c} cores and {m} MB on these hosts")
    images = set(s.images_for(job))
    if any(d.flavor == f.name and d.image in images and d.cores >= job.cores and d.memory_mb >= job.memory_mb
           for d in s.domains.values()):
        return None
    return f"asks for flavor {f.name}: no domain of that flavor and of its images can hold it, and none is booted"


def _own_flavor_domain(ctx: CycleContext, jid: str, job: Job, candidates: list[Domain]) -> Domain | None:
    """The tightest active domain of the job's flavor that it may use now, if any."""
    s = ctx.s
    images, rank, best = set(s.images_for(job)), ctx.rank(job), None
    for d in candidates:
        if d.cores < job.cores or d.memory_mb < job.memory_mb:
            continue
        host = s.hosts[d.host]
        if d.image not in images or not host.up or not job.features <= host.features \
                or d.name in ctx.held_back or ctx.reserved.get(d.name, 0) > rank \
                or (d.name in ctx.claimed and not s.domain_jobs.get(d.name)):
            continue
        running = [s.jobs[o] for o in s.domain_jobs.get(d.name, ()) if s.status.get(o) == STATE_RUNNING]
        if not ctx.fits_with(job, d, running):
            continue
        key = (d.cores - sum(o.cores for o in running), d.memory_mb - sum(o.memory_mb for o in running), d.name)
        if (best is None or key < best[0]) and not ctx.vetoed(jid, d.name):
            best = (key, d)
    return None if best is None else best[1]


def _open_own_flavor(ctx: CycleContext, h: int, jid: str, job: Job) -> Pending | None:
    """Activate or boot a domain of the job's flavor; else why the job waits."""
    s = ctx.s
    images = s.images_for(job)
    placement = None
    if images:
        placement = lifecycle.plan_placement(job, images, ctx.rooms, s.domains, ctx.busy, ctx.policy.flavors,
                                             ctx.policy.lifecycle, ctx.boots_left, ctx.now,
                                             hosts=ctx.hosts_in_order(job), host_domains=s.host_domains)
    if placement is not None:
        ctx.apply_placement(h, jid, job, placement)
        return None
    lc = ctx.policy.lifecycle
    why = f"no domain of flavor {job.flavor} has room for it"
    if not lc.dynamic_boot:
        why += ", and domains are not booted on demand"
    elif ctx.boots_left <= 0:
        why += f"; boot limit reached ({lc.max_concurrent_boots} under way)"
    else:
        why += ", and no host has room to boot one"
    return Pending(Verdict.NOT_NOW, why)


def _booting_own_flavor(ctx: CycleContext, job: Job, look: _Pass) -> str | None:
    """An idle domain of the job's flavor and image booting, that nobody else is bound or
    promised to."""
    s = ctx.s
    images = set(s.images_for(job))
    for d in look.booting:
        if d.flavor == job.flavor and d.image in images and d.name not in look.promised \
                and d.name not in look.bound and d.cores >= job.cores and d.memory_mb >= job.memory_mb \
                and job.features <= s.hosts[d.host].features:
            return d.name
    return None


__all__ = ["FlavorJobs", "place_flavor_jobs", "never_reason"]
