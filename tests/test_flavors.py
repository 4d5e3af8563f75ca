"""Issue 9: flavors as WNoDeS used them: whole-node hard and soft, disk, and jobs naming one."""

from __future__ import annotations

from pathlib import Path

import attrs

from vmsched.cycle import Scheduler
from vmsched.matching import PyEngine
from vmsched.model import DEFAULT_FLAVORS, Domain, DomainState, Host, Job, JobState, Snapshot
from vmsched.plan import Verdict
from vmsched.policyfile import load_policy, parse_policy
from vmsched.usage import UsageStore

EX = Path(__file__).resolve().parents[1] / "vmsched" / "examples"


def sched(policy):
    return Scheduler(policy, engine=PyEngine(), store=UsageStore(":memory:"))


def job(jid, cores, mem, t=5.0, **kw):
    return Job(jid, "u", "tier1", "tier1", "tier1", cores, mem, 3600, t, **kw)


def busy_hosts(p, n=2, cores=4, mem=7168):
    """``n`` WNoDeS tier-1 hosts (16 cores, 32 GB), each running one job in a domain of ``cores``."""
    hosts = p.hosts[:n]
    doms = [Domain(f"{h.name}-x", h.name, "sl6-tier1", "large", DomainState.RUNNING, cores, mem) for h in hosts]
    jobs = [job(f"r{i}", cores, mem - 168, t=0.0, state=JobState.RUNNING, domain=d.name, start_time=1.0)
            for i, d in enumerate(doms)]
    return hosts, doms, jobs


def boots(plan):
    return [a for a in plan.actions if a.verb == "boot"]


# ----------------------------------------------------------------------------- whole-node hard and soft

def test_a_host_with_busy_cores_gets_a_soft_domain_of_what_it_has_left():
    """12 cores and 20,000 MB on 16-core hosts with 4 cores busy: hard cannot have the host,
    soft takes the 12 cores left (12 x 1,740 = 20,880 MB). It got no boot at all, and the
    reason 'full (per-domain job cap)'."""
    p = load_policy(EX / "wnodes.toml")
    hosts, doms, jobs = busy_hosts(p)
    plan = sched(p).on_cycle(Snapshot(10.0, hosts, doms, jobs + [job("big", 12, 20000)]))
    [b] = boots(plan)
    assert p.flavors[b.flavor].whole_node == "soft"
    assert (b.cores, b.memory_mb) == (12, 20880)
    assert plan.reason("big").text.startswith("bound to domain")


def test_on_an_empty_host_hard_wins_and_takes_the_whole_host():
    p = load_policy(EX / "wnodes.toml")
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts[:1], (), [job("big", 12, 20000)]))
    [b] = boots(plan)
    assert p.flavors[b.flavor].whole_node == "hard"
    assert (b.cores, b.memory_mb) == (16, 16 * 1740)


def test_soft_below_its_minimum_is_not_booted():
    """whole-soft needs 4 cores: a host with 3 left has no room for it, so the job waits."""
    p = load_policy(EX / "wnodes.toml")
    hosts, doms, jobs = busy_hosts(p, cores=13, mem=10000)
    plan = sched(p).on_cycle(Snapshot(10.0, hosts, doms, jobs + [job("mid", 3, 20000)]))
    assert not boots(plan)


def test_size_in_soft_is_what_is_left_hard_and_fixed_do_not_shrink():
    h = Host("h", 16, 32768)
    soft, hard, large = DEFAULT_FLAVORS["whole-soft"], DEFAULT_FLAVORS["whole-hard"], DEFAULT_FLAVORS["large"]
    assert soft.size_in(h, 4, 7168) == (12, 12 * 1740)
    assert soft.size_in(h, 14, 1000) == (4, 4 * 1740)          # at least min_cores: it will not fit
    assert soft.size_in(h, 4, 30000) == (12, 32768 - 30000)    # memory left is the bound
    assert soft.size_on(h) == soft.size_in(h, 0, 0) == hard.size_in(h, 4, 7168) == (16, 16 * 1740)
    assert large.size_in(h, 15, 30000) == (4, 7168)


# ----------------------------------------------------------------------------- disk

DISK_POLICY = """
[site]
name = "t"
[[images]]
name = "sl6"
vos = ["v"]
[[queues]]
name = "q"
[[hosts]]
name = "wn1"
cores = 16
memory = "32gb"
disk = "500gb"
[[hosts]]
name = "wn2"
cores = 16
memory = "32gb"
disk = "1tb"
"""


