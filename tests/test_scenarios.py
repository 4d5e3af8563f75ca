"""The seeds' sites as scenarios: what an admin expects the scheduler to do, step by step."""

from __future__ import annotations

from pathlib import Path

import attrs

from vmsched.cycle import Scheduler
from vmsched.matching import PyEngine
from vmsched.model import Domain, DomainState, Host, Job, JobState, Snapshot
from vmsched.plan import Verdict
from vmsched.policyfile import initial_domains, load_policy, parse_policy
from vmsched.usage import UsageStore

from .world import apply_plan

EX = Path(__file__).resolve().parents[1] / "vmsched" / "examples"


def sched(policy):
    return Scheduler(policy, engine=PyEngine(), store=UsageStore(":memory:"))


def job(jid, vo, queue, cores=1, mem=1000, wall=3600, t=0.0, **kw):
    return Job(jid, kw.pop("user", "u"), kw.pop("group", vo), vo, queue, cores, mem, wall, t, **kw)


def verbs(plan):
    return [(a.verb, getattr(a, "job", None) or getattr(a, "domain", None)) for a in plan.actions]


# ----------------------------------------------------------------------------- MetaCenter

def test_metacenter_interactive_job_suspends_standard_domain_and_it_resumes_later():
    p = load_policy(EX / "metacenter.toml")
    doms = initial_domains(p)
    # every standard local domain is full of normal work
    jobs = []
    for d in doms:
        if d.state is DomainState.FREE:
            jobs += [job(f"{d.name}-{k}", "meta", "normal", 2, 3000, t=0.0, state=JobState.RUNNING, domain=d.name,
                         start_time=10.0) for k in range(2)]
    snap = Snapshot(100.0, p.hosts, doms, jobs + [job("i1", "meta", "normal", 2, 2000, t=90.0, interactive=True)])
    s = sched(p)
    plan = s.on_cycle(snap)
    acts = verbs(plan)
    assert acts[0][0] == "suspend-domain" and plan.actions[0].by == "i1"
    assert acts[1][0] == "resume-domain" and acts[2] == ("run", "i1")
    victim = plan.actions[0].domain
    host = victim.rsplit("-debian", 1)[0]
    assert plan.actions[1].domain.startswith(host)          # the other domain of the same host
    snap = apply_plan(p, snap, plan)
    # nothing else may run in the preemptor's domain while the victims are frozen
    more = job("n1", "meta", "normal", 1, 500, t=150.0)
    snap = attrs.evolve(snap, time=200.0, jobs=snap.jobs + (more,))
    plan2 = s.on_cycle(snap)
    assert ("run", "n1") not in verbs(plan2)
    snap = apply_plan(p, snap, plan2)
    # the interactive job ends: the suspended domain comes back
    i1 = next(j for j in snap.jobs if j.id == "i1")
    s.on_job_end(i1, 300.0, now=400.0)
    snap = attrs.evolve(snap, time=400.0, jobs=tuple(j for j in snap.jobs if j.id != "i1"))
    plan3 = s.on_cycle(snap)
    assert ("resume-domain", victim) in verbs(plan3)
    snap = apply_plan(p, snap, plan3)
    assert all(j.state is JobState.RUNNING for j in snap.jobs if j.domain == victim)


def test_metacenter_normal_job_never_preempts():
    p = load_policy(EX / "metacenter.toml")
    doms = initial_domains(p)
    jobs = [job(f"{d.name}-0", "meta", "normal", 4, 7000, state=JobState.RUNNING, domain=d.name, start_time=1.0)
            for d in doms if d.state is DomainState.FREE]
    snap = Snapshot(100.0, p.hosts, doms, jobs + [job("n", "meta", "normal", 2, 1000, t=50.0)])
    plan = sched(p).on_cycle(snap)
    assert not [a for a in plan.actions if a.verb in ("suspend-domain", "requeue", "suspend-job")]
    assert plan.reason("n").verdict is Verdict.NOT_NOW
    assert plan.reason("n").text.startswith("0/48 domains: ")


