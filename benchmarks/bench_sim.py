"""Replay a whole workload trace through the real Scheduler and time it.

    python benchmarks/bench_sim.py [--trace FILE] [--policy TOML] [--profile OUT.prof] [--quick]

Default: ../shared/data/traces/METACENTRUM-2009-2.swf.gz (relative to the repository root)
on vmsched/examples/metacentrum-sim.toml, a cycle at every event (arrival, end, boot done;
events at one instant share a cycle) and at every periodic tick that could change anything.
Prints one JSON object: {"trace", "jobs", "cycles", "wall_s", "jobs_per_s", "peak_rss_mb"}
(plus a few details after those keys). ``read_s`` is the first read of the trace (every job
mapped once, only counts kept); ``wall_s`` is the simulation, which reads the trace again as
it goes; ``cpu_s`` is the process CPU time of the simulation, which is what to compare on a
loaded machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_TRACE = ROOT.parent / "shared" / "data" / "traces" / "METACENTRUM-2009-2.swf.gz"
DEFAULT_POLICY = ROOT / "vmsched" / "examples" / "metacentrum-sim.toml"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=str(DEFAULT_TRACE))
    ap.add_argument("--policy", default=str(DEFAULT_POLICY))
    ap.add_argument("--hosts", default=None, help="host set instead of the policy's (see vmsched simulate --hosts)")
    ap.add_argument("--baseline", action="store_true", help="replay the static-partition baseline instead")
    ap.add_argument("--every-tick", action="store_true", help="also run periodic cycles after empty plans")
    ap.add_argument("--limit", type=int, default=None, help="replay only the first N jobs")
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke mode: the first 500 jobs of the bundled METACENTRUM-2009-2 slice")
    ap.add_argument("--profile", default=None, help="write a cProfile of the simulation to this file")
    ap.add_argument("--summary", default=None, help="also write the full report JSON to this file")
    args = ap.parse_args(argv)

    from vmsched.policyfile import load_policy
    from vmsched.sim.baseline import static_split
    from vmsched.sim.engine import prepare
    from vmsched.sim.report import summarize, write_json

    if args.quick:
        from vmsched.sim.swf import bundled_trace
        args.trace = str(bundled_trace("metacentrum-2009"))
        args.limit = args.limit or 500
    if not Path(args.trace).exists():
        print(f"bench_sim: {args.trace}: no such file", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    replay = prepare(load_policy(args.policy), args.trace, hosts=args.hosts, skip_bad=True, limit=args.limit)
    read_s = time.perf_counter() - t0
    split = static_split(replay.policy, replay.vos) if args.baseline else None
    policy = split.policy if split else replay.policy
    sim = replay.simulation(policy, job_map=split.job if split else None, every_tick=args.every_tick)
    t1 = time.perf_counter()
    c1 = time.process_time()
    if args.profile:
        import cProfile
        cProfile.runctx("sim.run()", globals(), {"sim": sim}, args.profile)
    else:
        sim.run()
    wall = time.perf_counter() - t1
    cpu = time.process_time() - c1
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    jobs = replay.trace_info["jobs"]
    out = {"trace": replay.trace_info["name"], "jobs": jobs, "cycles": sim.cycles, "wall_s": round(wall, 2),
           "jobs_per_s": round(jobs / wall, 1) if wall else None, "peak_rss_mb": round(rss_kb / 1024, 1),
           "cpu_s": round(cpu, 2), "read_s": round(read_s, 2), "engine": sim.sched.engine.name, "policy": policy.site,
           "ended": sim.ended, "never_ran": sim.never_count, "ticks_skipped": sim.ticks_skipped,
           "violations": sim.violation_count}
    if args.summary:
        s = summarize(sim, policy_path=args.policy, trace_info=replay.trace_info, hosts_desc=replay.hosts_desc,
                      assumptions=replay.assumptions, mapping_choices=replay.mapping_choices, wall_s=wall)
        write_json(s, Path(args.summary))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
