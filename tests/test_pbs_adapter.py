"""Full vmsched-pbs cycles against the fake server: both servers, both backends.

Each test drives :class:`vmsched_pbs.adapter.Adapter` cycle by cycle while the server
changes under it (submissions, ends, a node going down, refusals, a job deleted between
stat and run, a malformed job), and checks the server's state after each cycle with
:func:`tests.pbs_site.check_server`.
"""

from __future__ import annotations

import pytest

from vmsched.model import DomainState
from vmsched_pbs.config import load_site
from vmsched_pbs.driver import ExternalDriver, Power
from vmsched_pbs.ifl import IFLError

from .fake_pbs import BACKENDS
from .pbs_site import SMALL, check_server, new_adapter, site

KINDS = ("torque", "openpbs")
BOTH = [(k, b) for k in KINDS for b in BACKENDS]


def note_of(server, node):
    return server.nodes[node].get("note" if server.kind == "torque" else "comment")


def states(server):
    return {jid: j["job_state"] for jid, j in server.jobs.items()}


@pytest.fixture(params=BOTH, ids=lambda p: f"{p[0]}-{p[1]}")
def small(request, tmp_path):
    kind, which = request.param
    return site(tmp_path, kind, which)


def test_first_contact_keeps_one_domain_active_per_host_and_publishes_it(small):
    server, adapter, clock = small
    r = adapter.cycle()
    assert r.plan.actions == ()
    assert {n: note_of(server, n) for n in server.nodes} == {
        "wn1-deb-1": "vmsched: free", "wn1-slc-1": "vmsched: occupied",
        "wn2-deb-1": "vmsched: free", "wn2-slc-1": "vmsched: occupied"}
    assert "offline" in server.nodes["wn1-slc-1"]["state"] and server.nodes["wn1-deb-1"]["state"] == "free"
    check_server(server, adapter)
    calls = len(server.calls)
    clock.tick()
    adapter.cycle()
    assert [c[0] for c in server.calls[calls:]] == ["statserver", "statnode" if server.kind == "torque"
                                                    else "statvnode", "statjob"], "a steady cycle only reads"


def test_submissions_and_ends_over_many_cycles(small):
    server, adapter, clock = small
    meta = [server.submit("alice", "meta", cores=2, memory="2gb", walltime="02:00:00") for _ in range(6)]
    egee = [server.submit("bob", "egee", cores=4, memory="4gb") for _ in range(2)]
    adapter.cycle()
    check_server(server, adapter)
    running = [j for j in meta if server.jobs[j]["job_state"] == "R"]
    assert len(running) == 4                      # 2 hosts x one deb domain of 4 cores
    for j in meta + egee:
        if server.jobs[j]["job_state"] == "Q":
            assert server.jobs[j]["comment"].startswith("Not Running: ")
    for step in range(8):
        clock.tick()
        done = [j for j, jj in server.jobs.items() if jj["job_state"] == "R"][:2]
        for j in done:
            server.finish(j)
        if step % 3 == 0:
            server.submit("carol", "meta", cores=1, memory="1gb")
        adapter.cycle()
        check_server(server, adapter)
    # every job got its turn: the meta work ran and ended, and once it no longer filled the
    # hosts, vmsched switched a host to its slc domain for the egee work
    done = "C" if server.kind == "torque" else "F"
    assert all(server.jobs[j]["job_state"] == done for j in meta)
    assert all(server.jobs[j]["job_state"] in ("R", done) for j in egee)
    assert any(note_of(server, f"{h}-slc-1") in ("vmsched: running", "vmsched: free") for h in ("wn1", "wn2"))


