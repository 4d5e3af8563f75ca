"""Fair-share accounting through vmsched-pbs: every job that leaves the server is charged
once, from its ``resources_used``, through the crash-safe usage store; a restarted
vmsched-pbs charges nothing twice and forgets nothing."""

from __future__ import annotations

import pytest

from vmsched.usage import UsageStore

from .fake_pbs import BACKENDS
from .pbs_site import new_adapter, site

NO_DECAY = 1e15


def usage(store, now):
    return {path: round(v, 3) for path, v in store.usage(now, NO_DECAY).items()}


@pytest.mark.parametrize("kind, which", [(k, b) for k in ("torque", "openpbs") for b in BACKENDS])
def test_each_ended_job_is_charged_once_and_a_restart_charges_nothing_twice(tmp_path, kind, which):
    store = UsageStore(tmp_path / "usage.sqlite")
    server, adapter, clock = site(tmp_path, kind, which, store=store)
    a = server.submit("alice", "meta", cores=2)
    b = server.submit("bob", "meta", cores=1)
    adapter.cycle()
    clock.tick(600)
    server.finish(a, walltime_s=600)                    # kept as C (Torque) or F (OpenPBS)
    r = adapter.cycle()
    assert r.charged == 1 and store.jobs() == {a}
    assert usage(store, clock()) == {("meta", "meta", "alice"): 1200.0}     # 2 cores x 600 s
    clock.tick()
    assert adapter.cycle().charged == 0, "the completed job is still listed: not charged again"

    # vmsched-pbs restarts on the same store: nothing is charged twice
    store.close()
    store = UsageStore(tmp_path / "usage.sqlite")
    again = new_adapter(tmp_path / "site.toml", server, which, clock, store=store)
    clock.tick()
    assert again.cycle().charged == 0 and store.jobs() == {a}

    # a running job that vanishes without an end record is charged up to when it was found gone
    started = float(server.jobs[b]["start_time"])
    server.finish(b, keep=False)
    clock.tick(60)
    r = again.cycle()
    assert r.charged == 1 and store.jobs() == {a, b}
    assert usage(store, clock())[("meta", "meta", "bob")] == pytest.approx(clock() - started)
    store.close()


def test_fair_share_sees_the_usage_in_the_same_cycle(tmp_path):
    store = UsageStore(tmp_path / "usage.sqlite")
    server, adapter, clock = site(tmp_path, "torque", "cffi", store=store)
    jobs = [server.submit("alice", "meta", cores=4) for _ in range(2)]
    adapter.cycle()
    clock.tick(3600)
    for j in jobs:
        server.finish(j, walltime_s=3600)
    adapter.cycle()
    factors = adapter.scheduler.factors(clock())
    assert factors[("meta",)] < factors[("egee",)], "meta used the cluster, egee did not"
    store.close()