# ----------------------------------------------------------------------------- CERN

def test_cern_routing_by_vo_and_walltime():
    p = load_policy(EX / "cern.toml")
    s = sched(p)
    assert s.on_submit(job("a", "cms", "grid", wall=5 * 3600)) == "cms_short"
    assert s.on_submit(job("b", "cms", "grid", cores=4, wall=5 * 3600)) == "oneway"
    assert s.on_submit(job("c", "atlas", "grid", wall=20 * 3600)) == "oneway_long"
    assert s.on_submit(job("d", "atlas", "grid", wall=5 * 3600)) == "oneway"
    assert s.on_submit(job("e", "atlas", "grid", wall=100 * 3600)) is None


def test_cern_dynamic_instantiation_boots_waits_and_caps_boots():
    p = load_policy(EX / "cern.toml")
    s = sched(p)
    jobs = [job(f"j{i}", "atlas", "grid", 1, 1000, wall=3600, t=float(i)) for i in range(10)]
    jobs.append(job("never", "atlas", "grid", 1, 1000, wall=100 * 3600))
    snap = Snapshot(100.0, p.hosts, (), jobs)
    plan = s.on_cycle(snap)
    boots = [a for a in plan.actions if a.verb == "boot"]
    assert len(boots) == p.lifecycle.max_concurrent_boots
    assert all(b.host in {h.name for h in p.hosts if "slc4" in h.cached_images} for b in boots)
    assert plan.reason("never").verdict is Verdict.NEVER and "no destination of grid" in plan.reason("never").text
    waiting = [plan.reason(f"j{i}").text for i in range(10) if plan.reason(f"j{i}")]
    assert any("booting domain" in t for t in waiting)
    assert any("boot limit reached" in t for t in waiting)
    # the booting domains are counted on: next cycle waits for them instead of booting again
    snap2 = attrs.evolve(apply_plan(p, snap, attrs.evolve(plan, actions=tuple(a for a in plan.actions
                                                                                if a.verb == "route"))),
                         domains=tuple(Domain(b.domain, b.host, b.image, b.flavor, DomainState.BOOTING, b.cores,
                                              b.memory_mb, since=100.0) for b in boots))
    plan2 = s.on_cycle(attrs.evolve(snap2, time=110.0))
    assert not [a for a in plan2.actions if a.verb == "boot"]
    assert any("waiting for domain" in p_.text and "to boot" in p_.text for _, p_ in plan2.pending)


def test_two_way_domain_takes_two_short_cms_jobs_one_way_takes_one():
    p = load_policy(EX / "cern.toml")
    host = p.hosts[0]
    d = Domain("d2", host.name, "slc4", "medium", DomainState.FREE, 2, 3584)
    snap = Snapshot(10.0, p.hosts, (d,), [job(f"c{i}", "cms", "cms_short", 1, 1000, t=float(i)) for i in range(3)])
    plan = sched(attrs.evolve(p, lifecycle=attrs.evolve(p.lifecycle, dynamic_boot=False))).on_cycle(snap)
    assert [a.job for a in plan.actions if a.verb == "run"] == ["c0", "c1"]
    assert "full (per-domain job cap)" in plan.reason("c2").text


def test_idle_domain_is_shut_down_after_timeout_but_warm_pool_kept():
    p = load_policy(EX / "cern.toml")
    h = p.hosts[0]
    doms = [Domain(f"{h.name}-slc4-{k}", h.name, "slc4", "small", DomainState.FREE, 1, 1740, since=0.0)
            for k in (1, 2)]
    doms.append(Domain(f"{h.name}-slc5-1", h.name, "slc5", "small", DomainState.FREE, 1, 1740, since=900.0))
    plan = sched(p).on_cycle(Snapshot(2000.0, p.hosts, doms, ()))
    down = sorted(a.domain for a in plan.actions if a.verb == "shutdown")
    assert down == [f"{h.name}-slc4-1"]      # slc4 keeps 1 warm; slc5 idle only 1100 s < 20 min


