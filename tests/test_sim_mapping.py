"""The [trace] mapping: its schema errors, the rules, and every stand-in counted."""

from __future__ import annotations

import pytest

from vmsched.policyfile import PolicyError, load_policy, parse_policy
from vmsched.sim.baseline import partition_hosts, static_baseline
from vmsched.sim.engine import prepare
from vmsched.sim.mapping import Mapper, SimJob, Unrunnable, hosts_from_spec, policy_with_hosts, resolve_hosts
from vmsched.sim.swf import NodeSpec, TraceJob, bundled_trace

BASE = """
[site]
name = "m"
[scheduler]
default_queue = "normal"
[[fairshare.share]]
path = "a"
share = 3
[[fairshare.share]]
path = "b"
share = 1
[preemption]
classes = ["low", "normal", "high"]
default_class = "normal"
[lifecycle]
dynamic_boot = false
[[images]]
name = "ia"
vos = ["a"]
[[images]]
name = "ib"
vos = ["b"]
[[queues]]
name = "normal"
per_domain_jobs = 4
resources_max = { walltime = "2:00:00" }
[[queues]]
name = "long"
per_domain_jobs = 4
[[hosts]]
name = "h[1-4]"
cores = 8
memory = "16gb"
max_active = 1
max_domains = 2
domains = [ { image = "ia", flavor = "whole-hard" }, { image = "ib", flavor = "whole-hard" } ]
"""


def policy(trace: str):
    return parse_policy(BASE + trace, "p.toml")


def tj(**kw):
    base = dict(submit=0, wait=0, run=100, allocated_procs=1, uid=1, gid=2, queue=1, partition=1, status=1)
    base.update(kw)
    return TraceJob(kw.pop("job_id", 1), **{k: v for k, v in base.items() if k != "job_id"})


def mapper(trace: str):
    p = policy(trace)
    return Mapper(p, p.hosts, p.domains_per_host)


# --------------------------------------------------------------------------- schema errors

@pytest.mark.parametrize("text, line, where, what", [
    ('[trace]\nwalltime = "guess"\n', 38, "trace.walltime", '"queue-limit", "oracle" or "requested"'),
    ('[trace]\nmemory = "lots"\n', 38, "trace.memory", '"per-core", "used" or "requested"'),
    ('[trace]\noversize = "squash"\n', 38, "trace.oversize", '"cap" or "refuse"'),
    ('[trace]\ncolour = 1\n', 38, "trace.colour", "unknown key"),
    ('[trace]\n[[trace.map]]\nuser = "9-3"\nvo = "a"\n', 39, "trace.map[0].user", 'range like "10-20"'),
    ('[trace]\n[[trace.map]]\nuser = true\nvo = "a"\n', 39, "trace.map[0].user", "an id >= 0"),
    ('[trace]\n[[trace.map]]\nqueue = [1.5]\nvo = "a"\n', 39, "trace.map[0].queue", "queue number"),
    ('[trace]\n[[trace.map]]\nuser = 1\nimage = "nope"\n', 40, "trace.map[0].image", "not defined in [[images]]"),
    ('[trace]\n[[trace.map]]\nuser = 1\nexec_queue = "q"\n', 40, "trace.map[0].exec_queue", "[[queues]]"),
    ('[trace]\n[[trace.map]]\nuser = 1\nclass = "vip"\n', 40, "trace.map[0].class", "not one of classes"),
    ('[trace]\n[[trace.map]]\nuser = 1\nwalltime = "soon"\n', 40, "trace.map[0].walltime", "duration"),
    ('[trace]\n[[trace.map]]\nuser = 1\n', 38, "trace.map[0]", "sets nothing"),
    ('[trace]\n[[trace.map]]\nuser = 1\nflavor = "huge"\n', 40, "trace.map[0].flavor", "not defined in flavors"),
    ('[trace]\n[[trace.map]]\nuser = 1\nflavor = 4\n', 40, "trace.map[0].flavor", "expected a non-empty string"),
    ('[trace]\ndefault_queue = "q"\n', 38, "trace.default_queue", "not defined in [[queues]]"),
])
def test_trace_schema_errors_name_file_line_key_and_expectation(text, line, where, what):
    with pytest.raises(PolicyError) as e:
        policy(text)
    assert len(e.value.problems) == 1, e.value.problems
    msg = e.value.problems[0]
    assert msg.startswith(f"p.toml:{line}: {where}: "), msg
    assert what in msg


def test_all_trace_problems_are_reported_at_once():
    with pytest.raises(PolicyError) as e:
        policy('[trace]\nwalltime = "x"\nmemory = "y"\n[[trace.map]]\nuser = "a-b"\nvo = "a"\n')
    assert len(e.value.problems) == 3


def test_bundled_example_policies_validate():
    from importlib import resources
    for name in ("metacentrum-sim.toml", "wagap-sim.toml"):
        p = load_policy(str(resources.files("vmsched") / "examples" / name))
        assert p.trace is not None and p.trace.rules


