"""vmsched-pbs's Prometheus metrics: what each cycle reports, and the endpoint on loopback."""

from __future__ import annotations

import io
import urllib.request

import pytest

pytest.importorskip("prometheus_client")

from vmsched_pbs import cli  # noqa: E402
from vmsched_pbs.metrics import Metrics  # noqa: E402

from .fake_pbs import make_backend  # noqa: E402
from .pbs_site import site  # noqa: E402


def test_a_cycle_shows_in_the_metrics(tmp_path):
    server, adapter, clock = site(tmp_path, "torque", "cffi")
    m = Metrics(adapter.policy)
    jobs = [server.submit("alice", "meta", cores=4) for _ in range(3)]
    server.submit("bob", "meta", walltime="soon")
    server.refuse("runjob", jobs[0], "MOMREJECT")
    m.observe(adapter.cycle(), lambda job: adapter.scheduler.with_vo(job).vo)
    v = m.registry.get_sample_value
    assert v("vmsched_pbs_cycles_total", {"result": "run"}) == 1
    assert v("vmsched_pbs_actions_total", {"kind": "run", "outcome": "done"}) == 1
    assert v("vmsched_pbs_actions_total", {"kind": "run", "outcome": "failed"}) == 1
    assert v("vmsched_pbs_action_errors_total", {"error": "MOMREJECT"}) == 1
    assert v("vmsched_pbs_domains", {"state": "running"}) == 1 and v("vmsched_pbs_domains", {"state": "occupied"}) == 2
    assert v("vmsched_pbs_pending_jobs", {"reason": "unreadable"}) == 1
    assert v("vmsched_pbs_pending_jobs", {"reason": "not now"}) == 2
    assert v("vmsched_pbs_vo_share", {"vo": "meta", "kind": "running"}) == 1.0
    assert v("vmsched_pbs_vo_share", {"vo": "meta", "kind": "target"}) == pytest.approx(0.6)
    assert v("vmsched_pbs_cycle_seconds_count") == 1


def test_the_daemon_serves_metrics_on_loopback(tmp_path, monkeypatch):
    server, adapter, clock = site(tmp_path, "openpbs", "pbs_python")
    server.submit("alice", "meta", cores=2)
    got = {}
    real_serve = Metrics.serve

    def serve(self, port, address="127.0.0.1"):        # a free port instead of the one asked
        got["port"] = real_serve(self, 0, address)
        got["address"] = address
        return got["port"]

    class Stop(Exception):
        pass

    def sleep(seconds):                                  # between two cycles: what a scraper sees
        with urllib.request.urlopen(f"http://127.0.0.1:{got['port']}/metrics", timeout=10) as r:
            got["body"] = r.read().decode()
        raise Stop

    monkeypatch.setattr(Metrics, "serve", serve)
    with pytest.raises(Stop):
        cli.main(["--policy", str(tmp_path / "site.toml"), "--metrics-port", "9999"],
                 backend=make_backend(server, "pbs_python"), out=io.StringIO(), err=io.StringIO(), sleep=sleep)
    assert got["address"] == "127.0.0.1"
    assert 'vmsched_pbs_actions_total{kind="run",outcome="done"} 1.0' in got["body"]
    assert 'vmsched_pbs_domains{state="running"} 1.0' in got["body"]
