"""Defects a review found, each pinned by the smallest case that showed it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsched.cycle import Scheduler
from vmsched.matching import PyEngine
from vmsched.model import Domain, DomainState, Job, JobState, ModelError, Snapshot
from vmsched.policyfile import PolicyError, initial_domains, load_policy, parse_policy
from vmsched.usage import UsageStore

EX = Path(__file__).resolve().parents[1] / "vmsched" / "examples"


def sched(p):
    return Scheduler(p, engine=PyEngine(), store=UsageStore(":memory:"))


def test_usage_of_a_job_that_left_qstat_is_still_charged():
    p = load_policy(EX / "cern.toml")
    s = sched(p)
    d = Domain("d", p.hosts[0].name, "slc4", "small", DomainState.RUNNING, 1, 1740)
    j = Job("1", "u", "cms", "cms", "oneway", 1, 100, 600, 0.0, state=JobState.RUNNING, domain="d", start_time=0.0)
    s.on_cycle(Snapshot(10.0, p.hosts, (d,), (j,)))
    s.on_cycle(Snapshot(700.0, p.hosts, (d,), ()))          # the server already dropped it
    assert s.on_job_end("1", 600.0, now=700.0)
    assert s.store.usage(700.0, 1e9)[("cms", "cms", "u")] == pytest.approx(600.0)
    with pytest.raises(ValueError, match="give the usage"):
        s.on_job_end(j)
    with pytest.raises(ValueError, match="unknown to the scheduler"):
        s.on_job_end("nope", 1.0)


def test_owner_reclaim_that_cannot_place_evicts_nobody():
    p = load_policy(EX / "wnodes.toml")
    h = next(h for h in p.hosts if h.owner == "tier3")
    # borrowers hold the owner's host in domains too small to free room for the owner's job
    doms = [Domain(f"b{k}", h.name, "sl6-tier1", "large", DomainState.RUNNING, 4, 7168) for k in range(4)]
    jobs = [Job(f"r{k}", "u", "tier1", "tier1", "tier1", 4, 7000, 9999, 0.0, state=JobState.RUNNING, domain=f"b{k}",
                start_time=1.0) for k in range(4)]
    big = Job("own", "o", "tier3", "tier3", "tier3", 32, 1000, 600, 5.0)   # more cores than the host has
    import attrs
    pol = attrs.evolve(p, hosts=(h,))
    plan = sched(pol).on_cycle(Snapshot(100.0, (h,), doms, jobs + [big]))
    assert not [a for a in plan.actions if a.verb in ("requeue", "suspend-domain", "shutdown")]


def test_policy_refuses_a_domain_bigger_than_its_host_and_starts_within_capacity():
    text = ('[site]\nname = "x"\n[[images]]\nname = "i"\nvos = ["v"]\n[[queues]]\nname = "q"\n'
            '[[hosts]]\nname = "h"\ncores = 4\nmemory = "8gb"\nmax_active = 2\n'
            'domains = [ { image = "i", flavor = "xl" } ]\n')
    with pytest.raises(PolicyError, match=r"x.toml:\d+: hosts\[0\].domains\[0\].flavor: flavor 'xl'"):
        parse_policy(text, "x.toml")
    ok = text.replace('flavor = "xl"', 'flavor = "large", count = 2')
    doms = initial_domains(parse_policy(ok, "x.toml"))
    assert [d.state for d in doms] == [DomainState.FREE, DomainState.OCCUPIED]   # 4 + 4 cores > 4


def test_nested_lists_and_odd_times_in_a_snapshot_are_model_errors():
    with pytest.raises(ModelError, match="features: expected a list of names"):
        Snapshot.from_json({"time": 1, "hosts": [{"name": "h", "cores": 1, "memory_mb": 1, "features": [[1]]}]})
    with pytest.raises(ModelError, match="qtime: expected seconds since the epoch from 0 to 2\\^40"):
        Job.from_pbs("1", {"euser": "u", "egroup": "g", "queue": "q", "Resource_List.walltime": "1:00:00",
                           "qtime": "1700000000000"})      # milliseconds


def test_group_from_qstat_is_mapped_to_its_vo_by_the_share_tree():
    p = load_policy(EX / "metacenter.toml")
    s = sched(p)
    s.on_cycle(Snapshot(10.0, p.hosts, initial_domains(p), ()))
    j = Job.from_pbs("1.srv", {"queue": "egee", "egroup": "atlas", "euser": "a", "Resource_List.walltime": "1:00:00",
                               "qtime": "5"})
    s.set_job(j)
    assert s.jobs["1.srv"].vo == "egee"
    assert ("egee", "atlas", "a") in s._entities


def test_on_submit_routes_a_group_listed_under_its_vo_as_the_cycle_does():
    """Issue 9: qstat shows only the egroup; the share tree puts group zh under VO cms. The
    cycle maps the group to its VO before routing, so on_submit must too, or a job accepted
    at submission is refused in the cycle (or the other way round)."""
    p = parse_policy('''
[site]
name = "t"
[fairshare]
[[fairshare.share]]
path = "cms"
share = 50
[[fairshare.share]]
path = "cms/zh"
share = 100
[[fairshare.share]]
path = "local"
share = 50
[[images]]
name = "slc"
vos = ["cms", "local"]
[[queues]]
name = "grid"
kind = "routing"
destinations = ["cms_q", "other"]
[[queues]]
name = "cms_q"
groups = ["cms"]
[[queues]]
name = "other"
[[hosts]]
name = "h1"
cores = 4
memory = "8gb"
domains = [ { image = "slc", flavor = "large" } ]
''', "t.toml")
    s = sched(p)
    j = Job.from_pbs("7.srv", {"queue": "grid", "egroup": "zh", "euser": "u", "Resource_List.walltime": "1:00:00",
                               "qtime": "5"})
    at_submit = s.on_submit(j)
    plan = s.on_cycle(Snapshot(10.0, p.hosts, initial_domains(p), (j,)))
    in_cycle = [a.queue for a in plan.actions if a.verb == "route"]
    assert in_cycle == ["cms_q"]
    assert at_submit == "cms_q"


def test_a_share_path_a_level_too_low_is_refused_and_the_advised_one_gets_the_usage():
    """Issue 9: ``atlas/alice`` beside ``egee/atlas`` loaded silently, and alice's jobs, charged
    to atlas/atlas/alice (an unlisted sibling with the default share), got factors near 1e-19."""
    head = ('[site]\nname = "x"\n[[queues]]\nname = "q"\n[fairshare]\n'
            + "".join(f'[[fairshare.share]]\npath = "{path}"\nshare = {share}\n'
                      for path, share in (("meta", 60), ("egee", 40), ("egee/atlas", 50), ("egee/cms", 50))))
    with pytest.raises(PolicyError) as e:
        parse_policy(head + '[[fairshare.share]]\npath = "atlas"\nshare = 10\n'
                     '[[fairshare.share]]\npath = "atlas/alice"\nshare = 100\n', "x.toml")
    assert len(e.value.problems) == 1
    assert e.value.problems[0].startswith("x.toml:22: fairshare.share[5].path: 'atlas' is both a top-level entry "
                                          "and a group of VO 'egee' (share[2]), so 'atlas/alice' is a level too low")
    assert "write 'egee/atlas/alice' and drop the top-level 'atlas'" in e.value.problems[0]
    s = sched(parse_policy(head + '[[fairshare.share]]\npath = "egee/atlas/alice"\nshare = 100\n', "x.toml"))
    alice = Job.from_pbs("1.srv", {"queue": "q", "egroup": "atlas", "euser": "alice",
                                   "Resource_List.walltime": "10:00:00", "qtime": "0"})
    dan = Job.from_pbs("2.srv", {"queue": "q", "egroup": "meta", "euser": "dan",
                                 "Resource_List.walltime": "10:00:00", "qtime": "0"})
    for j in (alice, dan):
        s.set_job(j)
        s.on_job_end(s.jobs[j.id], 36000.0, now=36000.0)
    # alice is egee's only user: egee (S_norm 0.4) used half, so U_eff = 0.5 down to her
    # (she is her group's only listed child, the group half of egee): 2^(-0.5/0.2) = 2^-2.5
    assert s.factors(36000.0)[("egee", "atlas", "alice")] == pytest.approx(2 ** -2.5)