# --------------------------------------------------------------------------- rules

def test_first_matching_rule_wins_per_target():
    m = mapper('[trace]\ndefault_vo = "a"\n'
               '[[trace.map]]\nuser = [1, "5-7"]\nvo = "b"\n'
               '[[trace.map]]\nuser = 6\nvo = "a"\nclass = "high"\n'
               '[[trace.map]]\nqueue = 3\nexec_queue = "long"\nclass = "low"\n')
    j = m.map(tj(uid=6, queue=3))
    assert isinstance(j, SimJob)
    assert (j.job.vo, j.klass, j.job.queue) == ("b", "high", "long")
    j = m.map(tj(job_id=2, uid=2, queue=1))
    assert (j.job.vo, j.klass, j.job.queue) == ("a", "normal", "normal")
    assert m.counts["VO: no map rule gave one, default_vo 'a' used"] == 1


def test_unknown_trace_value_matches_only_absent_fields():
    m = mapper('[trace]\ndefault_vo = "a"\n[[trace.map]]\ngroup = 2\nvo = "b"\n')
    assert m.map(tj(gid=None)).job.vo == "a"
    assert m.map(tj(job_id=2, gid=2)).job.vo == "b"


def test_queue_names_match_extended_traces():
    m = mapper('[trace]\n[[trace.map]]\nqueue = ["q_2w", 7]\nexec_queue = "long"\n')
    ext = TraceJob(1, submit=0, wait=0, run=5, allocated_procs=1, uid=1, allocated_nodes=(1,), queue_name="q_2w",
                   nodespec_text="1:ppn=1", nodespec=NodeSpec.parse("1:ppn=1"))
    assert m.map(ext).job.queue == "long"
    assert m.map(tj(job_id=2, queue=7)).job.queue == "long"
    assert m.map(tj(job_id=3, queue=8)).job.queue == "normal"


@pytest.mark.parametrize("choice, run, requested, want, killed", [
    ("oracle", 500, None, 500, False),
    ("queue-limit", 500, None, 7200, False),
    ("queue-limit", 9000, None, 7200, True),
    ("requested", 500, 600, 600, False),
    ("requested", 500, None, 7200, False),
])
def test_walltime_stand_ins(choice, run, requested, want, killed):
    m = mapper(f'[trace]\nwalltime = "{choice}"\n[[trace.map]]\nuser = 1\nvo = "a"\n')
    j = m.map(tj(run=run, requested_time=requested))
    assert j.job.walltime_s == want and j.killed is killed
    assert j.work == min(run, want)
    if choice == "requested" and requested is None:
        assert m.counts["walltime: requested time unknown (-1), the queue's limit (resources_max.walltime)"] == 1
    # exactly one walltime stand-in is counted for the job (issue 17: counts, not "all")
    assert sum(n for what, n in m.counts.items() if what.startswith("walltime:")) == 1


def test_rule_walltime_and_default_walltime():
    m = mapper('[trace]\ndefault_walltime = "3h"\n[[trace.map]]\nqueue = 5\nwalltime = "1d"\n'
               '[[trace.map]]\nqueue = 6\nexec_queue = "long"\n')
    assert m.map(tj(queue=5)).job.walltime_s == 86400
    assert m.map(tj(job_id=2, queue=6)).job.walltime_s == 3 * 3600
    assert m.counts["walltime: the map rule's walltime"] == 1
    assert m.counts["walltime: no rule or queue limit, default_walltime 10800 s"] == 1


def test_memory_stand_ins():
    assert mapper('[trace]\nmemory_per_core = "1gb"\n').map(tj(allocated_procs=2)).job.memory_mb == 2048
    m = mapper('[trace]\nmemory = "used"\n')
    assert m.map(tj(allocated_procs=2, used_mem=2048)).job.memory_mb == 4
    assert m.map(tj(job_id=2, used_mem=None)).job.memory_mb == 1740
    assert m.counts["memory: used memory unknown, 1740 MB per core"] == 1
    assert m.counts["memory: the trace's used memory (field 7) as the request"] == 1


def test_oversize_jobs_are_capped_and_counted_or_refused():
    m = mapper('[trace]\ndefault_vo = "a"\n')
    j = m.map(tj(allocated_procs=60))
    assert j.job.cores == 8 and m.counts["cores capped to the largest domain (8)"] == 1
    r = mapper('[trace]\ndefault_vo = "a"\noversize = "refuse"\n').map(tj(allocated_procs=60))
    assert isinstance(r, Unrunnable) and "largest domain is 8 cores" in r.reason and r.stage == "mapping"


def test_multi_node_jobs_are_counted():
    m = mapper('[trace]\n')
    ext = TraceJob(1, submit=0, wait=0, run=5, allocated_procs=4, uid=1, allocated_nodes=(1, 1, 2, 2),
                   queue_name="q", nodespec_text="2:ppn=2", nodespec=NodeSpec.parse("2:ppn=2"))
    assert m.map(ext).job.cores == 4
    assert m.counts["multi-node job run in one domain with all its processors as cores"] == 1


