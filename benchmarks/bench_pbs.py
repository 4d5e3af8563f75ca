"""Benchmark of vmsched-pbs's own cost per cycle: what the adapter adds to the Scheduler.

Why it exists: issue 11 sets a budget for the adapter (stat, parse, diff, apply, comments,
node notes) around ``Scheduler.on_cycle``: at 10,000 nodes x 100,000 jobs it may add at
most 2 s per cycle, which holds only if unchanged jobs and nodes are not parsed again and
unchanged comments and notes are not written again. This benchmark runs whole cycles of
:class:`vmsched_pbs.adapter.Adapter` against the tests' fake server and splits each cycle's
time into the server's (the fake building its answers: not vmsched-pbs's cost), the
adapter's and the Scheduler's.

    python benchmarks/bench_pbs.py                        # 1000x10000 and 10000x100000
    python benchmarks/bench_pbs.py --sizes 1000x10000 --cycles 5 --backend pbs_python
    python benchmarks/bench_pbs.py --quick                 # CI: 100x1000, 3 cycles

The site (deterministic from ``--seed``): NODESxJOBS is NODES/2 hosts of 32 cores and
64 GB, each with two domains (PBS nodes) of the whole host, a ``deb`` one for the local VO
and an ``slc`` one for the grid VO, at most one active; tagged the Torque way (properties
``host=``/``image=``). A third of the jobs run (filling the active domains, 1-8 cores),
the rest are queued (two VOs, 150 users, 1-8 cores, 1-48 h), so most wait and carry a
comment. First cycle: vmsched-pbs starts against this server (it publishes every node's
state and comments every waiting job). Then ``--cycles`` steady cycles, 60 s apart; before
each, 1 % of the jobs change: JOBS/200 running jobs end (and leave the server), JOBS/200
new ones are queued.

Per cycle: ``server_s`` the fake server's time (serving requests, building the C
structures), ``adapter_s`` everything else outside the Scheduler (the backend walking the
structures, modelling, applying, comments, notes, accounting), ``scheduler_s`` the
``on_cycle`` call; the counts of jobs and nodes parsed again, comments and notes written.
Reported per size: first cycle, and the median and max of the steady cycles, with the
adapter's share of (adapter + scheduler). CPU times of the process, so a shared machine
shows less noise (wall times are given too). Output: one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from vmsched.cycle import Scheduler  # noqa: E402
from vmsched.usage import UsageStore  # noqa: E402
from vmsched_pbs.adapter import Adapter  # noqa: E402
from vmsched_pbs.config import PbsConfig  # noqa: E402
from vmsched.policyfile import parse_policy  # noqa: E402

from tests.fake_pbs import FakeServer, make_backend  # noqa: E402

POLICY = """
site = { name = "bench-pbs" }
scheduler = { cycle_interval = "60s" }
fairshare = { share = [{ path = "meta", share = 60 }, { path = "egee", share = 40 }] }
preemption = { classes = ["normal", "interactive"], default_class = "normal", mode = "suspend-domain", rule = [
    { interactive = true, class = "interactive" }] }
lifecycle = { dynamic_boot = false, idle_shutdown = "365d" }
images = [{ name = "deb", vos = ["meta"] }, { name = "slc", vos = ["egee"] }]
queues = [{ name = "batch", per_domain_jobs = 32 }]
"""
DEFAULT_SIZES = "1000x10000,10000x100000"
HOST_CORES, HOST_MB = 32, 65536


class Clock:
    def __init__(self):
        self.t = 1_700_000_000.0

    def __call__(self):
        return self.t


class Timed:
    """Adds up the CPU time spent in the fake server's calls."""

    def __init__(self):
        self.cpu = 0.0

    def wrap(self, fn):
        def timed(*args, **kw):
            t = time.process_time()
            try:
                return fn(*args, **kw)
            finally:
                self.cpu += time.process_time() - t
        return timed


def build_site(nodes: int, jobs: int, seed: int, clock: Clock) -> tuple[FakeServer, random.Random]:
    rng = random.Random(seed)
    server = FakeServer("torque", clock=clock)
    server.add_queue("batch")
    hosts = nodes // 2
    for h in range(hosts):
        for im in ("deb", "slc"):
            server.add_node(f"h{h:05d}-{im}-1", HOST_CORES, HOST_MB, properties=[f"host=h{h:05d}", f"image={im}"])
    running = jobs // 3
    k = 0
    for h in range(hosts):                      # fill each host's first domain (deb on even hosts)
        node = f"h{h:05d}-{'deb' if h % 2 == 0 else 'slc'}-1"
        free = HOST_CORES
        while k < running and free > 0:
            cores = min(free, rng.choice((1, 1, 2, 4, 8)))
            jid = submit(server, rng, "meta" if h % 2 == 0 else "egee", cores)
            server._do_runjob(jid, f"{node}:ppn={cores}" if cores > 1 else node)
            free -= cores
            k += 1
    for _ in range(jobs - k):
        submit(server, rng, rng.choice(("meta", "meta", "egee")), rng.choice((1, 1, 2, 4, 8)))
    server.calls.clear()
    return server, rng


