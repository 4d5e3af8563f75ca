"""Benchmark of the whole scheduling cycle through the public API, at national-grid scale.

Why it exists: ``bench_cycle.py`` times the matching engine alone, on state already loaded
into it, and there the C core answers 100k jobs in milliseconds. A site never calls the
engine: it calls ``Scheduler.on_cycle(snapshot, now)`` (or feeds changes and calls
``cycle(now)``), and everything the Scheduler does in Python around the engine (syncing the
snapshot, fair share, share balance, preemption, pending reasons) was invisible to that
benchmark, while at a national grid's size one cycle took minutes and grew every cycle
(issue 9). This benchmark drives the Scheduler exactly as a site would and times that.

    python benchmarks/bench_site.py                       # 1000x10000, 3000x30000, 10000x100000
    python benchmarks/bench_site.py --sizes 1000x10000 --cycles 10 --profile
    python benchmarks/bench_site.py --quick               # CI: 100x1000, 3 cycles, seconds
    python benchmarks/bench_site.py --memory varied       # every job its own memory request
    python benchmarks/bench_site.py --tree /work/base     # time another checkout's vmsched

The site (deterministic from ``--seed``): HOSTSxJOBS is hosts of 32 cores and 55,680 MB,
each with 4 domains of 16 cores (2 of ``debian-meta`` for the local VO, 2 of ``slc-egee``
for the grid VOs), at most 2 active (one of each image active, the others occupied). 90 % of
the active domains are full of running work, the rest idle; JOBS jobs are queued on top of
that in one execution queue (1-8 cores, 1-1.7 GB per core in round sizes, 1-48 h), from two
VOs with shares (meta 60, egee 40; under them 7 groups with shares and 150 users), 1 %
interactive and about 0.3 % from a privileged user: the queued cores alone exceed the
cluster's, so most jobs pend. The policy is MetaCenter's (``vmsched/examples/metacenter.toml``)
plus share preemption: fair share with a share tree and image shares, priority weights,
classes normal < privileged < interactive, suspend-domain preemption.

Modes, per size, each size in a fresh subprocess (so ``peak_rss_mb``, getrusage's ru_maxrss,
belongs to that size alone):

* ``first``: the first ``on_cycle(snapshot, now)`` of a fresh Scheduler (a restart at full load).
* ``snapshot``: after the first cycle, ``--cycles`` steady cycles. Between two cycles the site
  moves on: the plan is applied (``apply_plan`` below), then churn: JOBS/200 running jobs end
  (``on_job_end`` is called for each, and they leave the snapshot) and JOBS/200 new jobs are
  queued, so 1 % of the jobs change besides what the plan itself changed. Then
  ``on_cycle(snapshot, now)``, 60 s later.
* ``incremental``: a second fresh Scheduler (its first cycle is reported too), then the same
  steady churn fed as a hook that knows what changed would: ``set_domain``/``set_job`` for
  every domain and job the plan or the churn touched, ``on_job_end`` for ended jobs, then
  ``cycle(now)``.

The first steady cycle is part of each steady series on purpose: it follows a cycle that
started and preempted far more than a steady one, and its cost is a site's too.
``view_mismatches`` counts jobs and domains the Scheduler, right after a plan, sees in
another state than the site after ``vmsched.plan.apply``: 0 says the Scheduler mirrors its
own plan as the one definition of the actions carries it out.

``total_ms`` of a steady cycle is all the API calls between two plans (``feed_ms``: the
``on_job_end``/``set_*`` calls; ``cycle_ms``: ``on_cycle`` or ``cycle``). Reported per mode:
median, min, max, first and last (a cycle that grows from cycle to cycle shows as last >>
first), every cycle's total, its process CPU time (``cpu_ms``: what to compare when the
machine is shared) and the garbage collector's part, and per size pair the ratio of medians
and its per-doubling form, ratio ** (1 / log2(host ratio)) (the target is <= 2.2 per doubling).

``--profile``: one extra steady cycle of each steady mode under cProfile. ``c_share`` is the
time inside the C engine's wrapper: for every function defined in ``vmsched/_core.py`` (the
CEngine methods, which call the compiled lib, and the lazy match result), the cumulative time
of its calls from outside that file, summed, over the profile's total time. cProfile's
per-call overhead inflates the Python side, so the true C share is somewhat higher.

``--timeout-first S`` stops a case whose first cycle takes longer than S seconds (it is
reported as ``exceeded``; the interrupt lands when the current C call returns), and
``--budget S`` ends a case's steady cycles early once the case has run S seconds.

Output: one JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import platform
import pstats
import random
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter

import attrs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_SIZES = "1000x10000,3000x30000,10000x100000"
NOW = 1_700_000_000.0
INTERVAL = 60.0
HOST_CORES, HOST_MEMORY = 32, 32 * 1740
DOMAIN_CORES, DOMAIN_MEMORY = 16, 16 * 1740
FULL_FRACTION = 0.9          # active domains full of running work at the start; the rest idle

POLICY_TEMPLATE = """
[site]
name = "bench-site"

