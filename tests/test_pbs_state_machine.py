"""A hypothesis state machine over vmsched-pbs and the fake server: random submissions,
ends, deletions, nodes going down and up, refusals, lost answers (the server restarting
mid-cycle) and restarts of vmsched-pbs itself, with a cycle between them.

After every cycle that completes: no job runs on an inactive domain, no host has more
active domains than allowed, no domain is half-switched, no job was started twice, every
job waiting carries a comment (:func:`tests.pbs_site.check_server`); and fair-share usage
is exactly the ended jobs': each ended job charged once, a finished one with its
``resources_used`` (cores x walltime), and no job that did not end (one exception, said
where the rule is: a job requeued by a node failure and deleted before vmsched-pbs saw it
queued again).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vmsched.usage import UsageStore
from vmsched_pbs.ifl import IFLError

from .fake_pbs import BACKENDS
from .pbs_site import check_server, new_adapter, site

NO_DECAY = 1e15
NODES = [f"{h}-{im}-1" for h in ("wn1", "wn2") for im in ("deb", "slc")]


class PbsSite(RuleBasedStateMachine):
    kind = "torque"
    which = "cffi"

    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="vmsched-pbs-sm-"))
        self.store = UsageStore(self.dir / "usage.sqlite")
        self.server, self.adapter, self.clock = site(self.dir, self.kind, self.which, store=self.store)
        self.n = 0
        self.cores: dict[str, int] = {}
        self.ended: dict[str, float | None] = {}     # job -> core-seconds it must be charged (None: any)
        # jobs that ran, went back to the queue (their node failed) and were deleted there:
        # if vmsched-pbs did not see them queued in between, it charges the time it saw
        # them run (it cannot know better), else nothing
        self.maybe: set[str] = set()
        self.charged_ok = True

    def teardown(self):
        self.store.close()

    # ------------------------------------------------------------------ the world
    @rule(vo=st.sampled_from(["meta", "egee"]), cores=st.integers(1, 4), interactive=st.booleans(),
          rerunable=st.booleans())
    def submit(self, vo, cores, interactive, rerunable):
        self.n += 1
        jid = self.server.submit(f"u{self.n}", vo, cores=cores, memory=f"{cores}gb", interactive=interactive,
                                 rerunable=rerunable)
        self.cores[jid] = cores

    def _running(self):
        return sorted(j for j, a in self.server.jobs.items() if a["job_state"] in ("R", "S"))

    @precondition(lambda self: self._running())
    @rule(data=st.data(), walltime=st.integers(1, 7200), keep=st.booleans())
    def finish(self, data, walltime, keep):
        jid = data.draw(st.sampled_from(self._running()))
        self.server.finish(jid, walltime_s=walltime, keep=keep)
        # kept: charged from resources_used; vanished: up to the cycle that finds it gone
        self.ended[jid] = self.cores[jid] * walltime if keep else None

    @precondition(lambda self: any(a["job_state"] == "Q" for a in self.server.jobs.values()))
    @rule(data=st.data())
    def qdel(self, data):
        jid = data.draw(st.sampled_from(sorted(j for j, a in self.server.jobs.items() if a["job_state"] == "Q")))
        self.server.delete(jid)
        if self.server.started[jid]:
            self.maybe.add(jid)

    @rule(node=st.sampled_from(NODES), requeue=st.booleans())
    def node_down(self, node, requeue):
        self.server.node_down(node, requeue=requeue)

    @rule(node=st.sampled_from(NODES))
    def node_up(self, node):
        if "down" in self.server.nodes[node]["state"]:
            self.server.node_up(node)

    @rule(request=st.sampled_from(["runjob", "sigjob", "manager", "rerunjob", "alterjob"]),
          name=st.sampled_from(["PERM", "MOMREJECT", "RESCUNAV", "SYSTEM"]))
    def refuse(self, request, name):
        self.server.refuse(request, None, name, f"{name} (injected)")

    @rule(request=st.sampled_from(["runjob", "sigjob", "manager", "statjob", "alterjob"]))
    def lose_an_answer(self, request):
        self.server.lose_reply(request)

    @rule()
    def restart_vmsched_pbs(self):
        self.store.close()
        self.store = UsageStore(self.dir / "usage.sqlite")
        self.adapter = new_adapter(self.dir / "site.toml", self.server, self.which, self.clock, store=self.store)

    # ------------------------------------------------------------------ the cycle
    @rule(seconds=st.sampled_from([30, 60, 400]))
    def cycle(self, seconds):
        self.clock.tick(seconds)
        backend = self.adapter.backend
        try:
            if not backend.connected:
                backend.connect(self.server.name)
            report = self.adapter.cycle()
        except IFLError as e:
            assert e.lost, e
            backend.disconnect()
            return
        check_server(self.server, self.adapter, report)
        recorded = self.store.jobs()
        for jid, amount in self.ended.items():
            assert jid in recorded, f"job {jid} ended and was not charged"
            if amount is not None:
                user = f"u{jid.split('.')[0]}"
                got = {p: v for p, v in self.store.usage(self.clock(), NO_DECAY).items() if p[2] == user}
                assert list(got.values()) == [pytest.approx(amount)], (jid, got, amount)
        wrong = recorded - set(self.ended) - self.maybe
        assert not wrong, f"charged jobs that did not end: {wrong}"

    @invariant()
    def jobs_are_where_the_server_says(self):
        for node, held in self.server.node_jobs.items():
            for jid in held:
                assert self.server.jobs[jid]["job_state"] in ("R", "S")


def machine(kind, which):
    return type(f"PbsSite_{kind}_{which}", (PbsSite,), {"kind": kind, "which": which})


_FAST = settings(max_examples=12, stateful_step_count=30, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
_SLOW = settings(max_examples=100, stateful_step_count=50, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

TestTorqueCffi = machine("torque", "cffi").TestCase
TestTorqueCffi.settings = _FAST
TestOpenPbsPbsPython = machine("openpbs", "pbs_python").TestCase
TestOpenPbsPbsPython.settings = _FAST
if "cffi-shim" in BACKENDS:
    TestOpenPbsShim = machine("openpbs", "cffi-shim").TestCase
    TestOpenPbsShim.settings = _FAST


@pytest.mark.slow
@pytest.mark.parametrize("kind, which", [(k, b) for k in ("torque", "openpbs") for b in BACKENDS])
def test_long_random_runs(kind, which):
    from hypothesis.stateful import run_state_machine_as_test
    run_state_machine_as_test(machine(kind, which), settings=_SLOW)