def submit(server: FakeServer, rng: random.Random, vo: str, cores: int) -> str:
    return server.submit(f"u{rng.randrange(150)}", vo, cores=cores, memory=f"{cores * 1700}mb",
                         walltime=f"{rng.randrange(1, 49)}:00:00", interactive=rng.random() < 0.01)


def churn(server: FakeServer, rng: random.Random, jobs: int) -> None:
    running = [j for j, a in server.jobs.items() if a["job_state"] == "R"]
    for jid in rng.sample(running, min(len(running), jobs // 200)):
        server.finish(jid, keep=False)
    for _ in range(jobs // 200):
        submit(server, rng, rng.choice(("meta", "meta", "egee")), rng.choice((1, 1, 2, 4, 8)))


def one_size(nodes: int, jobs: int, cycles: int, seed: int, backend_name: str) -> dict:
    clock = Clock()
    server, rng = build_site(nodes, jobs, seed, clock)
    timed = Timed()
    server.serve = timed.wrap(server.serve)
    backend = make_backend(server, backend_name)
    lib = getattr(backend, "fake_lib", None)
    if lib is not None:
        lib._build = timed.wrap(lib._build)
    backend.connect(None)
    policy = parse_policy(POLICY, "bench-pbs.toml")
    sched = Scheduler(policy, store=UsageStore(":memory:"))
    adapter = Adapter(policy, PbsConfig(), backend, scheduler=sched, clock=clock)
    out = []
    for i in range(cycles + 1):
        if i:
            clock.t += 60
            churn(server, rng, jobs)
        calls = len(server.calls)
        timed.cpu = 0.0
        w0, c0 = time.perf_counter(), time.process_time()
        report = adapter.cycle()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        # the Scheduler's part: on_cycle, timed by the adapter's clock calls would be wall
        # time of the fake clock, so it is measured again here around the same call
        sched_cpu = report.seconds.get("decide_cpu", 0.0)
        adapter_cpu = cpu - timed.cpu - sched_cpu
        kinds = [c[0] for c in server.calls[calls:]]
        out.append({"cycle": i, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "server_s": round(timed.cpu, 3),
                    "scheduler_s": round(sched_cpu, 3), "adapter_s": round(adapter_cpu, 3),
                    "parsed_jobs": adapter.reader.parsed["jobs"], "parsed_nodes": adapter.reader.parsed["nodes"],
                    "actions": len(report.plan.actions), "done": report.count("done"),
                    "comments": kinds.count("alterjob"), "notes": kinds.count("manager"),
                    "adapter_parts_s": {k: round(v, 3) for k, v in report.seconds.items() if k.endswith("_cpu")}})
        print(f"{nodes}x{jobs} cycle {i}: {out[-1]}", file=sys.stderr)
    steady = out[1:]

    def summary(key):
        vals = [c[key] for c in steady]
        return {"median": round(statistics.median(vals), 3), "max": round(max(vals), 3)} if vals else {}

    med_a, med_s = summary("adapter_s").get("median", 0), summary("scheduler_s").get("median", 0)
    return {"nodes": nodes, "jobs": jobs, "backend": backend_name, "first": out[0],
            "steady": {k: summary(k) for k in ("adapter_s", "scheduler_s", "server_s", "cpu_s", "wall_s",
                                                  "parsed_jobs", "comments", "notes")},
            "adapter_share": round(med_a / (med_a + med_s), 3) if med_a + med_s else None,
            "cycles": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"NODESxJOBS,... (default {DEFAULT_SIZES})")
    ap.add_argument("--cycles", type=int, default=5, help="steady cycles per size (default 5)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--backend", choices=("cffi", "pbs_python"), default="cffi")
    ap.add_argument("--quick", action="store_true", help="CI: 100x1000, 3 cycles")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.cycles = "100x1000", 3
    cases = []
    for size in args.sizes.split(","):
        n, j = (int(x) for x in size.lower().split("x"))
        cases.append(one_size(n, j, args.cycles, args.seed, args.backend))
    json.dump({"python": platform.python_version(), "machine": platform.machine(), "cases": cases}, sys.stdout,
              indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
