"""Sites for vmsched-pbs's tests: a fake server with VM domains as nodes, an adapter on it,
a clock both share, and the invariants a live server must keep after every cycle."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from vmsched.matching import PyEngine
from vmsched.cycle import Scheduler
from vmsched.usage import UsageStore
from vmsched_pbs.adapter import Adapter
from vmsched_pbs.config import load_site
from vmsched_pbs.driver import Power

from .fake_pbs import FakeServer, make_backend

# (inline tables: the same policy reader, and a compact site)
SMALL = """
site = { name = "small" }
scheduler = { cycle_interval = "60s" }
fairshare = { image_shares = false, share = [{ path = "meta", share = 60 }, { path = "egee", share = 40 }] }
preemption = { classes = ["normal", "interactive"], default_class = "normal", mode = "suspend-domain", rule = [
    { interactive = true, class = "interactive" }] }
lifecycle = { dynamic_boot = false, idle_shutdown = "365d" }
images = [{ name = "deb", vos = ["meta"] }, { name = "slc", vos = ["egee"] }]
queues = [{ name = "batch", per_domain_jobs = 4 }]

[pbs]
comment_period = "5m"
"""


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def tick(self, s: float = 60.0) -> float:
        self.t += s
        return self.t


def domain_node(server: FakeServer, name: str, host: str, image: str, cores: int = 4, memory_mb: int = 8192,
                flavor: str | None = None, state: str = "free") -> None:
    """A VM domain as a node: tagged the Torque way (properties) or the OpenPBS way
    (custom resources), whichever the server is."""
    props = [f"host={host}", f"image={image}"] + ([f"flavor={flavor}"] if flavor else [])
    res = {"vmhost": host, "vmimage": image, **({"vmflavor": flavor} if flavor else {})}
    server.add_node(name, cores, memory_mb, properties=props, resources=res, state=state)


def site(tmp_path: Path, kind: str = "torque", which: str = "cffi", text: str = SMALL, hosts=("wn1", "wn2"),
         images=("deb", "slc"), queues=("batch",), store: UsageStore | None = None):
    """(server, adapter, clock) for a policy text; each host gets one domain per image."""
    clock = Clock()
    server = FakeServer(kind, clock=clock)
    for q in queues:
        server.add_queue(q)
    for h in hosts:
        for im in images:
            domain_node(server, f"{h}-{im}-1", h, im)
    path = tmp_path / "site.toml"
    path.write_text(text)
    adapter = new_adapter(path, server, which, clock, store=store)
    return server, adapter, clock


def new_adapter(path, server: FakeServer, which: str, clock: Clock, driver=None,
                store: UsageStore | None = None) -> Adapter:
    """An adapter as a fresh ``vmsched-pbs`` process would make it (new driver, new
    scheduler; the usage store given, as a restarted process opens the same file)."""
    policy, config = load_site(path)
    backend = make_backend(server, which)
    backend.connect(server.name)
    sched = Scheduler(policy, engine=PyEngine(), store=store or UsageStore(":memory:"))
    return Adapter(policy, config, backend, driver, scheduler=sched, clock=clock)


ACTIVE_NOTES = ("vmsched: free", "vmsched: running")


def check_server(server: FakeServer, adapter: Adapter, report=None) -> None:
    """What a live server must look like after a cycle: no job runs on a domain vmsched
    holds inactive (or offline), no domain is half-switched (a job frozen in an active
    domain, the driver and the node disagreeing), no host has more active domains than
    allowed, every job waiting carries a comment, and no job was started twice without a
    requeue."""
    note = "note" if server.kind == "torque" else "comment"
    hosts = {h.name: h for h in adapter.reader._hosts.values()}
    # a comment or node note the server refused this cycle is written again next cycle
    failures = report.failures if report else ()
    refused = {m.group(1) for f in failures for m in [re.search(r"pbs_alterjob\((.+?)\)", f)] if m}
    unpublished = {m.group(1) for f in failures for m in [re.search(r"pbs_manager\(set node (.+?)\)", f)] if m}
    power = adapter.driver.list()
    active = Counter()
    for name, n in server.nodes.items():
        facts = adapter.reader._nodes.get(name, (None, None))[1]
        words = set(n["state"].split(","))
        text = n.get(note, "")
        if facts is None or "down" in words or not text.startswith("vmsched: ") or name in unpublished:
            continue
        jobs = [server.jobs[j]["job_state"] for j in server.node_jobs[name]]
        if text in ACTIVE_NOTES:
            active[facts.host] += 1
            assert "S" not in jobs, f"{name}: active, with a job still suspended"
            assert power.get(name) in (None, Power.ACTIVE), f"{name}: active on its node, {power.get(name)} to the driver"
        else:
            assert "offline" in words, f"{name}: {text} but not offline"
            assert "R" not in jobs, f"{name}: {text}, with a job running"
            assert power.get(name) is not Power.ACTIVE, f"{name}: {text} on its node, active to the driver"
    for host, k in active.items():
        assert k <= hosts[host].max_active, f"host {host}: {k} active domains"
    for jid, j in server.jobs.items():
        if j["job_state"] == "Q" and jid not in refused:
            assert j.get("comment", "").startswith(("Not Running: ", "Can Never Run: ")), \
                f"job {jid} waits without a comment"
    for jid, k in server.started.items():
        assert k <= 1 + server.requeued[jid], f"job {jid} started {k} times, requeued {server.requeued[jid]}"
