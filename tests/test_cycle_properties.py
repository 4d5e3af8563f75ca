"""Properties of a scheduling cycle over random sites, jobs and policies (issue 2 acceptance)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from vmsched.cycle import Scheduler
from vmsched.matching import PyEngine
from vmsched.model import Job, JobState, Snapshot
from vmsched.usage import UsageStore

from .strategies import jobs, magrathea_policies, sites, start_domains
from .world import PlanViolation, apply_plan, check_state

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def scheduler(policy):
    return Scheduler(policy, engine=PyEngine(), store=UsageStore(":memory:"))


@SETTINGS
@given(sites())
def test_any_plan_keeps_every_rule(site):
    policy, snap = site
    check_state(policy, snap)
    plan = scheduler(policy).on_cycle(snap)
    after = apply_plan(policy, snap, plan)       # raises PlanViolation on any broken rule
    check_state(policy, after)


@SETTINGS
@given(sites())
def test_two_cycles_keep_every_rule(site):
    """A second cycle starts from running jobs, so preemption and caps really get exercised."""
    policy, snap = site
    sched = scheduler(policy)
    after = apply_plan(policy, snap, sched.on_cycle(snap))
    more = [attrs.evolve(j, id=f"b{j.id}", interactive=True, submit_time=1050.0) for j in snap.jobs]
    snap2 = attrs.evolve(after, time=1100.0, jobs=after.jobs + tuple(more))
    apply_plan(policy, snap2, sched.on_cycle(snap2))


@SETTINGS
@given(sites())
def test_plan_is_deterministic(site):
    policy, snap = site
    a = scheduler(policy).on_cycle(snap)
    b = scheduler(policy).on_cycle(snap)
    assert a == b
    # ... and independent of the order the server lists things in
    rev = Snapshot(snap.time, tuple(reversed(snap.hosts)), tuple(reversed(snap.domains)), tuple(reversed(snap.jobs)))
    assert scheduler(policy).on_cycle(rev) == a


@SETTINGS
@given(sites())
def test_every_queued_job_is_placed_or_explained(site):
    policy, snap = site
    plan = scheduler(policy).on_cycle(snap)
    started = {a.job for a in plan.actions if a.verb in ("run", "bind")}
    explained = {j for j, _ in plan.pending}
    for j in snap.jobs:
        if j.state is JobState.QUEUED:
            assert j.id in started or j.id in explained, f"job {j.id} neither placed nor explained"
    for _, p in plan.pending:
        assert p.text and "\n" not in p.text


@SETTINGS
@given(sites(mode="suspend-domain"))
def test_magrathea_never_more_active_than_allowed(site):
    policy, snap = site
    sched = scheduler(policy)
    for t in range(3):
        plan = sched.on_cycle(snap)
        snap = apply_plan(policy, snap, plan)
        new = [attrs.evolve(j, id=f"{t}-{j.id}", interactive=(t == 1), submit_time=snap.time,
                            state=JobState.QUEUED, domain=None, start_time=None)
               for j in snap.jobs[:3]]
        snap = attrs.evolve(snap, time=snap.time + 60, jobs=snap.jobs + tuple(new))


class ClusterMachine(RuleBasedStateMachine):
    """Many cycles of a site: jobs arrive, end, get preempted; after every cycle the state
    keeps every rule and every queued job has a placement or a reason."""

    @initialize(site=sites())
    def start(self, site):
        self.begin(site)

    def begin(self, site):
        self.policy, self.snap = site
        self.sched = scheduler(self.policy)
        self.counter = 1000
        self.t = self.snap.time

    @rule(data=st.data())
    def submit(self, data):
        new = data.draw(jobs(self.policy, start=self.counter, now=self.t, n=data.draw(st.integers(1, 4))))
        self.counter += len(new)
        self.snap = attrs.evolve(self.snap, jobs=self.snap.jobs + tuple(new))

    @precondition(lambda self: any(j.state is JobState.RUNNING for j in self.snap.jobs))
    @rule(data=st.data())
    def end_job(self, data):
        running = [j for j in self.snap.jobs if j.state is JobState.RUNNING]
        victim = data.draw(st.sampled_from(running))
        self.sched.on_job_end(victim, self.t - (victim.start_time or self.t), now=self.t)
        self.snap = attrs.evolve(self.snap, jobs=tuple(j for j in self.snap.jobs if j.id != victim.id))

    @rule(dt=st.integers(1, 4000))
    def cycle(self, dt):
        self.t += dt
        self.snap = attrs.evolve(self.snap, time=self.t)
        plan = self.sched.on_cycle(self.snap)
        self.snap = apply_plan(self.policy, self.snap, plan)
        started = {a.job for a in plan.actions if a.verb in ("run", "bind")}
        explained = {j for j, _ in plan.pending}
        for j in self.snap.jobs:
            if j.state is JobState.QUEUED and j.domain is None:
                assert j.id in started or j.id in explained

    @invariant()
    def rules_hold(self):
        if hasattr(self, "snap"):
            check_state(self.policy, self.snap)

    @invariant()
    def fair_share_sums_match_a_full_recount(self):
        """The running-work sums kept incrementally equal a recount from every job."""
        if not hasattr(self, "snap"):
            return
        from vmsched.policies.fairshare import usage_amount
        s, fs, now = self.sched, self.policy.fairshare, self.t + 7.0
        usage = dict(s.store.usage(now, fs.half_life_s, fs.floor))
        for jid, state in s.status.items():
            j = s.jobs[jid]
            if state == "running" and j.start_time is not None and now > j.start_time:
                p = (j.vo, j.group, j.user)
                usage[p] = usage.get(p, 0.0) + usage_amount(j.cores, j.memory_mb, now - j.start_time, fs.usage,
                                                            mb_per_core=fs.memory_mb_per_core)
        expect = s.fairshare.factors(usage, extra_paths=tuple(s._entities))
        got = s.factors(now)
        assert set(got) == set(expect)
        for p in got:
            assert got[p] == pytest.approx(expect[p], rel=1e-6, abs=1e-9)


    @invariant()
    def indexes_match_a_full_recount(self):
        """Everything the Scheduler keeps incrementally so that a cycle never walks every
        job or domain equals a recount: domains per state, inactive domains per image,
        pending jobs per image, per-VO cores, and each matcher handle's job shape."""
        if not hasattr(self, "snap"):
            return
        from collections import Counter
        from vmsched.model import DomainState
        s = self.sched
        for st in DomainState:
            assert s._by_state[st] == {n for n, d in s.domains.items() if d.state is st}, st
        inactive = {}
        for n, d in s.domains.items():
            if d.state in (DomainState.OCCUPIED, DomainState.SUSPENDED):
                inactive.setdefault(d.image, set()).add(n)
        assert {i: v for i, v in s._inactive_img.items() if v} == inactive
        img_pending, vo_cores = Counter(), Counter()
        for jid, st in s.status.items():
            j = s.jobs[jid]
            if st == "pending":
                img_pending.update(s.images_for(j))
            if st in ("pending", "running", "suspended"):
                vo_cores[(st, j.vo)] += j.cores
        def nonzero(c):   # (a negative count must show, so not Counter's unary +)
            return {k: v for k, v in c.items() if v != 0}
        assert nonzero(s._img_pending) == img_pending
        assert nonzero(s._vo_cores) == vo_cores
        for jid, h in s._job_h.items():
            sh = s._hshape[h]
            j = s.jobs[jid]
            assert (sh.images, sh.cores, sh.memory_mb, sh.features, sh.queue, sh.rank, sh.vo) == \
                (s.images_for(j), j.cores, j.memory_mb, j.features, j.queue, s.rank_of(j), j.vo)
        assert set(s._hshape) == set(s._job_name)
        assert s._ranked_running == {j for j, st in s.status.items() if st == "running" and s.rank_of(s.jobs[j]) > 0}
        # each host's room, idle active domains and openness, as lifecycle's HostRoom and
        # room test would find them from scratch
        from vmsched.policies.lifecycle import HostRoom
        openable = set()
        for hname, host in s.hosts.items():
            room = HostRoom.build(host, s.host_domains.get(hname, ()), s.domains)
            used = s._room_used.get(hname, [0, 0, 0])
            assert used == [room.active, room.cores, room.memory], hname
            idle = {n for n in s.host_domains.get(hname, ()) if s.domains[n].state.active and not s.domain_jobs.get(n)}
            assert s._idle_active.get(hname, set()) == idle, hname
            if host.up and (idle or room.active < host.max_active):
                openable.add(hname)
        assert s.openable_hosts() == sorted(openable)
        idle_img, held_img = {}, Counter()
        for n, d in s.domains.items():
            if d.state.active and not s.domain_jobs.get(n):
                idle_img.setdefault(d.image, set()).add(n)
            if d.state in (DomainState.FREE, DomainState.RUNNING, DomainState.BOOTING):
                held_img[d.image] += d.cores
        assert {i: v for i, v in s._idle_img.items() if v} == idle_img
        assert nonzero(s._held_img) == held_img
        assert s.booting_count() == sum(d.state is DomainState.BOOTING for d in s.domains.values())


ClusterMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])
TestCluster = ClusterMachine.TestCase


@st.composite
def magrathea_sites(draw):
    policy = draw(magrathea_policies())
    snap = Snapshot(1000.0, policy.hosts, start_domains(policy), draw(jobs(policy)))
    return policy, snap


class ShareMachine(ClusterMachine):
    """The same many cycles on MetaCenter-like sites with share preemption on: hosts move
    between two VOs' images by share while work is frozen and thawed, and every plan keeps
    the rules (share freezes only default-class work, never for a VO the image serves)."""

    @initialize(site=magrathea_sites())
    def start(self, site):
        self.begin(site)


    @rule(vo=st.sampled_from(["atlas", "cms"]), n=st.integers(4, 16), interactive=st.booleans())
    def flood(self, vo, n, interactive):
        """One VO floods the queue with narrow jobs (its last one interactive, maybe): the
        other soon holds more than its share, and share preemption has work to move."""
        new = [Job(f"{self.counter + i}.srv", "u0", vo, vo, "q", 1, 500, 36000, self.t - 900.0,
                   interactive=interactive and i == n - 1, state=JobState.QUEUED) for i in range(n)]
        self.counter += n
        self.snap = attrs.evolve(self.snap, jobs=self.snap.jobs + tuple(new))


ShareMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
TestShare = ShareMachine.TestCase


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites())
def test_any_plan_keeps_every_rule_many(site):
    policy, snap = site
    apply_plan(policy, snap, scheduler(policy).on_cycle(snap))


def test_violation_is_detected():
    """The checker itself can fail: a plan that over-fills a domain is caught."""
    from vmsched.plan import Plan, RunJob
    from vmsched.policyfile import load_policy
    from pathlib import Path
    policy = load_policy(Path(__file__).parents[1] / "vmsched/examples/cern.toml")
    from vmsched.model import Domain, Job
    d = Domain("d1", "lxb001", "slc4", "small", "free", 1, 1740)
    j1 = Job("1", "u", "cms", "cms", "oneway", 1, 100, 60, 0.0)
    j2 = Job("2", "u", "cms", "cms", "oneway", 1, 100, 60, 0.0)
    snap = Snapshot(10.0, policy.hosts, (d,), (j1, j2))
    with pytest.raises(PlanViolation):
        apply_plan(policy, snap, Plan(10.0, (RunJob("1", "d1"), RunJob("2", "d1")), ()))


@pytest.mark.parametrize("actions", [
    ("run", "nope"), ("run", "1", "nope"), ("run", "1", "d2"), ("run", "r", "d1"), ("boot", "d1", "slc4"),
    ("boot", "d9", "no-such-image"), ("resume-domain", "d1"), ("suspend-domain", "d2"), ("shutdown", "d1"),
    ("resume-job", "r"), ("requeue", "1"), ("bind", "1", "nope"),
])
def test_every_impossible_action_is_a_violation(actions):
    """The world refuses what plan.apply refuses (as a PlanViolation), before the policy's rules."""
    from pathlib import Path

    from vmsched.model import Domain
    from vmsched.plan import BindJob, BootDomain, Plan, RequeueJob, ResumeDomain, ResumeJob, RunJob, \
        ShutdownDomain, SuspendDomain
    from vmsched.policyfile import load_policy
    policy = load_policy(Path(__file__).parents[1] / "vmsched/examples/cern.toml")
    h = policy.hosts[0].name
    doms = (Domain("d1", h, "slc4", "small", "running", 1, 1740), Domain("d2", h, "slc4", "small", "occupied", 1, 1740))
    jobs = (Job("1", "u", "cms", "cms", "oneway", 1, 100, 60, 0.0),
            Job("r", "u", "cms", "cms", "oneway", 1, 100, 60, 0.0, state=JobState.RUNNING, domain="d1", start_time=1.0))
    verb, *args = actions
    make = {"run": RunJob, "resume-domain": ResumeDomain, "suspend-domain": SuspendDomain, "shutdown": ShutdownDomain,
            "resume-job": ResumeJob, "requeue": RequeueJob, "bind": BindJob}
    if verb == "run" and len(args) == 1:
        args.append("d1")
    action = BootDomain(args[0], h, args[1], "small", 1, 1740) if verb == "boot" else make[verb](*args)
    with pytest.raises(PlanViolation):
        apply_plan(policy, Snapshot(10.0, policy.hosts, doms, jobs), Plan(10.0, (action,), ()))