[scheduler]
cycle_interval = "60s"
default_queue = "normal"

[priority]
fairshare = 10000
class = 1000
age = 10

[fairshare]
half_life = "7d"
usage = "core-seconds"
image_shares = true

{shares}
[preemption]
classes = ["normal", "privileged", "interactive"]
default_class = "normal"
mode = "suspend-domain"
resume_time = "10s"
suspend_time = "5s"
share_after = "2m"

[[preemption.rule]]
interactive = true
class = "interactive"

[[preemption.rule]]
user = "ops"
class = "privileged"

[lifecycle]
dynamic_boot = false
idle_shutdown = "365d"

[[flavors]]
name = "wn16"
cores = 16
memory = "27840mb"

[[images]]
name = "debian-meta"
vos = ["meta"]
boot_time = "90s"

[[images]]
name = "slc-egee"
vos = ["egee", "atlas", "cms", "alice", "lhcb"]
boot_time = "120s"

[[queues]]
name = "normal"
per_domain_jobs = 8
resources_max = { walltime = "720:00:00" }
"""

VO_SHARES = {"meta": 60, "egee": 40}
# (vo, group, its share within the VO, users in it, its part of the submitted jobs)
GROUPS = (("meta", "ncbr", 50, 40, 0.25), ("meta", "cerit", 30, 25, 0.20), ("meta", "fzu", 20, 15, 0.10),
          ("egee", "atlas", 40, 25, 0.18), ("egee", "cms", 30, 20, 0.14), ("egee", "alice", 20, 15, 0.08),
          ("egee", "lhcb", 10, 10, 0.05))
POLICY_TOML = POLICY_TEMPLATE.replace("{shares}", "".join(
    f'[[fairshare.share]]\npath = "{path}"\nshare = {share}\n'
    for path, share in list(VO_SHARES.items()) + [(f"{g[0]}/{g[1]}", g[2]) for g in GROUPS]))
IMAGE_OF_VO = {"meta": "debian-meta", "egee": "slc-egee"}
CORES = (1, 2, 4, 8)
CORE_WEIGHTS = (15, 20, 35, 30)
# Users ask for memory in round sizes (1gb, 1700mb a core, ...), copied from script to script,
# so many jobs share a shape, which a cycle decides once for all jobs alike: the bundled
# wagap-2013 slice has 46 (cores, memory) pairs in 2000 jobs. ``--memory varied`` gives every
# job a request of its own instead (0.5-1 x 1740 MB a core, to the MB), the worst case for
# anything decided per shape.
MEMORY_PER_CORE = (1024, 1536, 1700, 1740)


def log(text: str) -> None:
    print(f"bench_site: {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the site

class Site:
    """What the batch server knows: hosts, domains and jobs, the ground truth the
    benchmark keeps and builds snapshots from."""

    def __init__(self, n_hosts: int, n_jobs: int, seed: int, memory: str = "round"):
        from vmsched.model import Domain, DomainState, Host, JobState
        self.rng = random.Random(seed)
        self.memory = memory
        self.now = NOW
        self.next_id = 0
        self.hosts = []
        self.domains: dict = {}
        self.domain_jobs: dict = {}
        self.jobs: dict = {}
        for i in range(n_hosts):
            h = Host(f"node{i:05d}", HOST_CORES, HOST_MEMORY, max_active=2, max_domains=4,
                     cached_images=frozenset(IMAGE_OF_VO.values()))
            self.hosts.append(h)
            for image in ("debian-meta", "slc-egee"):
                for k in (1, 2):
                    state = DomainState.FREE if k == 1 else DomainState.OCCUPIED
                    d = Domain(f"{h.name}-{image}-{k}", h.name, image, "wn16", state, DOMAIN_CORES,
                               DOMAIN_MEMORY, since=NOW - 86400.0)
                    self.domains[d.name] = d
                    self.domain_jobs[d.name] = set()
        # running work: fill 90 % of the active domains with jobs of their image
        vo_of_image = {v: k for k, v in IMAGE_OF_VO.items()}
        for name in sorted(self.domains):
            d = self.domains[name]
            if d.state is not DomainState.FREE or self.rng.random() >= FULL_FRACTION:
                continue
            used = 0
            while len(self.domain_jobs[name]) < 8:
                job = self.new_job(NOW - self.rng.uniform(3600.0, 2 * 86400.0), vo=vo_of_image[d.image],
                                   interactive_ok=False)
                if used + job.cores > d.cores:
                    break
                start = NOW - self.rng.uniform(0.0, 0.9 * job.walltime_s)
                job = attrs.evolve(job, state=JobState.RUNNING, domain=name,
                                   start_time=max(start, job.submit_time))
                self.jobs[job.id] = job
                self.domain_jobs[name].add(job.id)
                used += job.cores
            if self.domain_jobs[name]:
                self.domains[name] = attrs.evolve(d, state=DomainState.RUNNING)
        for _ in range(n_jobs):
            job = self.new_job(NOW - self.rng.uniform(0.0, 86400.0))
            self.jobs[job.id] = job

    def new_job(self, submit: float, vo: str | None = None, interactive_ok: bool = True):
        from vmsched.model import Job
        rng = self.rng
        groups = [g for g in GROUPS if vo is None or g[0] == vo]
        v, group, _share, users, _part = rng.choices(groups, weights=[g[4] for g in groups])[0]
        user = f"{group}{rng.randrange(users):02d}"
        interactive = interactive_ok and rng.random() < 0.01
        if interactive_ok and not interactive and v == "meta" and rng.random() < 0.005:
            user = "ops"
        cores = 1 if interactive else rng.choices(CORES, weights=CORE_WEIGHTS)[0]
        if self.memory == "round":
            memory = cores * rng.choice(MEMORY_PER_CORE)
        else:
            memory = int(cores * 1740 * rng.uniform(0.5, 1.0))
        walltime = 3600 if interactive else rng.choice((1, 2, 4, 8, 12, 24, 48)) * 3600
        self.next_id += 1
        return Job(f"{self.next_id}.pbs", user, group, v, "normal", cores, memory, walltime, submit,
                   interactive=interactive)

    def snapshot(self):
        from vmsched.model import Snapshot
        return Snapshot(self.now, self.hosts, self.domains.values(), self.jobs.values())

    def counts(self) -> dict:
        by = Counter(j.state.value for j in self.jobs.values())
        return {"queued": by.get("Q", 0), "running": by.get("R", 0), "suspended": by.get("S", 0)}

    # -- carrying out a plan -------------------------------------------------------------
    def apply_plan(self, plan) -> tuple[set, set]:
        """What the server does for each action, at once (boot and shutdown delays are left
        to ``churn``), by the one definition in ``vmsched.plan.apply``; returns the domains
        and jobs it changed, for the incremental feed (apply keeps the very objects it did
        not change)."""
        from vmsched.model import JobState
        from vmsched.plan import apply
        after = apply(self.snapshot(), plan)
        touched_d = {d.name for d in after.domains if self.domains.get(d.name) is not d}
        touched_j = {j.id for j in after.jobs if self.jobs.get(j.id) is not j}
        for jid in touched_j:
            old = self.jobs.get(jid)
            if old is not None and old.domain in self.domain_jobs:
                self.domain_jobs[old.domain].discard(jid)
        self.domains = {d.name: d for d in after.domains}
        self.jobs = {j.id: j for j in after.jobs}
        for name in touched_d:
            self.domain_jobs.setdefault(name, set())
        for jid in touched_j:
            job = self.jobs[jid]
            if job.domain is not None and job.state in (JobState.RUNNING, JobState.SUSPENDED):
                self.domain_jobs[job.domain].add(jid)
        return touched_d, touched_j

    # -- the site moving on between cycles --------------------------------------------------
    def churn(self, n: int) -> tuple[list, list, set, list]:
        """The next cycle's instant: boots and shutdowns under way finish, ``n`` running jobs
        end and ``n`` new ones are queued. Returns (ended jobs with their walltime, new jobs,
        changed domains, removed domains)."""
        from vmsched.model import DomainState, JobState
        ev = attrs.evolve
        self.now += INTERVAL
        now = self.now
        touched_d, removed_d = set(), []
        for name in sorted(self.domains):
            d = self.domains[name]
            if d.state is DomainState.BOOTING:
                self.domains[name] = ev(d, state=DomainState.RUNNING if self.domain_jobs[name] else DomainState.FREE,
                                        since=now)
                touched_d.add(name)
            elif d.state is DomainState.SHUTTING_DOWN and not self.domain_jobs[name]:
                del self.domains[name], self.domain_jobs[name]
                removed_d.append(name)
        running = sorted((j for j in self.jobs.values() if j.state is JobState.RUNNING),
                         key=lambda j: int(j.id.split(".")[0]))
        ended = []
        for job in self.rng.sample(running, min(n, len(running))):
            del self.jobs[job.id]
            inside = self.domain_jobs[job.domain]
            inside.discard(job.id)
            d = self.domains[job.domain]
            if not inside and d.state is DomainState.RUNNING:
                self.domains[d.name] = ev(d, state=DomainState.FREE, since=now)
                touched_d.add(d.name)
            ended.append((job, max(0.0, now - job.start_time)))
        new = []
        for _ in range(n):
            job = self.new_job(now)
            self.jobs[job.id] = job
            new.append(job)
        return ended, new, touched_d, removed_d

    def mismatches(self, sched) -> int:
        """Jobs and domains whose state the Scheduler sees differently from the site, right
        after a plan was applied: 0 when ``vmsched.plan.apply`` agrees with the Scheduler's
        own mirror of its plan."""
        bad = 0
        for jid, job in self.jobs.items():
            seen = sched.jobs.get(jid)
            if seen is None or seen.state is not job.state or seen.domain != job.domain:
                bad += 1
        from vmsched.model import DomainState
        for name, d in self.domains.items():
            seen = sched.domains.get(name)
            state = None if seen is None else seen.state
            if state is DomainState.FREE and sched.domain_jobs.get(name):
                state = DomainState.RUNNING    # the Scheduler settles this at its next sync
            if state is not d.state:
                bad += 1
        return bad


# --------------------------------------------------------------------------- timing

class Exceeded(BaseException):
    """Raised by the first cycle's alarm; a BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` on the way (a plugin guard, an engine fallback) can swallow it."""


