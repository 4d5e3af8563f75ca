"""Benchmark of one scheduling cycle on state already in the engine, C core vs Python reference.

Synthetic clusters of 1k, 10k and 40k VM slots (hosts of 32 cores with 4 domains each: two
SLOT_ACTIVE, two SLOT_IDLE for Magrathea-style activation) and 1k, 10k and 100k pending
jobs (a mix of VOs and images, WNoDeS flavours 1/2/4/8 cores with 1.7 GB/core, three
classes, one-way and two-way per-domain caps, 60 fair-share entities). Before timing, the
cluster is filled by a real cycle and then 10 % of the running jobs end, so a cycle has
real work to place.

A *full cycle* is: the priority sort and matching of every pending job (``match`` with
``dry_run=True``, so every run sees the same state) and the preemption search
(``find_victims``, requeue and domain mode alternately) for the pending jobs of the top
class, at most PREEMPT_BUDGET of them, in priority order. ``delta_ms`` is the cost of
feeding one cycle's worth of changes, 1 % of the jobs: each change is a running job that
ends, a job started in its place, a job queued and a queued job cancelled. Every case runs in
a fresh subprocess, so ``peak_rss_mb`` (getrusage) belongs to that case alone.

Prints one JSON object to stdout. ``--quick``: the small cases only (CI); ``--all``: the
Python engine on every case too (slow).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PREEMPT_BUDGET = 100
SLOTS = (1_000, 10_000, 40_000)
JOBS = (1_000, 10_000, 100_000)
NOTES = ("Routing (choosing a job's queue, hence its allowed kinds and per-domain cap) happens "
         "once per job when it is submitted (on_submit), not per cycle, so it is not part of "
         "the engine or of this timing. Full cycle = priority sort + matching of all pending "
         "jobs (dry run) + preemption search for up to %d pending top-class jobs. State: "
         "cluster filled by a real cycle, then 10%% of running jobs ended. delta_ms = 1%% of "
         "the jobs as changes (end + start + queue + cancel each)." % PREEMPT_BUDGET)

FLAVORS = [(1, 1700), (2, 3500), (4, 7000), (8, 14000)]  # WNoDeS small .. extra-large
IMAGES = 6           # VO images; kinds 6 and 7 are images 0 and 1 on hosts with a feature
KINDS = 8
ENTITIES = 60
HOST_CORES, HOST_MEMORY = 32, 32 * 1740
NOW = 200_000.0
WEIGHTS = (1000.0, 100000.0, 10.0)  # fair share, class, age (hours)


def build(engine, n_slots: int, n_jobs: int, seed: int = 42):
    """Fill engine with the synthetic cluster; returns the bookkeeping the timing needs."""
    from vmsched.matching import SLOT_ACTIVE, SLOT_IDLE
    rng = random.Random(seed)
    hosts = n_slots // 4
    s = 0
    for h in range(hosts):
        engine.set_host(h, HOST_CORES, HOST_MEMORY, 2)
        kinds = rng.sample(range(KINDS), 4)
        for d in range(4):
            engine.add_slot(s, h, kinds[d], 16, 16 * 1740, SLOT_ACTIVE if d < 2 else SLOT_IDLE)
            s += 1
    engine.set_factors([rng.uniform(0.0, 2.0) for _ in range(ENTITIES)])
    specs: dict[int, tuple] = {}

    def new_job(h: int, submit: float) -> None:
        entity = rng.randrange(ENTITIES)
        image = entity % IMAGES
        kinds = [image] + ([image + IMAGES] if image < 2 else [])
        cores, mem = rng.choices(FLAVORS, weights=(50, 25, 15, 10))[0]
        cap = rng.choice((1, 2, 2))
        rank = rng.choices((0, 1, 2), weights=(80, 15, 5))[0]
        spec = (kinds, cores, mem, cap, rank, entity, submit)
        engine.add_job(h, *spec)
        specs[h] = spec

    # enough jobs to fill the cluster, a real cycle to start them, then 10 % of them end
    next_h = 0
    fill = n_slots  # at most 2 jobs per active slot, half the slots active
    for _ in range(fill):
        new_job(next_h, rng.uniform(0.0, NOW - 7200.0))
        next_h += 1
    res = engine.match(NOW - 3600.0, *WEIGHTS)
    running = [h for h, _ in res.placed]
    slot_of = dict(res.placed)
    for h, _ in res.pending:
        engine.remove_job(h)
        del specs[h]
    rng.shuffle(running)
    ended = running[: len(running) // 10]
    for h in ended:
        engine.remove_job(h)
        del specs[h]
        del slot_of[h]
    running = running[len(running) // 10:]
    pending = []
    for _ in range(n_jobs):
        new_job(next_h, rng.uniform(0.0, NOW))
        pending.append(next_h)
        next_h += 1
    return {"rng": rng, "specs": specs, "running": running, "slot_of": slot_of,
            "pending": pending, "next": next_h, "new_job": new_job}


def full_cycle(engine) -> dict:
    res = engine.match(NOW, *WEIGHTS, dry_run=True)
    searches = found = 0
    # the class weight dominates the priority, so the top class comes first among the
    # pending jobs: its first PREEMPT_BUDGET jobs are at the head of res.pending
    for h, _ in res.pending_head(PREEMPT_BUDGET):
        if engine._bench_rank[h] != 2:
            break
        v = engine.find_victims(h, 1 if searches % 2 == 0 else 2, NOW)
        searches += 1
        found += v is not None
    return {"result": res, "searches": searches, "victims_found": found}


def feed_changes(engine, st, n: int) -> None:
    """n change units: a running job ends, a job like it starts in its slot, a job is
    queued, a queued job is cancelled."""
    rng, specs = st["rng"], st["specs"]
    for _ in range(n):
        i = rng.randrange(len(st["running"]))
        r = st["running"][i]
        slot = st["slot_of"].pop(r)
        spec = specs.pop(r)
        engine.remove_job(r)
        h = st["next"]
        st["next"] += 1
        engine.add_job(h, *spec)
        specs[h] = spec
        engine.start_job(h, slot, NOW)
        st["running"][i] = h
        st["slot_of"][h] = slot
        st["new_job"](st["next"], NOW)
        st["pending"].append(st["next"])
        st["next"] += 1
        k = rng.randrange(len(st["pending"]))
        q = st["pending"][k]
        st["pending"][k] = st["pending"][-1]
        st["pending"].pop()
        engine.remove_job(q)
        specs.pop(q, None)


def run_case(n_slots: int, n_jobs: int, engine_name: str, runs: int) -> dict:
    """One case, in this process (the parent starts a fresh one per case)."""
    if engine_name == "c":
        from vmsched._core import CEngine
        engine = CEngine()
    else:
        from vmsched.matching import PyEngine
        engine = PyEngine()
    st = build(engine, n_slots, n_jobs)
    engine._bench_rank = {h: spec[4] for h, spec in st["specs"].items()}
    info = full_cycle(engine)  # warm-up (and the scratch arrays of the C core)
    info["placed"], info["pending"] = len(info["result"].placed), len(info["result"].pending)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        full_cycle(engine)
        times.append((time.perf_counter() - t0) * 1000.0)
    deltas = []
    n_changes = max(1, n_jobs // 100)
    for _ in range(max(3, runs // 2)):
        t0 = time.perf_counter()
        feed_changes(engine, st, n_changes)
        deltas.append((time.perf_counter() - t0) * 1000.0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"slots": n_slots, "jobs": n_jobs, "engine": engine_name,
            "median_ms": round(statistics.median(times), 3),
            "delta_ms": round(statistics.median(deltas), 3), "runs": runs,
            "peak_rss_mb": round(rss, 1), "placed": info["placed"], "pending": info["pending"],
            "preempt_searches": info["searches"]}


def spawn(n_slots: int, n_jobs: int, engine_name: str, runs: int) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--case", str(n_slots),
                          str(n_jobs), engine_name, str(runs)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Time a scheduling cycle, C core vs Python.")
    ap.add_argument("--quick", action="store_true", help="small cases only (CI, < 30 s)")
    ap.add_argument("--all", action="store_true", help="the Python engine on every case")
    ap.add_argument("--case", nargs=4, metavar=("SLOTS", "JOBS", "ENGINE", "RUNS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        s, j, e, r = args.case
        print(json.dumps(run_case(int(s), int(j), e, int(r))))
        return 0
    from vmsched import _core
    if not _core.AVAILABLE:
        print(f"bench_cycle: the C core is not built ({_core.load_error()})", file=sys.stderr)
        return 2

    if args.quick:
        plan = [(1_000, 1_000), (1_000, 10_000), (10_000, 1_000), (10_000, 10_000)]
        runs_c, runs_py = 15, 3
    else:
        plan = [(s, j) for s in SLOTS for j in JOBS]
        runs_c, runs_py = 21, 5
    cases = []
    for s, j in plan:
        print(f"bench_cycle: {s} slots x {j} jobs ...", file=sys.stderr, flush=True)
        cases.append(spawn(s, j, "c", runs_c))
        if args.all or (s <= 10_000 and j <= 10_000):
            cases.append(spawn(s, j, "python", runs_py if s * j <= 10 ** 8 else 3))
    result = {"cases": cases}
    by = {(c["slots"], c["jobs"], c["engine"]): c for c in cases}
    if (10_000, 10_000, "c") in by and (10_000, 10_000, "python") in by:
        result["speedup_10k_10k"] = round(by[(10_000, 10_000, "python")]["median_ms"] /
                                          by[(10_000, 10_000, "c")]["median_ms"], 1)
    else:
        result["speedup_10k_10k"] = None
    if not args.quick:
        # doubling: C at 20k slots and at 50k jobs, against 40k x 100k
        extra = [spawn(20_000, 100_000, "c", runs_c), spawn(40_000, 50_000, "c", runs_c)]
        cases.extend(extra)
        base = by[(40_000, 100_000, "c")]["median_ms"]
        result["doubling"] = {
            "slots_20k_to_40k": round(base / extra[0]["median_ms"], 2),
            "jobs_50k_to_100k": round(base / extra[1]["median_ms"], 2),
        }
    result["notes"] = NOTES
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