def _c_engine():
    import os
    from vmsched import _core
    if not _core.AVAILABLE:
        if os.environ.get("VMSCHED_REQUIRE_C") == "1":
            pytest.fail(f"the C core must be built here: {_core.load_error()}")
        pytest.skip(f"C core not built ({_core.load_error()})")
    return _core.CEngine()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites(), st.integers(1, 4))
def test_c_and_python_engines_make_the_same_plans(site, cycles):
    """Issue 3: whole plans (actions in order, pending reasons), over several cycles."""
    policy, snap = site
    c_engine = _c_engine()
    py = Scheduler(policy, engine=PyEngine(), store=UsageStore(":memory:"))
    cc = Scheduler(policy, engine=c_engine, store=UsageStore(":memory:"))
    for k in range(cycles):
        a, b = py.on_cycle(snap), cc.on_cycle(snap)
        assert a.actions == b.actions and a.pending == b.pending
        snap = apply_plan(policy, snap, a)
        more = [attrs.evolve(j, id=f"{k}-{j.id}", interactive=(k % 2 == 1), submit_time=snap.time, state=JobState.QUEUED,
                             domain=None, start_time=None) for j in snap.jobs[:4]]
        ended = [j for j in snap.jobs if j.state is JobState.RUNNING][:2]
        for j in ended:
            py.on_job_end(j, 100.0, now=snap.time + 50)
            cc.on_job_end(j, 100.0, now=snap.time + 50)
        snap = attrs.evolve(snap, time=snap.time + 100, jobs=tuple(j for j in snap.jobs if j not in ended) + tuple(more))


@SETTINGS
@given(sites(), st.data())
def test_placement_over_the_openable_hosts_is_placement_over_every_host(site, data):
    """Lifecycle given only the hosts where a domain could open, in preference order, finds
    what it finds when it looks at every host (issue 9: the index must lose nothing)."""
    from vmsched.context import CycleContext
    from vmsched.policies import lifecycle

    policy, snap = site
    s = scheduler(policy)
    s.sync(snap)
    if not s.jobs:
        return
    job = s.jobs[data.draw(st.sampled_from(sorted(s.jobs)))]
    images = s.images_for(job)
    if not images:
        return

    def place(**kw):
        ctx = CycleContext(s, snap.time)
        rooms = {n: r for n, r in ctx.rooms.items() if job.features <= r.host.features}   # as before the index
        if "hosts" in kw:
            rooms = ctx.rooms
            kw["hosts"] = ctx.hosts_in_order(job)
        return lifecycle.plan_placement(job, images, rooms, s.domains, ctx.busy, policy.flavors,
                                        policy.lifecycle, ctx.boots_left, snap.time, **kw)

    by_index = place(hosts=None, host_domains=s.host_domains)
    assert by_index == place() == place(inactive=s._inactive_img)