class GcClock:
    """Time spent in the garbage collector, which runs inside whatever call allocates: with
    millions of live model objects a full collection lands in some cycle and costs seconds,
    which would otherwise read as that cycle's own cost."""

    def __init__(self):
        self.total = 0.0
        self._began = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase, _info):
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._began


def _alarm(_signum, _frame):
    raise Exceeded()


def summary(values: list) -> dict:
    if not values:
        return {"median_ms": None}
    return {"median_ms": round(statistics.median(values), 1), "min_ms": round(min(values), 1),
            "max_ms": round(max(values), 1), "first_ms": round(values[0], 1), "last_ms": round(values[-1], 1)}


def c_share(prof: cProfile.Profile) -> tuple[float, list]:
    """(fraction of the profiled time inside vmsched/_core.py's functions, top 10 by cumtime)."""
    st = pstats.Stats(prof)
    core = os.path.join("vmsched", "_core.py")
    inside = 0.0
    for func, (_cc, _nc, _tt, _ct, callers) in st.stats.items():
        if func[0].endswith(core):
            inside += sum(v[3] for caller, v in callers.items() if not caller[0].endswith(core))
    total = st.total_tt
    top = sorted(st.stats.items(), key=lambda kv: -kv[1][3])[:10]
    rows = [{"function": f"{os.path.relpath(f[0], ROOT) if f[0].startswith('/') else f[0]}:{f[1]}({f[2]})",
             "cumtime_s": round(v[3], 3), "tottime_s": round(v[2], 3), "calls": v[1]} for f, v in top]
    return (inside / total if total else 0.0), rows