# ----------------------------------------------------------------------------- WNoDeS

def test_wnodes_owner_reclaims_borrowed_host_and_job_is_bound_to_prepared_vm():
    p = load_policy(EX / "wnodes.toml")
    t3 = [h for h in p.hosts if h.owner == "tier3"]
    t1 = [h for h in p.hosts if h.owner is None]
    doms, jobs = [], []
    for h in t3 + t1:   # tier1 borrowed everything: 4 large domains per host, each with a job
        for k in range(4):
            d = Domain(f"{h.name}-sl6-tier1-{k}", h.name, "sl6-tier1", "large", DomainState.RUNNING, 4, 7168)
            doms.append(d)
            jobs.append(job(f"b-{d.name}", "tier1", "tier1", 4, 7000, wall=36000, state=JobState.RUNNING,
                            domain=d.name, start_time=1000.0 + k))
    owner_job = job("own", "tier3", "tier3", 4, 6000, t=4000.0)
    snap = Snapshot(5000.0, p.hosts, doms, jobs + [owner_job])
    plan = sched(p).on_cycle(snap)
    acts = verbs(plan)
    requeued = [a for a in plan.actions if a.verb == "requeue"]
    assert requeued and all(a.by == "own" for a in requeued)
    host = plan.actions[[a.verb for a in plan.actions].index("boot")].host
    assert host in {h.name for h in t3}
    # least work lost: the most recently started borrower's domain goes
    assert [a.job for a in requeued] == [f"b-{host}-sl6-tier1-3"]
    assert ("bind", "own") in acts
    after = apply_plan(p, snap, plan)
    assert next(j for j in after.jobs if j.id == "own").domain is not None
    assert plan.reason("own").text.startswith("bound to domain")


def test_borrowers_do_not_reclaim_from_each_other():
    p = load_policy(EX / "wnodes.toml")
    h = p.hosts[0]
    doms = [Domain(f"{h.name}-d{k}", h.name, "sl6-tier1", "xl", DomainState.RUNNING, 8, 14336) for k in range(2)]
    jobs = [job(f"r{k}", "tier1", "tier1", 8, 14000, state=JobState.RUNNING, domain=f"{h.name}-d{k}",
                start_time=0.0) for k in range(2)]
    pol = attrs.evolve(p, hosts=(h,))
    plan = sched(pol).on_cycle(Snapshot(100.0, (h,), doms, jobs + [job("x", "cms", "tier1", 8, 14000, t=50.0)]))
    assert not [a for a in plan.actions if a.verb in ("requeue", "suspend-domain")]


# ----------------------------------------------------------------------------- reasons

def test_reason_reads_like_an_admin_expects():
    text = '''[site]
name = "r"
[[images]]
name = "good"
vos = ["atlas"]
[[images]]
name = "other"
vos = ["cms"]
[[queues]]
name = "q"
per_domain_jobs = 2
[lifecycle]
dynamic_boot = false
'''
    p = parse_policy(text, "r.toml")
    hosts = [Host(f"h{i}", 4, 4000) for i in range(40)]
    doms = [Domain(f"d{i}", f"h{i}", "other" if i < 31 else "good", "medium", DomainState.RUNNING, 2, 2000)
            for i in range(40)]
    busy = [job(f"r{i}", "atlas", "q", 1, 1000, state=JobState.RUNNING, domain=f"d{i}", start_time=0.0)
            for i in range(31, 40)]
    plan = sched(p).on_cycle(Snapshot(0.0, hosts, doms, busy + [job("big", "atlas", "q", 1, 1500)]))
    assert plan.reason("big").text == "0/40 domains: 31 wrong image, 9 insufficient memory"
    assert plan.reason("big").verdict is Verdict.NOT_NOW


def test_unknown_vo_and_oversized_job_are_never():
    p = load_policy(EX / "cern.toml")
    snap = Snapshot(0.0, p.hosts, (), [job("a", "alice", "oneway"), job("b", "cms", "oneway", cores=64)])
    plan = sched(p).on_cycle(snap)
    assert str(plan.reason("a")) == "never: no image is open to VO alice"
    assert str(plan.reason("b")) == "never: asks for 64 cores, the largest domain it could use has 8"