def test_pending_comments_only_when_changed_and_at_most_once_a_period(small):
    server, adapter, clock = small
    for _ in range(4):
        server.submit("alice", "meta", cores=4, memory="7gb")
    waiting = server.submit("alice", "meta", cores=4, memory="7gb")
    adapter.cycle()
    assert server.jobs[waiting]["comment"].startswith("Not Running: ")
    alters = lambda: sum(1 for c in server.calls if c[0] == "alterjob")     # noqa: E731
    first = alters()
    clock.tick()
    adapter.cycle()
    assert alters() == first, "an unchanged reason is not written again"
    # a different reason within the period waits; after the period it is written
    server.jobs[waiting]["comment"] = "Not Running: something an admin wrote"
    clock.tick(60)
    adapter.cycle()
    assert alters() == first
    clock.tick(300)
    adapter.cycle()
    assert alters() == first + 1 and server.jobs[waiting]["comment"].startswith("Not Running: ")


def test_a_job_that_does_not_parse_is_skipped_with_its_reason_never_a_crash(small):
    server, adapter, clock = small
    bad = server.submit("alice", "meta", walltime="ten hours")
    good = server.submit("alice", "meta")
    r = adapter.cycle()
    assert states(server)[good] == "R" and states(server)[bad] == "Q"
    assert server.jobs[bad]["comment"].startswith("Can Never Run: vmsched cannot read this job: "
                                                  "Resource_List.walltime: ")
    assert bad in r.reading.skipped_jobs
    check_server(server, adapter)


def test_runjob_refused_is_logged_by_name_and_the_rest_of_the_plan_goes_on(small, caplog):
    server, adapter, clock = small
    a = server.submit("alice", "meta", cores=4)
    b = server.submit("alice", "meta", cores=4)
    server.refuse("runjob", a, "MOMREJECT", "Execution server rejected request MSG=cannot create tmpdir")
    r = adapter.cycle()
    failed = [o for o in r.outcomes if o.result == "failed"]
    assert [(o.action.job, o.error) for o in failed] == [(a, "MOMREJECT")]
    assert "MOMREJECT" in caplog.text and "tmpdir" in caplog.text
    assert states(server) == {a: "Q", b: "R"}
    assert server.jobs[a]["comment"].startswith("Not Running: run in ") and "MOMREJECT" in server.jobs[a]["comment"]
    check_server(server, adapter)
    clock.tick()
    adapter.cycle()                                   # next cycle: tried again, and it runs
    assert states(server)[a] == "R"
    check_server(server, adapter)


def test_a_job_deleted_between_stat_and_run(small):
    server, adapter, clock = small
    a = server.submit("alice", "meta", cores=4)
    b = server.submit("alice", "meta", cores=4)
    server.before("runjob", lambda args: server.delete(args[0]))    # qdel of the first one run
    r = adapter.cycle()
    assert [(o.result, o.error) for o in r.outcomes] == [("failed", "UNKJOBID"), ("done", None)]
    assert len(server.jobs) == 1 and next(iter(server.jobs.values()))["job_state"] == "R"
    clock.tick()
    adapter.cycle()
    check_server(server, adapter)


def test_a_node_going_down_with_jobs(small):
    server, adapter, clock = small
    jobs = [server.submit("alice", "meta", cores=2) for _ in range(4)]
    adapter.cycle()
    on_wn1 = [j for j in jobs if server.jobs[j]["exec_host"].startswith("wn1-")]
    server.node_down("wn1-deb-1")
    more = server.submit("alice", "meta", cores=2)
    clock.tick()
    r = adapter.cycle()
    down = {d.name: d.state for d in r.reading.snapshot.domains}
    assert down["wn1-deb-1"] is DomainState.DOWN
    assert all(server.jobs[j]["job_state"] == "R" for j in on_wn1), "the server keeps them; vmsched leaves them"
    assert not any(getattr(a, "domain", None) == "wn1-deb-1" for a in r.plan.actions)
    assert note_of(server, "wn1-deb-1") == "vmsched: running", "a down node is not touched"
    assert server.jobs[more]["job_state"] == "Q"
    check_server(server, adapter)
    # the node comes back; its jobs end; the waiting job runs there
    server.node_up("wn1-deb-1")
    for j in on_wn1:
        server.finish(j)
    clock.tick()
    adapter.cycle()
    assert server.jobs[more]["job_state"] == "R"
    check_server(server, adapter)