def run_case(n_hosts: int, n_jobs: int, cycles: int, seed: int, profile: bool, timeout_first: float | None,
             budget: float | None, memory: str = "round") -> dict:
    """One size, in this process: the three modes, one after the other."""
    from vmsched.cycle import Scheduler
    from vmsched.policyfile import parse_policy
    policy = parse_policy(POLICY_TOML, "bench_site.toml")
    started = time.perf_counter()
    out = {"hosts": n_hosts, "jobs": n_jobs, "size": f"{n_hosts}x{n_jobs}", "modes": {}}
    n_churn = max(1, n_jobs // 200)
    out["churn_per_cycle"] = {"ended": n_churn, "submitted": n_churn}
    signal.signal(signal.SIGALRM, _alarm)
    gc_clock = GcClock()

    for mode in ("snapshot", "incremental"):
        t0 = time.perf_counter()
        site = Site(n_hosts, n_jobs, seed, memory)
        build_s = time.perf_counter() - t0
        out.setdefault("site", {"domains": len(site.domains), "cluster_cores": n_hosts * HOST_CORES,
                                "queued_cores": sum(j.cores for j in site.jobs.values() if j.state.value == "Q"),
                                "memory": memory,
                                "queued_shapes": len({(j.vo, j.group, j.cores, j.memory_mb, j.interactive,
                                                       j.user == "ops") for j in site.jobs.values()
                                                      if j.state.value == "Q"}),
                                **site.counts(), "build_s": round(build_s, 2)})
        sched = Scheduler(policy)
        out["engine"] = sched.engine.name
        snap = site.snapshot()
        log(f"{n_hosts}x{n_jobs} {mode}: first cycle ...")
        if timeout_first:
            signal.setitimer(signal.ITIMER_REAL, timeout_first)
        gc0 = gc_clock.total
        try:
            c0 = time.process_time()
            t0 = time.perf_counter()
            plan = sched.on_cycle(snap, site.now)
            first_ms = (time.perf_counter() - t0) * 1000.0
            first_cpu_ms = (time.process_time() - c0) * 1000.0
        except Exceeded:
            log(f"{n_hosts}x{n_jobs} {mode}: first cycle exceeded {timeout_first} s")
            out["modes"]["first" if mode == "snapshot" else mode] = {"exceeded_s": timeout_first}
            break
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        snap = None   # let the first snapshot go before the steady cycles build theirs
        first = {"ms": round(first_ms, 1), "cpu_ms": round(first_cpu_ms, 1), "gc_ms": round((gc_clock.total - gc0) * 1000.0, 1),
                 "actions": dict(Counter(a.verb for a in plan.actions)), "pending": len(plan.pending)}
        if mode == "snapshot":
            out["modes"]["first"] = first
        log(f"{n_hosts}x{n_jobs} {mode}: first cycle {first_ms / 1000.0:.1f} s")

        totals, feeds, cores, gcs, cpus, actions, mismatch, runs = [], [], [], [], [], Counter(), 0, []
        n_cycles = cycles + (1 if profile else 0)
        for i in range(n_cycles):
            if budget and time.perf_counter() - started > budget and i < cycles:
                log(f"{n_hosts}x{n_jobs} {mode}: budget of {budget} s spent after {i} cycles")
                break
            touched_d, touched_j = site.apply_plan(plan)
            mismatch += site.mismatches(sched)
            ended, new, churned_d, removed_d = site.churn(n_churn)
            # built before the clock starts: reading qstat is the site's cost, not the Scheduler's
            snap = site.snapshot() if mode == "snapshot" else None
            prof = cProfile.Profile() if i == cycles else None
            if prof:
                prof.enable()
            gc0 = gc_clock.total
            c0 = time.process_time()
            t0 = time.perf_counter()
            if mode == "snapshot":
                for job, walltime in ended:
                    sched.on_job_end(job, walltime, now=site.now)
                t1 = time.perf_counter()
                plan = sched.on_cycle(snap, site.now)
            else:
                for name in removed_d:
                    sched.remove_domain(name)
                for name in sorted(touched_d | churned_d):
                    if name in site.domains:
                        sched.set_domain(site.domains[name])
                for jid in sorted(touched_j):
                    if jid in site.jobs:
                        sched.set_job(site.jobs[jid])
                for job, walltime in ended:
                    sched.on_job_end(job, walltime, now=site.now)
                for job in new:
                    sched.set_job(job)
                t1 = time.perf_counter()
                plan = sched.cycle(site.now)
            t2 = time.perf_counter()
            c2 = time.process_time()
            if prof:
                prof.disable()
                share, top = c_share(prof)
                out["modes"][mode + "_profile"] = {"c_share": round(share, 3),
                                                   "profiled_ms": round((t2 - t0) * 1000, 1), "top_cumtime": top}
                continue
            totals.append((t2 - t0) * 1000.0)
            feeds.append((t1 - t0) * 1000.0)
            cores.append((t2 - t1) * 1000.0)
            gcs.append((gc_clock.total - gc0) * 1000.0)
            cpus.append((c2 - c0) * 1000.0)
            actions.update(a.verb for a in plan.actions)
            runs.append(sum(1 for a in plan.actions if a.verb == "run"))
            log(f"{n_hosts}x{n_jobs} {mode}: cycle {i + 1}/{cycles} {totals[-1] / 1000.0:.2f} s "
                f"(gc {gcs[-1] / 1000.0:.2f} s; {runs[-1]} started, {len(plan.pending)} pending)")
        res = summary(totals)
        res.update({"cycles": len(totals), "total_ms_each": [round(t, 1) for t in totals],
                    "gc_ms_each": [round(t, 1) for t in gcs], "cpu_ms_each": [round(t, 1) for t in cpus],
                    "cpu_median_ms": summary(cpus)["median_ms"], "feed_median_ms": summary(feeds)["median_ms"],
                    "cycle_median_ms": summary(cores)["median_ms"], "started_per_cycle": runs,
                    "actions": dict(actions), "pending_last": len(plan.pending), "view_mismatches": mismatch,
                    "site_after": site.counts()})
        if mode == "incremental":
            res["fresh_first_cycle_ms"] = first["ms"]   # a second sample of the first cycle
        out["modes"][mode] = res
        sched = site = plan = snap = None
        gc.collect()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    out["case_s"] = round(time.perf_counter() - started, 1)
    return out


# --------------------------------------------------------------------------- the parent

def spawn(tree: str, n_hosts: int, n_jobs: int, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--tree", tree, "--case", f"{n_hosts}x{n_jobs}",
           "--cycles", str(args.cycles), "--seed", str(args.seed), "--memory", args.memory]
    if args.profile:
        cmd.append("--profile")
    if args.timeout_first:
        cmd += ["--timeout-first", str(args.timeout_first)]
    if args.budget:
        cmd += ["--budget", str(args.budget)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        return {"hosts": n_hosts, "jobs": n_jobs, "size": f"{n_hosts}x{n_jobs}", "error": f"exit {out.returncode}"}
    return json.loads(out.stdout)


def doubling(cases: list) -> list:
    """Per mode, for consecutive sizes: ratio of medians and that ratio per doubling of hosts,
    in wall time and in CPU time (the one to compare on a shared machine)."""
    rows = []
    for a, b in zip(cases, cases[1:]):
        steps = math.log2(b["hosts"] / a["hosts"])
        for mode, wall, cpu in (("first", "ms", "cpu_ms"), ("snapshot", "median_ms", "cpu_median_ms"),
                                ("incremental", "median_ms", "cpu_median_ms")):
            row = {"from": a["size"], "to": b["size"], "mode": mode}
            for key, name in ((wall, ""), (cpu, "cpu_")):
                x = a.get("modes", {}).get(mode, {}).get(key)
                y = b.get("modes", {}).get(mode, {}).get(key)
                if x and y and steps > 0:
                    row[name + "ratio"] = round(y / x, 2)
                    row[name + "per_doubling"] = round((y / x) ** (1.0 / steps), 2)
            if len(row) > 3:
                rows.append(row)
    return rows


def git_commit(tree: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def parse_sizes(text: str) -> list:
    sizes = []
    for part in text.split(","):
        h, _, j = part.strip().partition("x")
        if not h.isdigit() or not j.isdigit() or int(h) < 1 or int(j) < 1:
            raise SystemExit(f"bench_site: --sizes: expected HOSTSxJOBS like 1000x10000, got {part!r}")
        sizes.append((int(h), int(j)))
    return sizes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"HOSTSxQUEUED,... (default {DEFAULT_SIZES})")
    ap.add_argument("--cycles", type=int, default=10, help="steady cycles per mode (default 10)")
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--memory", choices=("round", "varied"), default="round",
                    help="jobs' memory requests: round sizes (default) or every job its own")
    ap.add_argument("--profile", action="store_true", help="one extra cycle per steady mode under cProfile")
    ap.add_argument("--timeout-first", type=float, default=None, metavar="S",
                    help="give up a size whose first cycle takes longer than S seconds")
    ap.add_argument("--budget", type=float, default=None, metavar="S",
                    help="stop a size's steady cycles once it has run S seconds")
    ap.add_argument("--quick", action="store_true", help="CI: 100x1000, 3 cycles, with --profile")
    ap.add_argument("--tree", default=ROOT, help="the vmsched checkout to time (default: this one)")
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    tree = os.path.abspath(args.tree)
    sys.path.insert(0, tree)

    if args.case:
        (h, j), = parse_sizes(args.case)
        print(json.dumps(run_case(h, j, args.cycles, args.seed, args.profile, args.timeout_first, args.budget,
                                  args.memory)))
        return 0
    if args.quick:
        args.sizes, args.cycles, args.profile = "100x1000", 3, True
    from vmsched import _core
    if not _core.AVAILABLE:
        log(f"the C core is not built in {tree} ({_core.load_error()}); timing the Python engine")
    cases = []
    for h, j in parse_sizes(args.sizes):
        log(f"{h} hosts x {j} queued jobs, fresh process ...")
        cases.append(spawn(tree, h, j, args))
    result = {
        "benchmark": "bench_site",
        "tree": tree, "commit": git_commit(tree),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]},
        "engine": next((c.get("engine") for c in cases if c.get("engine")), None),
        "cycles": args.cycles, "seed": args.seed, "memory": args.memory, "cases": cases, "doubling": doubling(cases),
        "notes": "times in ms of the public API calls only (snapshot building and plan applying are the "
                 "site's and not timed); steady total = feed (on_job_end/set_*) + cycle (on_cycle/cycle); "
                 "churn per cycle: JOBS/200 running jobs end and JOBS/200 are queued; c_share: see the "
                 "docstring; per_doubling = ratio ** (1/log2(host ratio))",
    }
    print(json.dumps(result, indent=1))
    return 0 if all("error" not in c for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