# ----------------------------------------------------------------------------- fair share

def test_fair_share_converges_to_50_30_20_through_the_scheduler():
    """Saturating demand from three VOs: achieved core-seconds within 2 points of the shares."""
    text = '''[site]
name = "fs"
[priority]
fairshare = 10000
class = 0
age = 0
[fairshare]
half_life = "30d"
image_shares = false
[[fairshare.share]]
path = "a"
share = 50
[[fairshare.share]]
path = "b"
share = 30
[[fairshare.share]]
path = "c"
share = 20
[[images]]
name = "img"
vos = ["a", "b", "c"]
[[queues]]
name = "q"
[lifecycle]
dynamic_boot = false
'''
    p = parse_policy(text, "fs.toml")
    hosts = [Host(f"h{i}", 1, 2000) for i in range(20)]
    doms = [Domain(f"d{i}", f"h{i}", "img", "small", DomainState.FREE, 1, 1000) for i in range(20)]
    s = sched(p)
    snap = Snapshot(0.0, hosts, doms, ())
    used = {"a": 0.0, "b": 0.0, "c": 0.0}
    n = 0
    for step in range(300):
        t = step * 100.0
        # keep 10 jobs of each VO queued; each runs 300 s
        queued = {vo: sum(1 for j in snap.jobs if j.vo == vo and j.state is JobState.QUEUED) for vo in used}
        new = []
        for vo, q in queued.items():
            for _ in range(10 - q):
                new.append(job(f"{vo}{n}", vo, "q", 1, 500, wall=300, t=t, user=f"{vo}-user"))
                n += 1
        ended = [j for j in snap.jobs if j.state is JobState.RUNNING and t - j.start_time >= 300]
        for j in ended:
            s.on_job_end(j, 300.0, now=t)
            used[j.vo] += 300.0
        snap = attrs.evolve(snap, time=t, jobs=tuple(j for j in snap.jobs if j not in ended) + tuple(new))
        snap = apply_plan(p, snap, s.on_cycle(snap))
    total = sum(used.values())
    shares = {vo: used[vo] / total for vo in used}
    assert abs(shares["a"] - 0.5) <= 0.02 and abs(shares["b"] - 0.3) <= 0.02 and abs(shares["c"] - 0.2) <= 0.02, shares


# ----------------------------------------------------------------------------- share preemption

SHARE_SITE = '''[site]
name = "share"
[priority]
fairshare = 10000
class = 1000
age = 0
[fairshare]
half_life = "7d"
[[fairshare.share]]
path = "a"
share = 50
[[fairshare.share]]
path = "b"
share = 50
[preemption]
classes = ["normal", "interactive"]
mode = "suspend-domain"
share_after = "10m"
[[preemption.rule]]
interactive = true
class = "interactive"
[lifecycle]
dynamic_boot = false
idle_shutdown = "365d"
[[images]]
name = "img-b"
vos = ["b"]
[[images]]
name = "img-a"
vos = ["a"]
[[queues]]
name = "q"
per_domain_jobs = 32
[[hosts]]
name = "h[1-4]"
cores = 8
memory = "16gb"
max_active = 1
max_domains = 2
domains = [ { image = "img-b", flavor = "whole-hard" }, { image = "img-a", flavor = "whole-hard" } ]
[[hosts]]
name = "big"
cores = 32
memory = "64gb"
max_active = 1
max_domains = 2
domains = [ { image = "img-b", flavor = "whole-hard" }, { image = "img-a", flavor = "whole-hard" } ]
'''


def _share_start(policy, b_jobs_per_host):
    """VO b holds every host with one-core normal jobs; VO a has nothing yet."""
    doms = initial_domains(policy)
    jobs = []
    for d in doms:
        if d.state is DomainState.FREE:
            n = b_jobs_per_host.get(d.host, 8)
            jobs += [job(f"{d.name}-{k}", "b", "q", 1, 1000, wall=86400, state=JobState.RUNNING, domain=d.name,
                         start_time=0.0) for k in range(n)]
    return doms, jobs