def test_a_flavor_is_booted_only_where_its_disk_fits_beside_the_domains_there():
    """wn1 has 500 GB and holds a large domain (200 GB): an xl (400 GB) goes to wn2, though
    wn1 is the tighter fit by cores."""
    p = parse_policy(DISK_POLICY, "t.toml")
    held = Domain("wn1-sl6-9", "wn1", "sl6", "large", DomainState.RUNNING, 4, 7168)
    running = Job("r", "u", "v", "v", "q", 4, 7000, 3600, 0.0, state=JobState.RUNNING, domain=held.name,
                  start_time=1.0)
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts, (held,), (running, Job("x", "u", "v", "v", "q", 8, 14000,
                                                                            3600, 5.0))))
    [b] = boots(plan)
    assert (b.flavor, b.host) == ("xl", "wn2")


def test_whole_node_disk_scales_with_its_cores():
    """whole-hard on 16 cores takes 800 GB: only wn2 (1 TB) can have it; soft on wn1 with 4
    cores busy would take 12 x 50 = 600 GB, still more than wn1's 500 GB minus 200."""
    p = parse_policy(DISK_POLICY, "t.toml")
    held = Domain("wn1-sl6-9", "wn1", "sl6", "large", DomainState.RUNNING, 4, 7168)
    running = Job("r", "u", "v", "v", "q", 4, 7000, 3600, 0.0, state=JobState.RUNNING, domain=held.name,
                  start_time=1.0)
    big = Job("big", "u", "v", "v", "q", 12, 20000, 3600, 5.0)
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts, (held,), (running, big)))
    [b] = boots(plan)
    assert b.host == "wn2" and (b.cores, b.memory_mb) == (16, 16 * 1740)
    alone = attrs.evolve(p, hosts=p.hosts[:1])
    plan = sched(alone).on_cycle(Snapshot(10.0, alone.hosts, (held,), (running, big)))
    assert not boots(plan)


def test_unknown_disk_is_unchecked():
    p = parse_policy(DISK_POLICY.replace('disk = "500gb"\n', "").replace('disk = "1tb"\n', ""), "t.toml")
    assert all(h.disk_gb is None for h in p.hosts)
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts, (), (Job("big", "u", "v", "v", "q", 16, 20000, 3600, 5.0),)))
    assert len(boots(plan)) == 1


# ----------------------------------------------------------------------------- a job naming a flavor

def free(p, name, flavor, cores, mem, host=0):
    h = p.hosts[host]
    return Domain(f"{h.name}-{name}", h.name, "sl6-tier1", flavor, DomainState.FREE, cores, mem)


def test_a_job_naming_a_flavor_runs_in_a_domain_of_it_not_in_a_tighter_one():
    p = load_policy(EX / "wnodes.toml")
    doms = (free(p, "l", "large", 4, 7168), free(p, "x", "xl", 8, 14336))
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts[:1], doms, (job("wants-xl", 2, 2000, flavor="xl"),
                                                                 job("any", 2, 2000, t=6.0))))
    runs = {a.job: a.domain for a in plan.actions if a.verb == "run"}
    assert runs == {"wants-xl": doms[1].name, "any": doms[0].name}


def test_a_free_domain_of_another_flavor_is_not_used_a_domain_of_its_own_is_booted():
    p = load_policy(EX / "wnodes.toml")
    doms = (free(p, "x", "xl", 8, 14336),)
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts[:2], doms, (job("soft", 2, 2000, flavor="wn-soft"),)))
    assert not [a for a in plan.actions if a.verb == "run"]
    [b] = boots(plan)
    assert b.flavor == "wn-soft" and b.cores == 8      # what the host has left beside the xl domain
    assert plan.reason("soft").text.startswith("bound to domain")


def test_a_flavor_the_policy_lacks_is_never_and_named():
    p = load_policy(EX / "wnodes.toml")
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts[:1], (), (job("odd", 1, 1000, flavor="jumbo"),)))
    why = plan.reason("odd")
    assert why.verdict is Verdict.NEVER and "flavor jumbo, which the policy does not define" in why.text
    assert not plan.actions


def test_a_flavor_too_small_for_the_job_is_never():
    p = load_policy(EX / "wnodes.toml")
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts[:1], (), (job("big", 8, 8000, flavor="small"),)))
    assert str(plan.reason("big")) == ("never: asks for 8 cores and 8000 MB in flavor small, which gives at most "
                                       "1 cores and 1740 MB on these hosts")