def test_jobs_without_run_time_are_unrunnable_with_a_reason():
    r = mapper('[trace]\n').map(tj(run=None))
    assert isinstance(r, Unrunnable) and "no run time" in r.reason


def test_interactive_below_uses_the_run_time():
    m = mapper('[trace]\n[[trace.map]]\nqueue = 4\ninteractive_below = "10m"\n')
    assert m.map(tj(queue=4, run=100)).interactive
    assert not m.map(tj(job_id=2, queue=4, run=1000)).interactive
    assert not m.map(tj(job_id=3, queue=1, run=100)).interactive


def test_repeated_job_ids_get_a_suffix():
    m = mapper('[trace]\n')
    assert [m.map(tj()).job.id, m.map(tj()).job.id] == ["j1", "j1.2"]


# --------------------------------------------------------------------------- hosts

def test_host_specs_and_machines_files(tmp_path):
    p = policy('[trace]\n')
    hosts, desc = resolve_hosts(p, "2x4:8gb,1x16")
    assert [(h.cores, h.memory_mb) for h in hosts] == [(4, 8192), (4, 8192), (16, 32768)]
    assert all(h.max_domains == 2 for h in hosts)          # copied from the policy's first host
    p2 = policy_with_hosts(p, hosts)
    assert len(p2.domains_per_host) == 6
    hosts, _ = resolve_hosts(p, "bundled:wagap-2013")
    assert len(hosts) == 68 and sum(h.cores for h in hosts) == 2176
    assert "cl_zewura" in hosts[0].features
    with pytest.raises(PolicyError, match="expected COUNTxCORES"):
        hosts_from_spec("lots")
    with pytest.raises(PolicyError, match="no such file"):
        resolve_hosts(p, str(tmp_path / "missing.machines"))


def test_prepare_maps_the_bundled_slice():
    from importlib import resources
    p = load_policy(str(resources.files("vmsched") / "examples" / "metacentrum-sim.toml"))
    r = prepare(p, bundled_trace("metacentrum-2009"))
    assert len(r.jobs) + len(r.unrunnable) == 4000 == r.trace_info["jobs"]
    assert {sj.job.vo for sj in r.jobs} == {"meta", "egee"}
    assert r.jobs[0].arrival == 0


# --------------------------------------------------------------------------- baseline

def test_static_baseline_splits_hosts_by_share():
    p = policy('[trace]\n')
    base = static_baseline(p)
    by_image = {}
    for host, image, flavor, n in base.domains_per_host:
        by_image.setdefault(image, []).append(host)
        assert flavor == "static-node" and n == 1
    assert sorted(len(v) for v in by_image.values()) == [1, 3]     # shares 3:1 over 4 hosts
    assert base.preemption.mode == "suspend-jobs" and not base.lifecycle.dynamic_boot
    assert {h.name for h in base.hosts} == {h.name for h in p.hosts}


def test_partition_hosts_gives_every_vo_a_host():
    from vmsched.model import Host
    hosts = tuple(Host(f"h{i}", 4, 4096) for i in range(3))
    split = partition_hosts(hosts, [("a", 98.0, "ia"), ("b", 1.0, "ib"), ("c", 1.0, "ic")])
    assert all(len(v) >= 1 for v in split.values())


def test_a_map_rule_flavor_is_the_jobs_own():
    """Issue 9: the rule's flavor is carried into the job, whole-node ones too, which then
    run only in domains of it; a fixed one still gives the job its size."""
    m = mapper('[trace]\n[[trace.map]]\nuser = 1\nflavor = "whole-soft"\n[[trace.map]]\nuser = 2\nflavor = "large"\n')
    soft, large, plain = m.map(tj(job_id=1, uid=1)), m.map(tj(job_id=2, uid=2)), m.map(tj(job_id=3, uid=3))
    assert soft.job.flavor == "whole-soft" and soft.job.cores == 1
    assert large.job.flavor == "large" and (large.job.cores, large.job.memory_mb) == (4, 7168)
    assert plain.job.flavor is None
    assert dict(m.assumptions())["flavor: map rule asks for flavor 'whole-soft' (the job runs only in domains of it)"] == 1


def test_a_job_copied_from_its_shape_is_checked_like_a_new_one():
    """Jobs of a shape seen before are copied from its first job (issue 17: mapping runs
    twice a replay); a submit time Job would refuse is still refused, not copied in."""
    m = mapper('[trace]\n')
    first, same = m.map(tj(job_id=1, submit=0)), m.map(tj(job_id=2, submit=100))
    assert same.job.id == "j2" and same.job.submit_time == 100.0 and same.job.user == first.job.user
    far = m.map(tj(job_id=3, submit=(1 << 40) + 1000))
    assert isinstance(far, Unrunnable) and "cannot be a vmsched job" in far.reason and "submit_time" in far.reason