def test_share_preemption_moves_a_busy_host_to_a_starved_vo_only_after_share_after():
    p = parse_policy(SHARE_SITE, "share.toml")
    doms, jobs = _share_start(p, {"h1": 6, "big": 20})
    a_jobs = [job(f"a{k}", "a", "q", 1, 1000, wall=3600, t=0.0) for k in range(8)]
    s = sched(p)
    snap = Snapshot(60.0, p.hosts, doms, tuple(jobs + a_jobs))
    plan = s.on_cycle(snap)
    assert not [a for a in plan.actions if a.verb == "suspend-domain"]      # a has waited 1 min, not 10
    assert plan.reason("a0").verdict is Verdict.NOT_NOW
    snap = apply_plan(p, attrs.evolve(snap, time=700.0), s.on_cycle(attrs.evolve(snap, time=700.0)))
    plan = s.last_plan
    frozen = [a for a in plan.actions if a.verb == "suspend-domain"]
    # one host is enough for a's eight one-core jobs: the least busy 8-core host, never the big one
    assert [(a.domain, a.share_for, a.by) for a in frozen] == [("h1-img-b-1", "a", None)]
    assert ("resume-domain", "h1-img-a-1") in verbs(plan)
    assert sorted(a.job for a in plan.actions if a.verb == "run") == sorted(j.id for j in a_jobs)
    assert all(j.state is JobState.SUSPENDED for j in snap.jobs if j.domain == "h1-img-b-1")
    # a holds 8 of its 24-core target now, but has nothing left waiting: nothing more moves
    plan = s.on_cycle(attrs.evolve(snap, time=2000.0))
    assert not [a for a in plan.actions if a.verb == "suspend-domain"]


def test_a_share_frozen_vo_takes_its_domain_back_for_an_interactive_job():
    p = parse_policy(SHARE_SITE, "share.toml")
    doms, jobs = _share_start(p, {"h1": 6, "big": 32})
    a_jobs = [job(f"a{k}", "a", "q", 1, 1000, wall=3600, t=0.0) for k in range(8)]
    s = sched(p)
    snap = Snapshot(700.0, p.hosts, doms, tuple(jobs + a_jobs))
    snap = apply_plan(p, snap, s.on_cycle(snap))
    assert any(d.name == "h1-img-b-1" and d.state is DomainState.SUSPENDED for d in snap.domains)
    # every active b domain is full; b's only room is beside its own frozen work on h1
    inter = job("ib", "b", "q", 1, 1000, wall=600, t=710.0, interactive=True)
    snap = attrs.evolve(snap, time=720.0, jobs=snap.jobs + (inter,))
    plan = s.on_cycle(snap)
    assert verbs(plan)[:3] == [("suspend-domain", "h1-img-a-1"), ("resume-domain", "h1-img-b-1"), ("run", "ib")]
    assert plan.actions[0].by == "ib" and plan.actions[0].share_for is None
    snap = apply_plan(p, snap, plan)
    # b's frozen jobs run again beside the interactive job; a's are frozen by class now, so
    # the host serves nothing below the interactive class while they wait
    assert all(j.state is JobState.RUNNING for j in snap.jobs if j.domain == "h1-img-b-1")
    more = job("b-late", "b", "q", 1, 1000, wall=600, t=730.0)
    plan = s.on_cycle(attrs.evolve(snap, time=740.0, jobs=snap.jobs + (more,)))
    assert ("run", "b-late") not in verbs(plan)


