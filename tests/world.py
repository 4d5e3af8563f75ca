"""A tiny instant-effect cluster for tests: applies a Plan to a Snapshot and checks every rule
a plan must keep, independently of how the Scheduler computed it.

What each action does is vmsched.plan.apply's; boots and shutdowns are over at once here,
resumes and suspends take no time; the simulator (vmsched.sim) has the delays.
The checker knows nothing of the Scheduler's internals: it re-derives which images a job may
use, which queue caps apply and which class outranks which, from the Policy alone.
"""

from __future__ import annotations

from vmsched.model import Domain, DomainState, JobState, QueueKind, Snapshot
from vmsched.plan import Plan, PlanError, SnapshotState, apply, settle_domain
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
    """Carry out ``plan`` instantly, checking each action against the rules as it goes.

    What an action does, and what state it needs, is vmsched.plan's (the one definition the
    simulator uses too); what is checked here on top is the policy's rules, re-derived."""
    try:
        out = apply(snap, plan, instant=True, check=lambda state, a: _check_rules(policy, state, a))
    except PlanError as e:
        raise PlanViolation(str(e)) from None
    # jobs a test took out of the snapshot have ended: their domains are free again
    state = SnapshotState(out)
    for name in list(state.domains):
        settle_domain(state, name, out.time)
    out = state.snapshot()
    check_state(policy, out)
    return out


def _check_rules(policy: Policy, state: SnapshotState, a) -> None:
    """The policy's rules for one action, on the state just before it (which already has
    what the action needs: vmsched.plan.check_action passed)."""
    hosts, doms, jobs = state.hosts, state.domains, state.jobs

    def running_in(dname):
        return [jobs[j] for j in sorted(state.domain_jobs(dname)) if jobs[j].state is JobState.RUNNING]

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
    elif v == "run":
        j, d = jobs[a.job], doms[a.domain]
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
    elif v == "boot":
        if a.image not in policy.images:
            raise PlanViolation(f"boot of unknown image {a.image}")
    elif v == "suspend-domain":
        d = doms[a.domain]
        inside = running_in(d.name)
        if a.share_for is not None:
            _check_share_preemption(policy, a.share_for, d, inside)
        else:
            _check_preemptor(policy, jobs, a.by, inside, f"suspend-domain {d.name}")
    elif v == "suspend-job":
        j = jobs[a.job]
        _check_preemptor(policy, jobs, a.by, [j], f"suspend-job {j.id}")
    elif v == "requeue":
        j = jobs[a.job]
        _check_preemptor(policy, jobs, a.by, [j] if j.state is JobState.RUNNING else [], f"requeue {j.id}")


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
