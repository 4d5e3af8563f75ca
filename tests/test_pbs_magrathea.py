"""Magrathea end to end through the fake server: the MetaCenter example policy, its 16
hosts each with two local (debian-meta) domains and one grid (slc-egee) domain as PBS
nodes, at most one active per host. An interactive job suspends a standard domain full of
work and runs in the host's other local domain; when it ends, the standard domain resumes.
The same scenario as tests/test_scenarios.py's, here with the plan carried out by a server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsched.policyfile import initial_domains, load_policy

from .fake_pbs import BACKENDS, FakeServer
from .pbs_site import Clock, check_server, domain_node, new_adapter

EX = Path(__file__).resolve().parents[1] / "vmsched" / "examples"


def metacenter(tmp_path, kind, which):
    clock = Clock()
    server = FakeServer(kind, name="meta-pbs", clock=clock)
    for q in ("normal", "privileged", "egee"):
        server.add_queue(q)
    for d in initial_domains(load_policy(EX / "metacenter.toml")):
        # every node plain "free": which domain of a host is active is vmsched's to say
        domain_node(server, d.name, d.host, d.image, d.cores, d.memory_mb, flavor=d.flavor)
    return server, new_adapter(EX / "metacenter.toml", server, which, clock), clock


def verbs(plan):
    return [(a.verb, getattr(a, "job", None) or getattr(a, "domain", None)) for a in plan.actions]


def notes(server, prefix):
    key = "note" if server.kind == "torque" else "comment"
    return {n: (x.get(key), "offline" in x["state"]) for n, x in server.nodes.items() if n.startswith(prefix)}


@pytest.mark.parametrize("kind, which", [(k, b) for k in ("torque", "openpbs") for b in BACKENDS])
def test_interactive_job_suspends_the_standard_domain_which_resumes_after(tmp_path, kind, which):
    server, adapter, clock = metacenter(tmp_path, kind, which)
    # every host's standard local domain fills with normal work
    normal = [server.submit(f"u{k % 5}", "meta", "normal", cores=2, memory="3000mb") for k in range(32)]
    r = adapter.cycle()
    assert [v for v, _ in verbs(r.plan)] == ["run"] * 32 and r.count("done") == 32
    assert notes(server, "skirit01-") == {"skirit01-debian-meta-1": ("vmsched: running", False),
                                          "skirit01-debian-meta-2": ("vmsched: occupied", True),
                                          "skirit01-slc-egee-1": ("vmsched: occupied", True)}
    check_server(server, adapter)

    # an interactive job: a standard domain is suspended, the host's other local domain runs it
    clock.tick()
    i1 = server.submit("v", "meta", "normal", cores=2, memory="2000mb", interactive=True)
    r = adapter.cycle()
    acts = verbs(r.plan)
    assert [v for v, _ in acts] == ["suspend-domain", "resume-domain", "run"] and acts[2] == ("run", i1)
    assert r.plan.actions[0].by == i1 and r.count("done") == 3
    victim, refuge = r.plan.actions[0].domain, r.plan.actions[1].domain
    host = victim.rsplit("-debian", 1)[0]
    assert refuge.startswith(host + "-debian-meta-") and refuge != victim
    inside = [j for j in normal if server.jobs[j]["exec_host"].startswith(victim + "/")]
    assert len(inside) == 2 and all(server.jobs[j]["job_state"] == "S" for j in inside)
    assert server.jobs[i1]["job_state"] == "R" and server.jobs[i1]["exec_host"].startswith(refuge + "/")
    assert notes(server, host + "-") == {victim: ("vmsched: suspended", True), refuge: ("vmsched: running", False),
                                         f"{host}-slc-egee-1": ("vmsched: occupied", True)}
    check_server(server, adapter)

    # nothing else may run in the preemptor's domain while the victims are frozen
    clock.tick()
    n1 = server.submit("w", "meta", "normal", cores=1, memory="500mb")
    r = adapter.cycle()
    assert ("run", n1) not in verbs(r.plan)
    assert server.jobs[n1]["comment"].startswith("Not Running: ")
    check_server(server, adapter)

    # the interactive job ends: the suspended domain comes back, its jobs run again
    clock.tick()
    server.finish(i1)
    r = adapter.cycle()
    assert ("resume-domain", victim) in verbs(r.plan)
    assert verbs(r.plan).index(("suspend-domain", refuge)) < verbs(r.plan).index(("resume-domain", victim))
    assert all(o.result == "done" for o in r.outcomes)
    assert all(server.jobs[j]["job_state"] == "R" for j in inside)
    assert notes(server, host + "-")[victim] == ("vmsched: running", False)
    assert notes(server, host + "-")[refuge] == ("vmsched: occupied", True)
    assert sum(1 for j in server.jobs.values() if j["job_state"] == "R") == 32 + (server.jobs[n1]["job_state"] == "R")
    check_server(server, adapter)
    lib = getattr(adapter.backend, "fake_lib", None)
    if lib is not None:
        assert lib.live == 0