def test_a_node_going_down_with_requeue_runs_its_jobs_elsewhere(tmp_path):
    server, adapter, clock = site(tmp_path, "openpbs", "cffi", hosts=("wn1", "wn2", "wn3"))
    a = server.submit("alice", "meta", cores=4)
    adapter.cycle()
    node = server.jobs[a]["exec_vnode"].strip("()").split(":")[0]
    server.node_down(node, requeue=True)
    clock.tick()
    adapter.cycle()
    assert server.jobs[a]["job_state"] == "R" and node not in server.jobs[a]["exec_vnode"]
    assert server.started[a] == 2 and server.requeued[a] == 1
    check_server(server, adapter)


def test_an_admins_offline_node_is_neither_used_nor_touched(tmp_path):
    server, adapter, clock = site(tmp_path, "torque", "pbs_python", hosts=("wn1",))
    server.nodes["wn1-deb-1"]["state"] = "offline"
    server.nodes["wn1-deb-1"]["note"] = "broken disk, ticket 4711"
    j = server.submit("alice", "meta")
    r = adapter.cycle()
    assert server.jobs[j]["job_state"] == "Q"
    assert server.nodes["wn1-deb-1"]["note"] == "broken disk, ticket 4711"
    assert {d.name: d.state for d in r.reading.snapshot.domains}["wn1-deb-1"] is DomainState.DOWN


def test_the_servers_scheduling_off_means_no_cycle(small):
    server, adapter, clock = small
    server.server["scheduling"] = "False"
    server.submit("alice", "meta")
    r = adapter.cycle()
    assert r.skipped and r.plan is None
    assert not [c for c in server.calls if c[0] in ("runjob", "alterjob", "manager")]


def test_unchanged_jobs_and_nodes_are_not_parsed_again(small):
    server, adapter, clock = small
    jobs = [server.submit("alice", "meta", cores=1) for _ in range(12)]
    adapter.cycle()
    clock.tick()
    adapter.cycle()
    for j in jobs:                                      # running jobs' usage moves on
        if server.jobs[j]["job_state"] == "R":
            server.jobs[j]["resources_used.walltime"] = "00:02:00"
    clock.tick()
    adapter.cycle()
    assert adapter.reader.parsed == {"jobs": 0, "nodes": 0}
    server.jobs[jobs[-1]]["Resource_List.walltime"] = "03:00:00"     # qalter
    clock.tick()
    adapter.cycle()
    assert adapter.reader.parsed == {"jobs": 1, "nodes": 0}


def switch_refused(tmp_path, kind, which, normal_jobs, request, target):
    """One host busy with normal work, an interactive job arrives, and the server refuses
    ``request`` on ``target`` during the domain switch: (server, adapter, clock, report,
    normal jobs, interactive job)."""
    server, adapter, clock = site(tmp_path, kind, which, hosts=("wn1",))
    normal = [server.submit("alice", "meta", cores=2) for _ in range(normal_jobs)]
    adapter.cycle()
    assert all(server.jobs[j]["job_state"] == "R" for j in normal)
    inter = server.submit("bob", "egee", cores=2, interactive=True)
    server.refuse(request, target(normal), "PERM", "Unauthorized Request")
    clock.tick()
    return server, adapter, clock, adapter.cycle(), normal, inter