def test_share_preemption_never_freezes_work_above_the_default_class():
    p = parse_policy(SHARE_SITE, "share.toml")
    doms, jobs = _share_start(p, {})
    # one interactive job in every 8-core b domain
    jobs = [attrs.evolve(j, interactive=True) if j.id.endswith("-0") else j for j in jobs]
    a_jobs = [job(f"a{k}", "a", "q", 1, 1000, wall=3600, t=0.0) for k in range(8)]
    s = sched(p)
    plan = s.on_cycle(Snapshot(700.0, p.hosts, doms, tuple(jobs + a_jobs)))
    assert not [a for a in plan.actions if a.verb == "suspend-domain"]


def test_work_frozen_for_share_comes_back_when_its_vo_is_under_share_again():
    """b's work was frozen on h1 for a; now a holds more than its target and b, with only
    frozen work left, less: once that work has been frozen share_after, h1 goes back to b."""
    p = parse_policy(SHARE_SITE.split("[[hosts]]\nname = \"big\"")[0], "share.toml")
    doms = {d.name: d for d in initial_domains(p)}
    state = {"h1-img-b-1": DomainState.SUSPENDED, "h1-img-a-1": DomainState.RUNNING,
             "h2-img-b-1": DomainState.OCCUPIED, "h2-img-a-1": DomainState.RUNNING,
             "h3-img-b-1": DomainState.OCCUPIED, "h3-img-a-1": DomainState.RUNNING,
             "h4-img-b-1": DomainState.RUNNING, "h4-img-a-1": DomainState.OCCUPIED}
    doms = tuple(attrs.evolve(d, state=state[n], since=0.0) for n, d in sorted(doms.items()))
    jobs = [job(f"b1-{k}", "b", "q", state=JobState.SUSPENDED, domain="h1-img-b-1", start_time=0.0) for k in range(6)]
    jobs += [job(f"b4-{k}", "b", "q", state=JobState.RUNNING, domain="h4-img-b-1", start_time=0.0) for k in range(8)]
    for h in ("h1", "h2", "h3"):
        jobs += [job(f"a-{h}-{k}", "a", "q", state=JobState.RUNNING, domain=f"{h}-img-a-1", start_time=0.0)
                 for k in range(8)]
    s = sched(p)
    plan = s.on_cycle(Snapshot(500.0, p.hosts, doms, tuple(jobs)))    # frozen 500 s: not yet
    assert not [a for a in plan.actions if a.verb in ("suspend-domain", "resume-domain")]
    plan = s.on_cycle(Snapshot(700.0, p.hosts, doms, tuple(jobs)))
    assert [(a.domain, a.share_for) for a in plan.actions if a.verb == "suspend-domain"] == [("h1-img-a-1", "b")]
    assert ("resume-domain", "h1-img-b-1") in verbs(plan)
    snap = apply_plan(p, Snapshot(700.0, p.hosts, doms, tuple(jobs)), plan)
    assert all(j.state is JobState.RUNNING for j in snap.jobs if j.vo == "b")


def test_two_share_moves_on_one_host_never_overcommit_it():
    """A host with room for two active domains: each move is checked against the room the
    moves before it left, not the room the host had when the cycle began."""
    site = SHARE_SITE.split("[[hosts]]")[0].replace('name = "img-a"\nvos = ["a"]',
                                                    'name = "img-a"\nvos = ["a"]\n[[images]]\nname = "img-a2"\nvos = ["a"]')
    p = parse_policy(site, "share.toml")
    hosts = (Host("h", 16, 65536, max_active=2), Host("g", 16, 65536, max_active=2))
    S = DomainState
    doms = (Domain("hb1", "h", "img-b", "f", S.RUNNING, 4, 4000), Domain("hb2", "h", "img-b", "f", S.RUNNING, 8, 8000),
            Domain("ha1", "h", "img-a", "f", S.OCCUPIED, 8, 8000), Domain("ha2", "h", "img-a2", "f", S.OCCUPIED, 12, 12000),
            Domain("gb", "g", "img-b", "f", S.RUNNING, 16, 16000))
    jobs = [job(f"{d}-{k}", "b", "q", 1, 500, wall=86400, state=JobState.RUNNING, domain=d, start_time=0.0)
            for d, n in (("hb1", 4), ("hb2", 8), ("gb", 16)) for k in range(n)]
    jobs += [job(f"a{k}", "a", "q", 1, 500, wall=3600, t=0.0) for k in range(20)]
    snap = Snapshot(700.0, hosts, doms, tuple(jobs))
    plan = sched(p).on_cycle(snap)
    assert [a.domain for a in plan.actions if a.verb == "suspend-domain"] == ["hb1"]
    apply_plan(p, snap, plan)         # checks every host's room


