"""A tiny instant-effect cluster for tests: applies a Plan to a Snapshot and checks every rule
a plan must keep, independently of how the Scheduler computed it.

Boots, resumes and suspends take no time here; the simulator (vmsched.sim) has the delays.
The checker knows nothing of the Scheduler's internals: it re-derives which images a job may
use, which queue caps apply and which class outranks which, from the Policy alone.
"""

from __future__ import annotations

import attrs

from vmsched.model import Domain, DomainState, JobState, QueueKind, Snapshot
from vmsched.plan import Plan
from vmsched.policyfile import Policy

ACTIVE = (DomainState.FREE, DomainState.RUNNING, DomainState.BOOTING)


class PlanViolation(AssertionError):
    pass


def allowed_images(policy: Policy, job) -> set[str]:
    if job.image is not None:
        im = policy.images.get(job.image)
        ok = im is not None and (not im.vos or job.vo in im.vos or job.group in im.vos)
        imgs = {job.image} if ok else set()
    else:
        imgs = {i.name for i in policy.images.values() if job.vo in i.vos or job.group in i.vos}
    q = policy.queues.get(job.queue)
    if q is not None and q.images:
        imgs &= set(q.images)
    return imgs


def rank(policy: Policy, job) -> int:
    return policy.preemption.rank(policy.preemption.class_of(job))


def check_state(policy: Policy, snap: Snapshot) -> None:
    """No host over-committed, never more active domains than allowed, domains within size."""
    hosts = {h.name: h for h in snap.hosts}
    by_host: dict[str, list[Domain]] = {}
    for d in snap.domains:
        by_host.setdefault(d.host, []).append(d)
    for hname, doms in by_host.items():
        h = hosts[hname]
        act = [d for d in doms if d.state in ACTIVE]
        if len(act) > h.max_active:
            raise PlanViolation(f"host {hname}: {len(act)} active domains > max_active {h.max_active}")
        if sum(d.cores for d in act) > h.cores:
            raise PlanViolation(f"host {hname}: active domains take {sum(d.cores for d in act)} > {h.cores} cores")
        if sum(d.memory_mb for d in act) > h.memory_mb:
            raise PlanViolation(f"host {hname}: active domains over memory")
        if len([d for d in doms if d.state is not DomainState.SHUTTING_DOWN]) > h.max_domains:
            raise PlanViolation(f"host {hname}: more than max_domains {h.max_domains}")
    doms = {d.name: d for d in snap.domains}
    in_dom: dict[str, list] = {}
    for j in snap.jobs:
        if j.state is JobState.RUNNING:
            d = doms[j.domain]
            if not d.state.active:
                raise PlanViolation(f"job {j.id} runs in domain {d.name} which is {d.state.value}")
            in_dom.setdefault(j.domain, []).append(j)
        elif j.state is JobState.SUSPENDED:
            in_dom.setdefault(j.domain, [])
    for dname, js in in_dom.items():
        d = doms[dname]
        if sum(j.cores for j in js) > d.cores or sum(j.memory_mb for j in js) > d.memory_mb:
            raise PlanViolation(f"domain {dname} over-committed by its jobs")
        caps = [policy.queues[j.queue].per_domain_jobs for j in js]
        if js and len(js) > min(caps):
            raise PlanViolation(f"domain {dname} runs {len(js)} jobs, per-domain cap {min(caps)}")