def test_a_suspend_that_fails_half_way_is_rolled_back(tmp_path):
    server, adapter, clock, r, normal, inter = switch_refused(tmp_path, "torque", "cffi", 2, "sigjob",
                                                              lambda normal: normal[1])
    got = [(o.action.verb, o.result, o.error) for o in r.outcomes]
    assert got == [("suspend-domain", "failed", "PERM"), ("resume-domain", "skipped", "PLAN"),
                   ("run", "skipped", "PLAN")]
    assert all(server.jobs[j]["job_state"] == "R" for j in normal), "the first job was resumed again"
    assert note_of(server, "wn1-deb-1") == "vmsched: running" and "offline" not in server.nodes["wn1-deb-1"]["state"]
    assert server.jobs[inter]["job_state"] == "Q"
    check_server(server, adapter)
    clock.tick()
    adapter.cycle()                                     # nothing refused now: the switch happens
    assert server.jobs[inter]["job_state"] == "R" and all(server.jobs[j]["job_state"] == "S" for j in normal)
    check_server(server, adapter)


def test_a_resume_that_fails_leaves_the_domain_as_it_was(tmp_path):
    server, adapter, clock, r, normal, inter = switch_refused(tmp_path, "openpbs", "pbs_python", 1, "manager",
                                                              lambda normal: "wn1-slc-1")
    got = [(o.action.verb, o.result) for o in r.outcomes]
    assert got == [("suspend-domain", "done"), ("resume-domain", "failed"), ("run", "skipped")]
    assert adapter.driver.list()["wn1-slc-1"] is Power.PAUSED, "the driver's resume was undone"
    assert server.jobs[normal[0]]["job_state"] == "S" and server.jobs[inter]["job_state"] == "Q"
    check_server(server, adapter)


def test_a_restarted_vmsched_pbs_reads_its_domains_back_from_the_nodes(tmp_path):
    server, adapter, clock = site(tmp_path, "torque", "cffi", hosts=("wn1",))
    normal = server.submit("alice", "meta", cores=2)
    adapter.cycle()
    inter = server.submit("bob", "egee", cores=2, interactive=True)
    clock.tick()
    adapter.cycle()
    assert server.jobs[normal]["job_state"] == "S"
    again = new_adapter(tmp_path / "site.toml", server, "pbs_python", clock, driver=ExternalDriver())
    clock.tick()
    r = again.cycle()
    doms = {d.name: d.state for d in r.reading.snapshot.domains}
    assert doms == {"wn1-deb-1": DomainState.SUSPENDED, "wn1-slc-1": DomainState.RUNNING}
    assert r.plan.actions == () and server.jobs[inter]["job_state"] == "R"
    check_server(server, again)


def test_pbs_table_in_the_policy_file(tmp_path):
    p = tmp_path / "site.toml"
    p.write_text(SMALL.replace('comment_period = "5m"', 'comment_period = "2m"\ndomain_name = '
                               "'^(?P<host>[a-z0-9]+)-(?P<image>[a-z]+)-\\d+$'\nmax_active = 2"))
    policy, config = load_site(p)
    assert config.comment_period_s == 120 and config.max_active == 2
    assert config.domain_name.match("wn1-deb-1").group("image") == "deb"
    assert policy.site == "small"


# ----------------------------------------------------------------------------- lost connections

@pytest.mark.parametrize("kind, which", BOTH)
def test_a_server_restart_mid_cycle_never_starts_a_job_twice(tmp_path, kind, which):
    server, adapter, clock = site(tmp_path, kind, which)
    a, b, c = (server.submit("alice", "meta", cores=2) for _ in range(3))
    server.lose_reply("runjob", a)            # a starts, then the server restarts before answering
    with pytest.raises(IFLError) as e:
        adapter.cycle()
    assert e.value.lost
    assert states(server) == {a: "R", b: "Q", c: "Q"}, "the rest of the plan was not sent"
    adapter.backend.reconnect()
    clock.tick()
    adapter.cycle()                           # a fresh read: a runs already, b and c start now
    assert states(server) == {a: "R", b: "R", c: "R"}
    assert server.started == {a: 1, b: 1, c: 1}
    check_server(server, adapter)


