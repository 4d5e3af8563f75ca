"""What each action does to the cluster (vmsched.plan.apply), and what it refuses."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

from vmsched.cycle import Scheduler
from vmsched.matching import PyEngine
from vmsched.model import Domain, DomainState, Host, Job, JobState, Snapshot
from vmsched.plan import (Action, BindJob, BootDomain, Plan, PlanError, RequeueJob, ResumeDomain, ResumeJob,
                          RouteJob, RunJob, ShutdownDomain, SnapshotState, SuspendDomain, SuspendJob, apply,
                          apply_action, finish_boot, finish_job, finish_shutdown)
from vmsched.usage import UsageStore

from .strategies import sites

T = 100.0


def job(jid, cores=1, mem=500, **kw):
    return Job(jid, "u", "cms", "cms", kw.pop("queue", "q"), cores, mem, 3600, 0.0, **kw)


@pytest.fixture
def snap():
    hosts = (Host("h1", 8, 16384, max_active=2), Host("h2", 8, 16384, max_active=2))
    doms = (Domain("free", "h1", "img", "large", DomainState.FREE, 4, 4000, since=1.0),
            Domain("busy", "h1", "img", "large", DomainState.RUNNING, 4, 4000, since=2.0),
            Domain("idle", "h2", "img", "large", DomainState.OCCUPIED, 4, 4000, since=3.0),
            Domain("frozen", "h2", "img", "large", DomainState.SUSPENDED, 4, 4000, since=4.0),
            Domain("boot", "h2", "img2", "large", DomainState.BOOTING, 4, 4000, since=5.0))
    jobs = (job("q1", queue="route"), job("big", 3, 3500),
            job("r1", 2, 1000, state=JobState.RUNNING, domain="busy", start_time=10.0),
            job("s1", 1, 500, state=JobState.SUSPENDED, domain="frozen", start_time=20.0))
    return Snapshot(50.0, hosts, doms, jobs)


def after(snap, *actions, **kw):
    return apply(snap, Plan(T, tuple(actions), ()), **kw)


def dom(s, name):
    return next((d for d in s.domains if d.name == name), None)


def jb(s, jid):
    return next((j for j in s.jobs if j.id == jid), None)


def refused(snap, action, words):
    with pytest.raises(PlanError) as e:
        after(snap, action)
    assert e.value.action == action and words in e.value.why
    assert str(e.value).startswith(f"{action}: ") and "\n" not in str(e.value)


# ----------------------------------------------------------------------------- effects

def test_the_result_is_at_the_plan_time_and_keeps_what_no_action_touched(snap):
    s = after(snap)
    assert s == attrs.evolve(snap, time=T)
    assert snap.apply(Plan(T, (), ())) == s


def test_route_changes_the_queue_only(snap):
    assert jb(after(snap, RouteJob("q1", "q")), "q1") == attrs.evolve(jb(snap, "q1"), queue="q")


def test_run_starts_the_job_in_the_domain_now_and_the_domain_runs_from_now(snap):
    s = after(snap, RunJob("q1", "free"))
    assert jb(s, "q1") == attrs.evolve(jb(snap, "q1"), state=JobState.RUNNING, domain="free", start_time=T)
    assert dom(s, "free") == attrs.evolve(dom(snap, "free"), state=DomainState.RUNNING, since=T)


def test_run_beside_a_running_job_leaves_the_domain_as_it_was(snap):
    s = after(snap, RunJob("q1", "busy"))
    assert jb(s, "q1").domain == "busy" and dom(s, "busy") == dom(snap, "busy")


def test_boot_leaves_a_new_domain_booting_and_finishing_it_makes_it_free(snap):
    boot = BootDomain("new", "h1", "img3", "small", 1, 1740)
    s = after(snap, boot)
    assert dom(s, "new") == Domain("new", "h1", "img3", "small", DomainState.BOOTING, 1, 1740, since=T)
    state = SnapshotState(s)
    assert finish_boot(state, "new", 130.0)
    s = state.snapshot()
    assert dom(s, "new").state is DomainState.FREE and dom(s, "new").since == 130.0
    assert "img3" in next(h for h in s.hosts if h.name == "h1").cached_images    # the host keeps the image
    assert after(snap, boot, instant=True) == attrs.evolve(s, time=T, domains=tuple(
        attrs.evolve(d, since=T) if d.name == "new" else d for d in s.domains))


def test_finish_boot_is_nothing_for_a_domain_no_longer_booting(snap):
    state = SnapshotState(snap)
    assert not finish_boot(state, "free", T) and not finish_boot(state, "gone", T)
    assert state.snapshot() == snap


def test_resume_domain_thaws_its_jobs_and_activates_an_idle_one(snap):
    s = after(snap, ResumeDomain("frozen"), ResumeDomain("idle"))
    assert dom(s, "frozen").state is DomainState.RUNNING and dom(s, "frozen").since == T
    assert jb(s, "s1") == attrs.evolve(jb(snap, "s1"), state=JobState.RUNNING)     # start time kept
    assert dom(s, "idle").state is DomainState.FREE and dom(s, "idle").since == T


def test_suspend_domain_freezes_its_jobs_and_an_empty_one_is_only_occupied(snap):
    s = after(snap, SuspendDomain("busy", by="q1"), SuspendDomain("free"))
    assert dom(s, "busy").state is DomainState.SUSPENDED and dom(s, "busy").since == T
    assert jb(s, "r1") == attrs.evolve(jb(snap, "r1"), state=JobState.SUSPENDED)
    assert dom(s, "free").state is DomainState.OCCUPIED


def test_shutdown_leaves_the_domain_shutting_down_once_and_finishing_removes_it(snap):
    s = after(snap, ShutdownDomain("free"), ShutdownDomain("free"))   # asked twice: still one shutdown
    assert dom(s, "free") == attrs.evolve(dom(snap, "free"), state=DomainState.SHUTTING_DOWN, since=T)
    assert dom(after(snap, ShutdownDomain("free"), instant=True), "free") is None
    state = SnapshotState(s)
    assert finish_shutdown(state, "free", T) and not finish_shutdown(state, "free", T)


def test_a_finished_shutdown_unbinds_the_jobs_bound_to_the_domain(snap):
    s = after(snap, BindJob("q1", "boot"), ShutdownDomain("boot"), instant=True)
    assert dom(s, "boot") is None and jb(s, "q1").domain is None


def test_suspend_job_and_resume_job_keep_it_in_its_domain(snap):
    s = after(snap, SuspendJob("r1", by="q1"))
    assert jb(s, "r1") == attrs.evolve(jb(snap, "r1"), state=JobState.SUSPENDED)
    assert dom(s, "busy") == dom(snap, "busy")         # still holds a job: still running
    s2 = after(s, ResumeJob("r1"))
    assert jb(s2, "r1") == jb(snap, "r1")


def test_requeue_sends_the_job_back_and_frees_its_emptied_domain(snap):
    s = after(snap, RequeueJob("r1", by="q1"), RequeueJob("s1"))
    for jid in ("r1", "s1"):
        assert jb(s, jid) == attrs.evolve(jb(snap, jid), state=JobState.QUEUED, domain=None, start_time=None)
    assert dom(s, "busy") == attrs.evolve(dom(snap, "busy"), state=DomainState.FREE, since=T)
    assert dom(s, "frozen") == dom(snap, "frozen")      # an emptied suspended domain stays suspended


def test_bind_keeps_the_job_waiting_bound_to_the_domain(snap):
    s = after(snap, BindJob("q1", "boot"))
    assert jb(s, "q1") == attrs.evolve(jb(snap, "q1"), domain="boot")


def test_actions_see_the_ones_before_them(snap):
    s = after(snap, ResumeDomain("idle"), RunJob("q1", "idle"), RunJob("big", "idle"))
    assert dom(s, "idle").state is DomainState.RUNNING
    assert {j.id for j in s.jobs if j.domain == "idle"} == {"q1", "big"}


def test_finish_job_takes_it_out_and_frees_its_emptied_domain(snap):
    state = SnapshotState(snap)
    finish_job(state, "r1", T)
    s = state.snapshot()
    assert jb(s, "r1") is None and dom(s, "busy").state is DomainState.FREE
    with pytest.raises(PlanError, match="job r1 is unknown"):
        finish_job(state, "r1", T)


# ----------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("action, words", [
    (RouteJob("nope", "q"), "job nope is unknown"),
    (RouteJob("r1", "q"), "job r1 is running, not queued"),
    (RunJob("nope", "free"), "job nope is unknown"),
    (RunJob("q1", "nope"), "domain nope is unknown"),
    (RunJob("r1", "free"), "job r1 is running, not queued"),
    (RunJob("q1", "frozen"), "domain frozen is suspended, not active"),
    (RunJob("q1", "boot"), "domain boot is booting, not active"),
    (RunJob("big", "busy"), "does not fit domain busy: with the jobs running there it needs 5/4 cores"),
    (BootDomain("free", "h1", "img", "small", 1, 1740), "domain free exists already"),
    (BootDomain("new", "h9", "img", "small", 1, 1740), "host h9 is unknown"),
    (BootDomain("new", "h1", "img", "small", -1, 1740), "cores: expected a whole number"),
    (ResumeDomain("nope"), "domain nope is unknown"),
    (ResumeDomain("free"), "domain free is free, not suspended or occupied"),
    (SuspendDomain("nope"), "domain nope is unknown"),
    (SuspendDomain("idle"), "domain idle is occupied, not active"),
    (ShutdownDomain("nope"), "domain nope is unknown"),
    (ShutdownDomain("busy"), "domain busy holds jobs r1"),
    (ShutdownDomain("frozen"), "domain frozen holds jobs s1"),
    (SuspendJob("nope"), "job nope is unknown"),
    (SuspendJob("s1"), "job s1 is suspended, not running"),
    (ResumeJob("nope"), "job nope is unknown"),
    (ResumeJob("r1"), "job r1 is running, not suspended"),
    (ResumeJob("s1"), "job s1's domain frozen is suspended, not active"),
    (RequeueJob("nope"), "job nope is unknown"),
    (RequeueJob("q1"), "job q1 is queued, not running or suspended"),
    (BindJob("nope", "boot"), "job nope is unknown"),
    (BindJob("r1", "boot"), "job r1 is running, not queued"),
    (BindJob("q1", "nope"), "domain nope is unknown"),
])
def test_each_impossible_action_is_refused_with_its_reason(snap, action, words):
    refused(snap, action, words)


def test_a_job_resumed_beyond_its_domain_is_refused(snap):
    s = after(snap, SuspendJob("r1", by="big"), RunJob("big", "busy"))     # suspended jobs hold no cores
    refused(s, ResumeJob("r1"), "job r1 does not fit domain busy")


def test_an_unknown_action_is_refused(snap):
    @attrs.frozen
    class Migrate(Action):
        verb = "migrate"
    refused(snap, Migrate(), "unknown action")


def test_a_refused_action_changes_nothing(snap):
    state = SnapshotState(snap)
    for a in (RunJob("big", "busy"), ShutdownDomain("busy"), ResumeJob("s1")):
        with pytest.raises(PlanError):
            apply_action(state, a, T)
    assert state.snapshot() == snap


def test_the_check_hook_sees_the_state_before_each_action(snap):
    seen = []
    after(snap, RunJob("q1", "free"), SuspendDomain("free", by="x"),
          check=lambda state, a: seen.append((a.verb, state.jobs["q1"].state)))
    assert seen == [("run", JobState.QUEUED), ("suspend-domain", JobState.RUNNING)]


# ----------------------------------------------------------------------------- with the Scheduler

def _consistent(sched: Scheduler) -> None:
    """No domain over its size, each job in one domain at most, nothing running in a domain
    that is not active: read from a Scheduler's own state."""
    where: dict[str, str] = {}
    for name, inside in sched.domain_jobs.items():
        d = sched.domains[name]
        running = [sched.jobs[j] for j in inside if sched.jobs[j].state is JobState.RUNNING]
        assert sum(j.cores for j in running) <= d.cores and sum(j.memory_mb for j in running) <= d.memory_mb, name
        assert not running or d.state.active, f"{name} is {d.state.value} but runs {[j.id for j in running]}"
        for j in inside:
            assert where.setdefault(j, name) == name, f"job {j} in {where[j]} and {name}"
            assert sched.jobs[j].domain == name


def _scheduler(policy):
    return Scheduler(policy, engine=PyEngine(), store=UsageStore(":memory:"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites())
def test_a_schedulers_plan_applied_and_synced_to_a_fresh_scheduler_is_consistent(site):
    policy, snap = site
    sched = _scheduler(policy)
    for k in range(2):     # the second cycle has running work to preempt
        plan = sched.on_cycle(snap)
        for instant in (False, True):
            fresh = _scheduler(policy)
            fresh.sync(apply(snap, plan, instant=instant))
            _consistent(fresh)
        snap = apply(snap, plan, instant=True)
        more = [attrs.evolve(j, id=f"{k}-{j.id}", interactive=True, submit_time=snap.time, state=JobState.QUEUED,
                             domain=None, start_time=None) for j in snap.jobs[:4]]
        snap = attrs.evolve(snap, time=snap.time + 60.0, jobs=snap.jobs + tuple(more))