def apply_plan(policy: Policy, snap: Snapshot, plan: Plan) -> Snapshot:
    """Carry out ``plan`` instantly, checking each action against the rules as it goes."""
    hosts = {h.name: h for h in snap.hosts}
    doms = {d.name: d for d in snap.domains}
    jobs = {j.id: j for j in snap.jobs}
    now = plan.time

    def running_in(dname):
        return [j for j in jobs.values() if j.domain == dname and j.state is JobState.RUNNING]

    for a in plan.actions:
        v = a.verb
        if v == "route":
            j = jobs[a.job]
            src = policy.queues[j.queue]
            if src.kind is not QueueKind.ROUTING:
                raise PlanViolation(f"route of {a.job} from execution queue {j.queue}")
            # the first accepting destination, by an independent walk
            expect = _first_accepting(policy, j, src)
            if expect != a.queue:
                raise PlanViolation(f"job {a.job} routed to {a.queue}, first accepting is {expect}")
            jobs[a.job] = attrs.evolve(j, queue=a.queue)
        elif v == "run":
            j, d = jobs[a.job], doms.get(a.domain)
            if d is None:
                raise PlanViolation(f"run {a.job} in unknown domain {a.domain}")
            if j.state is not JobState.QUEUED:
                raise PlanViolation(f"run {a.job} which is {j.state.value}")
            if d.state not in (DomainState.FREE, DomainState.RUNNING):
                raise PlanViolation(f"run {a.job} in domain {d.name} which is {d.state.value}")
            if policy.queues[j.queue].kind is not QueueKind.EXECUTION:
                raise PlanViolation(f"run {a.job} from routing queue {j.queue}")
            if d.image not in allowed_images(policy, j):
                raise PlanViolation(f"run {a.job} (VO {j.vo}) in domain of image {d.image}")
            if not j.features <= hosts[d.host].features:
                raise PlanViolation(f"run {a.job} on host without features {sorted(j.features)}")
            others = running_in(d.name)
            caps = [policy.queues[o.queue].per_domain_jobs for o in others + [j]]
            if len(others) + 1 > min(caps):
                raise PlanViolation(f"run {a.job}: domain {d.name} cap {min(caps)} exceeded")
            if sum(o.cores for o in others) + j.cores > d.cores or \
                    sum(o.memory_mb for o in others) + j.memory_mb > d.memory_mb:
                raise PlanViolation(f"run {a.job}: does not fit domain {d.name}")
            jobs[a.job] = attrs.evolve(j, state=JobState.RUNNING, domain=d.name, start_time=now)
            doms[d.name] = attrs.evolve(d, state=DomainState.RUNNING)
        elif v == "boot":
            if a.domain in doms:
                raise PlanViolation(f"boot of existing domain {a.domain}")
            if a.image not in policy.images:
                raise PlanViolation(f"boot of unknown image {a.image}")
            doms[a.domain] = Domain(a.domain, a.host, a.image, a.flavor, DomainState.FREE, a.cores, a.memory_mb,
                                    since=now)
        elif v == "resume-domain":
            d = doms[a.domain]
            if d.state not in (DomainState.SUSPENDED, DomainState.OCCUPIED):
                raise PlanViolation(f"resume of domain {d.name} which is {d.state.value}")
            inside = [j for j in jobs.values() if j.domain == d.name and j.state is JobState.SUSPENDED]
            for j in inside:
                jobs[j.id] = attrs.evolve(j, state=JobState.RUNNING)
            doms[d.name] = attrs.evolve(d, state=DomainState.RUNNING if inside else DomainState.FREE, since=now)
        elif v == "suspend-domain":
            d = doms[a.domain]
            if not d.state.active:
                raise PlanViolation(f"suspend of domain {d.name} which is {d.state.value}")
            inside = running_in(d.name)
            if getattr(a, "share_for", None) is not None:
                _check_share_preemption(policy, a.share_for, d, inside)
            else:
                _check_preemptor(policy, jobs, a.by, inside, f"suspend-domain {d.name}")
            for j in inside:
                jobs[j.id] = attrs.evolve(j, state=JobState.SUSPENDED)
            doms[d.name] = attrs.evolve(d, state=DomainState.SUSPENDED if inside else DomainState.OCCUPIED, since=now)
        elif v == "shutdown":
            d = doms[a.domain]
            if [j for j in jobs.values() if j.domain == d.name and j.state in (JobState.RUNNING, JobState.SUSPENDED)]:
                raise PlanViolation(f"shutdown of domain {d.name} that holds jobs")
            del doms[d.name]
        elif v == "suspend-job":
            j = jobs[a.job]
            _check_preemptor(policy, jobs, a.by, [j], f"suspend-job {j.id}")
            jobs[j.id] = attrs.evolve(j, state=JobState.SUSPENDED)
        elif v == "resume-job":
            j = jobs[a.job]
            if j.state is not JobState.SUSPENDED:
                raise PlanViolation(f"resume of job {j.id} which is {j.state.value}")
            jobs[j.id] = attrs.evolve(j, state=JobState.RUNNING)
        elif v == "requeue":
            j = jobs[a.job]
            _check_preemptor(policy, jobs, a.by, [j] if j.state is JobState.RUNNING else [], f"requeue {j.id}")
            jobs[j.id] = attrs.evolve(j, state=JobState.QUEUED, domain=None, start_time=None)
        elif v == "bind":
            jobs[a.job] = attrs.evolve(jobs[a.job], domain=a.domain)
        else:
            raise PlanViolation(f"unknown action {v}")
        # domains whose last job left go back to free
    for name, d in list(doms.items()):
        if d.state is DomainState.RUNNING and not running_in(name) and \
                not any(j.domain == name and j.state is JobState.SUSPENDED for j in jobs.values()):
            doms[name] = attrs.evolve(d, state=DomainState.FREE)
    out = Snapshot(now, snap.hosts, tuple(sorted(doms.values(), key=lambda d: d.name)), tuple(jobs.values()))
    check_state(policy, out)
    return out


def _check_preemptor(policy, jobs, by, victims, what):
    if not victims:
        return
    if by is None:
        raise PlanViolation(f"{what} displaces running jobs without a preemptor")
    p = jobs[by]
    for v in victims:
        if rank(policy, v) >= rank(policy, p):
            raise PlanViolation(f"{what}: {by} (class {policy.preemption.class_of(p)}) preempts {v.id} "
                                f"(class {policy.preemption.class_of(v)})")


def _check_share_preemption(policy, vo, d, victims):
    """Frozen for fair share: for a VO with a top-level share that the domain's image does not
    serve, and only work of the default class or below."""
    shares = {p[0] for p, _ in policy.fairshare.shares if len(p) == 1}
    if vo not in shares:
        raise PlanViolation(f"suspend-domain {d.name} for VO {vo}, which has no share")
    if vo in policy.images[d.image].vos:
        raise PlanViolation(f"suspend-domain {d.name} for VO {vo}, which its own image serves")
    top = policy.preemption.rank(policy.preemption.default_class)
    for v in victims:
        if rank(policy, v) > top:
            raise PlanViolation(f"suspend-domain {d.name} for share freezes {v.id} "
                                f"(class {policy.preemption.class_of(v)})")


def _first_accepting(policy, job, q, trail=()):
    if q.refuses(job) is not None:
        return None
    for dname in q.destinations:
        d = policy.queues[dname]
        if dname in trail:
            continue
        if d.kind is QueueKind.ROUTING:
            r = _first_accepting(policy, job, d, trail + (q.name,))
            if r is not None:
                return r
        elif d.refuses(job) is None:
            return dname
    return None