def test_work_of_a_class_below_default_frozen_for_share_reserves_nothing():
    """A share-frozen domain that also holds a low-class job: the default-class work that
    took the host does not outrank all of it, so it is still frozen for share, and the
    gaining VO's later jobs may use the rest of the host."""
    site = SHARE_SITE.replace('classes = ["normal", "interactive"]',
                              'classes = ["opp", "normal", "interactive"]\ndefault_class = "normal"')
    site = site.replace('[[preemption.rule]]\ninteractive = true',
                        '[[preemption.rule]]\nqueue = "bf"\nclass = "opp"\n[[preemption.rule]]\ninteractive = true')
    site = site.replace('[[queues]]\nname = "q"\nper_domain_jobs = 32',
                        '[[queues]]\nname = "q"\nper_domain_jobs = 32\n[[queues]]\nname = "bf"\nper_domain_jobs = 32')
    p = parse_policy(site, "share.toml")
    doms, jobs = _share_start(p, {"h1": 6, "big": 20})
    jobs = [attrs.evolve(j, queue="bf") if j.id == "h1-img-b-1-0" else j for j in jobs]
    s = sched(p)
    snap = Snapshot(700.0, p.hosts, doms, tuple(jobs + [job(f"a{k}", "a", "q", 1, 1000, wall=36000) for k in range(4)]))
    plan = s.on_cycle(snap)
    assert ("suspend-domain", "h1-img-b-1") in verbs(plan)
    snap = apply_plan(p, snap, plan)
    more = [job(f"late{k}", "a", "q", 1, 1000, wall=600, t=710.0) for k in range(3)]
    plan = s.on_cycle(attrs.evolve(snap, time=800.0, jobs=snap.jobs + tuple(more)))
    assert [v for v in verbs(plan) if v[0] == "run"] == [("run", f"late{k}") for k in range(3)]


def test_frozen_work_comes_back_to_a_host_bigger_than_the_smallest():
    """Only the smallest hosts move to a VO, but a VO's own frozen work comes back to any
    host: a 2-core host coming up does not strand the work frozen on an 8-core one."""
    tiny = ('[[hosts]]\nname = "tiny"\ncores = 2\nmemory = "4gb"\nmax_active = 1\nmax_domains = 2\n'
            'domains = [ { image = "img-b", flavor = "whole-hard" }, { image = "img-a", flavor = "whole-hard" } ]\n')
    p = parse_policy(SHARE_SITE.split("[[hosts]]\nname = \"big\"")[0] + tiny, "share.toml")
    state = {"h1-img-b-1": DomainState.SUSPENDED, "h1-img-a-1": DomainState.RUNNING,
             "h2-img-b-1": DomainState.OCCUPIED, "h2-img-a-1": DomainState.RUNNING,
             "h3-img-b-1": DomainState.OCCUPIED, "h3-img-a-1": DomainState.RUNNING,
             "h4-img-b-1": DomainState.RUNNING, "h4-img-a-1": DomainState.OCCUPIED,
             "tiny-img-b-1": DomainState.OCCUPIED, "tiny-img-a-1": DomainState.OCCUPIED}
    doms = tuple(attrs.evolve(d, state=state[d.name], since=0.0) for d in initial_domains(p))
    jobs = [job(f"b1-{k}", "b", "q", state=JobState.SUSPENDED, domain="h1-img-b-1", start_time=0.0) for k in range(6)]
    jobs += [job(f"b4-{k}", "b", "q", state=JobState.RUNNING, domain="h4-img-b-1", start_time=0.0) for k in range(8)]
    jobs += [job(f"a-{h}-{k}", "a", "q", state=JobState.RUNNING, domain=f"{h}-img-a-1", start_time=0.0)
             for h in ("h1", "h2", "h3") for k in range(8)]
    plan = sched(p).on_cycle(Snapshot(700.0, p.hosts, doms, tuple(jobs)))
    assert ("resume-domain", "h1-img-b-1") in verbs(plan)