def test_whole_node_as_openpbs_writes_it_boots_an_exclusive_whole_node():
    p = load_policy(EX / "wnodes.toml")
    j = Job.from_pbs("7.srv", {"Job_Owner": "u@ui", "egroup": "tier1", "queue": "tier1",
                               "Resource_List.walltime": "1:00:00", "Resource_List.ncpus": "2",
                               "Resource_List.mem": "2gb", "Resource_List.place": "excl", "qtime": "5"})
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts[:1], (free(p, "x", "xl", 8, 14336),), (j,)))
    assert not [a for a in plan.actions if a.verb == "run"]
    # the xl domain is idle: it is switched out for the whole node
    assert [a.verb for a in plan.actions] == ["suspend-domain", "boot", "bind"]
    [b] = boots(plan)
    assert (b.flavor, b.cores) == ("whole-hard", 16)


def test_flavor_jobs_decide_alike_with_either_engine():
    from vmsched import _core
    if not _core.AVAILABLE:
        import pytest
        pytest.skip("C core not built")
    p = load_policy(EX / "wnodes.toml")
    doms = (free(p, "l", "large", 4, 7168), free(p, "x", "xl", 8, 14336), free(p, "m", "medium", 2, 3584, host=1))
    jobs = (job("a", 2, 2000, flavor="xl"), job("b", 2, 2000, t=6.0), job("c", 1, 1000, t=7.0, flavor="medium"),
            job("d", 12, 20000, t=8.0, flavor="wn-soft"), job("e", 1, 100, t=9.0, flavor="nope"))
    snap = Snapshot(10.0, p.hosts[:3], doms, jobs)
    plans = [Scheduler(p, engine=e, store=UsageStore(":memory:")).on_cycle(snap) for e in (PyEngine(), _core.CEngine())]
    assert plans[0].actions == plans[1].actions
    assert list(plans[0].pending) == list(plans[1].pending)


def test_a_named_flavor_whose_disk_no_host_has_is_never():
    """xl takes 400 GB: hosts of 300 GB can never boot it for a job that asked for it."""
    p = parse_policy(DISK_POLICY.replace('"500gb"', '"300gb"').replace('"1tb"', '"300gb"'), "t.toml")
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts, (), (Job("x", "u", "v", "v", "q", 1, 1000, 3600, 5.0,
                                                               flavor="xl"),)))
    assert str(plan.reason("x")) == "never: asks for flavor xl, whose disk (400 GB or more) no host it fits has"


def test_the_start_cap_holds_for_jobs_naming_a_flavor():
    p = load_policy(EX / "wnodes.toml")
    p = attrs.evolve(p, max_starts_per_cycle=1)
    doms = (free(p, "l", "large", 4, 7168), free(p, "x", "xl", 8, 14336))
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts[:1], doms, (job("any", 2, 2000),
                                                                 job("wants-xl", 2, 2000, t=6.0, flavor="xl"))))
    assert [a.job for a in plan.actions if a.verb == "run"] == ["any"]
    assert not boots(plan)
    assert "max_starts_per_cycle = 1" in plan.reason("wants-xl").text


def test_a_queue_of_like_flavor_jobs_costs_one_look_per_kind_of_ask(monkeypatch):
    """A replay with half its jobs naming a flavor took 500 s instead of 8: every waiting
    job looked at every host again. Jobs asking the same now share the first one's look."""
    from vmsched.policies import flavor_jobs, lifecycle
    calls = []
    real = lifecycle.plan_placement
    monkeypatch.setattr(flavor_jobs.lifecycle, "plan_placement", lambda *a, **k: calls.append(1) or real(*a, **k))
    p = load_policy(EX / "wnodes.toml")
    hosts, doms, jobs = busy_hosts(p, cores=16, mem=27840)
    queue = [job(f"w{i}", 12, 20000, t=5.0 + i, flavor="wn-soft") for i in range(40)]
    plan = sched(p).on_cycle(Snapshot(10.0, hosts, doms, jobs + queue))
    assert len(calls) == 1
    texts = {plan.reason(j.id).text for j in queue}
    assert texts == {"no domain of flavor wn-soft has room for it, and no host has room to boot one"}


def test_a_wait_for_room_says_no_host_could_open_a_domain_not_only_that_domains_are_full():
    """The reason of issue 9 named only the busy domains ('full (per-domain job cap)'), as if
    their jobs' end were the only way on; it now says that lifecycle found no host to resume
    or boot a domain on (it had room then: that was the soft bug)."""
    p = load_policy(EX / "wnodes.toml")
    hosts, doms, jobs = busy_hosts(p, cores=13, mem=10000)
    plan = sched(p).on_cycle(Snapshot(10.0, hosts, doms, jobs + [job("mid", 3, 20000)]))
    assert str(plan.reason("mid")) == ("not now: 0/2 domains: 2 full (per-domain job cap); "
                                       "no host has room to resume or boot a domain for it")