def test_a_restart_in_the_middle_of_a_domain_switch_is_undone_on_a_new_connection(tmp_path):
    server, adapter, clock = site(tmp_path, "torque", "cffi", hosts=("wn1",))
    normal = [server.submit("alice", "meta", cores=2) for _ in range(2)]
    adapter.cycle()
    inter = server.submit("bob", "egee", cores=2, interactive=True)
    server.lose_reply("sigjob", normal[1])    # both suspended, the answer for the second lost
    clock.tick()
    with pytest.raises(IFLError):
        adapter.cycle()
    assert all(server.jobs[j]["job_state"] == "R" for j in normal), "undone on a new connection"
    assert "offline" not in server.nodes["wn1-deb-1"]["state"] and server.jobs[inter]["job_state"] == "Q"
    clock.tick()
    adapter.cycle()
    assert server.jobs[inter]["job_state"] == "R" and all(server.jobs[j]["job_state"] == "S" for j in normal)
    check_server(server, adapter)


class _Recording(dict):
    """A job's attributes that remember which ones the parser looked at."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.asked = set()

    def __getitem__(self, k):
        self.asked.add(k)
        return super().__getitem__(k)

    def get(self, k, default=None):
        self.asked.add(k)
        return super().get(k, default)

    def __contains__(self, k):
        self.asked.add(k)
        return super().__contains__(k)


@pytest.mark.parametrize("kind", ["torque", "openpbs"])
def test_the_attributes_asked_of_the_server_cover_what_the_job_parser_reads(kind):
    # vmsched-pbs asks the server for JOB_ATTRIBUTES only: if Job.from_pbs starts reading
    # another attribute, this says which one to add
    from vmsched.model import Job
    from vmsched_pbs.view import JOB_ATTRIBUTES

    from .fake_pbs import FakeServer
    s = FakeServer(kind)
    s.add_queue("batch")
    jid = s.submit("alice", "meta", cores=2, memory="2gb", interactive=True,
                   extra={"Resource_List.flavor": "large", "Resource_List.vo": "meta", "start_time": "5"})
    a = _Recording(s.jobs[jid])
    Job.from_pbs(jid, a)
    missing = {k.partition(".")[0] for k in a.asked} - set(JOB_ATTRIBUTES)
    assert not missing, f"add to vmsched_pbs.view.JOB_ATTRIBUTES: {sorted(missing)}"


def test_torque_tags_without_an_equals_sign():
    """Found on a real Torque 6.1.3: `qmgr -c "set node n properties += host=wn1"` is taken,
    written to server_priv/nodes as is, and on the next pbs_server start that line fails
    ("could not create node, error = 15002"): the node is gone with its jobs. So a Torque
    site tags its domains vmhost_wn1 / vmimage_slc, and the tags are not job features."""
    from vmsched_pbs.config import PbsConfig
    from vmsched_pbs.view import node_facts
    a = {"np": "4", "properties": "vmhost_wn1,vmimage_slc,vmflavor_big,infiniband", "state": "free",
         "status": "physmem=8388608kb"}
    f = node_facts("wn1-slc-1", a, "torque", PbsConfig())
    assert (f.host, f.image, f.flavor, f.features) == ("wn1", "slc", "big", frozenset({"infiniband"}))
    assert node_facts("n1", {"np": "4", "properties": "vmhost_,infiniband", "state": "free"}, "torque",
                      PbsConfig()) is None       # an empty tag names nothing


def test_torque_refuses_openpbs_job_attributes_and_the_adapter_asks_for_none():
    """A real Torque 6.1.3 answers a pbs_statjob naming exec_vnode or obittime with NOATTR
    and no jobs; the fake does the same, and vmsched-pbs asks each kind for its own names."""
    from vmsched_pbs.view import JOB_ATTRIBUTES, job_attributes
    assert not {"exec_vnode", "obittime"} & set(job_attributes("torque"))
    assert job_attributes("openpbs") == JOB_ATTRIBUTES