def test_metacenter_second_preemptor_uses_the_room_the_first_opened():
    """Issue 9: two 1-core interactive jobs, every standard domain full of two 2-core jobs.
    The first preemptor freezes one standard domain and resumes the privileged domain beside
    it, which has room for both: the second must run there too, not freeze another host."""
    p = load_policy(EX / "metacenter.toml")
    doms = initial_domains(p)
    jobs = []
    for d in doms:
        if d.state is DomainState.FREE and d.image == "debian-meta":
            jobs += [job(f"{d.name}-{k}", "meta", "normal", 2, 3000, t=0.0, state=JobState.RUNNING, domain=d.name,
                         start_time=10.0) for k in range(2)]
    snap = Snapshot(100.0, p.hosts, doms, jobs + [job(f"i{k}", "meta", "normal", 1, 1000, t=90.0 + k,
                                                      interactive=True) for k in (1, 2)])
    plan = sched(p).on_cycle(snap)
    suspended = [a.domain for a in plan.actions if a.verb == "suspend-domain"]
    runs = {a.job: a.domain for a in plan.actions if a.verb == "run"}
    assert len(suspended) == 1, verbs(plan)
    assert runs["i1"] == runs["i2"], verbs(plan)
    # and the next cycle keeps using that room rather than freezing another host
    snap = apply_plan(p, snap, plan)
    snap = attrs.evolve(snap, time=200.0, jobs=snap.jobs + (job("i3", "meta", "normal", 1, 1000, t=150.0,
                                                                 interactive=True),))
    plan2 = sched(p).on_cycle(snap)
    assert [a.verb for a in plan2.actions] == ["run"], verbs(plan2)
    assert plan2.actions[0].domain == runs["i1"]


def _booting_site(hosts: str, extra: str = ""):
    """Domains booted on demand on 16-core, 32 GB hosts, one image for VO v."""
    return parse_policy(f'''
[site]
name = "t"
[lifecycle]
dynamic_boot = true
{extra}
[[images]]
name = "sl6"
vos = ["v"]
[[queues]]
name = "q"
[[hosts]]
name = "{hosts}"
cores = 16
memory = "32gb"
''', "t.toml")


def test_a_job_no_flavor_can_hold_is_never_not_waiting_for_ever():
    """Issue 9: 16 cores and 30,000 MB on 16-core, 32 GB hosts: the whole-node flavor gives
    16 x 1,740 = 27,840 MB, the fixed ones fewer cores. It was 'not now: 0/0 domains' for ever."""
    p = _booting_site("wn[1-2]")
    snap = Snapshot(10.0, p.hosts, (), (job("big", "v", "q", 16, 30000, t=1.0), job("fits", "v", "q", 16, 27000, t=2.0)))
    plan = sched(p).on_cycle(snap)
    why = plan.reason("big")
    assert why.verdict is Verdict.NEVER, why
    assert "30000 MB" in why.text and "27840 MB" in why.text
    assert ("run", "fits") not in verbs(plan) and any(a.verb == "boot" for a in plan.actions)


def test_never_when_no_single_domain_holds_both_the_cores_and_the_memory():
    p = _booting_site("wn1", '[[flavors]]\nname = "bigmem"\ncores = 2\nmemory = "30000mb"')
    plan = sched(p).on_cycle(Snapshot(10.0, p.hosts, (), (job("big", "v", "q", 16, 30000, t=1.0),)))
    assert str(plan.reason("big")) == ("never: asks for 16 cores and 30000 MB, no domain it could use holds both "
                                       "(with 16 cores or more, at most 27840 MB)")
