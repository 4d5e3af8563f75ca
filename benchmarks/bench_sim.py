"""Replay a whole workload trace through the real Scheduler; time it and bound its memory.

    python benchmarks/bench_sim.py [--trace FILE] [--policy TOML] [--profile OUT.prof] [--quick]
                                   [--max-rss-mb N] [--summary S.json]

Default: ../shared/data/traces/METACENTRUM-2009-2.swf.gz (relative to the repository root:
the full traces live beside the checkout, not in it; where that folder is absent the bundled
4,000-job slice of the same log is replayed instead, said on stderr) on
vmsched/examples/metacentrum-sim.toml, a cycle at every event (arrival, end, boot done;
events at one instant share a cycle) and at every periodic tick that could change anything.

Prints one JSON object: {"trace", "jobs", "cycles", "wall_s", "jobs_per_s", "peak_rss_mb"}
(plus details after those keys). ``read_s`` is the first read of the trace (mapping every
job once, keeping only counts); ``wall_s`` is the simulation, which reads the trace a second
time as it goes (a streaming replay holds a job only while it lives); ``total_s`` is both
plus setting up; ``cpu_s`` is the process CPU time of the simulation, which is what to
compare on a loaded machine.

Memory: ``peak_rss_mb`` is the process's peak resident size. The run fails (exit 1) when it
is above ``--max-rss-mb`` (default 100, the bound issue 17 set for METACENTRUM-2009-2;
0 turns the check off): the bound is checked here, on a real trace, rather than in a test.
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
MAX_RSS_MB = 100.0
DEFAULT_POLICY = ROOT / "vmsched" / "examples" / "metacentrum-sim.toml"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=None, help=f"SWF trace (default: {DEFAULT_TRACE}, else the bundled slice)")
    ap.add_argument("--policy", default=str(DEFAULT_POLICY))
    ap.add_argument("--hosts", default=None, help="host set instead of the policy's (see vmsched simulate --hosts)")
    ap.add_argument("--baseline", action="store_true", help="replay the static-partition baseline instead")
    ap.add_argument("--every-tick", action="store_true", help="also run periodic cycles after empty plans")
    ap.add_argument("--limit", type=int, default=None, help="replay only the first N jobs")
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke mode: the first 500 jobs of the bundled METACENTRUM-2009-2 slice")
    ap.add_argument("--profile", default=None, help="write a cProfile of the simulation to this file")
    ap.add_argument("--summary", default=None, help="also write the full report JSON to this file")
    ap.add_argument("--max-rss-mb", type=float, default=MAX_RSS_MB,
                    help=f"fail (exit 1) when the peak RSS is above this (default {MAX_RSS_MB:.0f}; 0: no check)")
    args = ap.parse_args(argv)

    from vmsched.policyfile import load_policy
    from vmsched.sim.baseline import static_split
    from vmsched.sim.engine import prepare
    from vmsched.sim.report import summarize, write_json

    from vmsched.sim.swf import bundled_trace
    if args.quick:
        args.trace = str(bundled_trace("metacentrum-2009"))
        args.limit = args.limit or 500
    elif args.trace is None:
        args.trace = str(DEFAULT_TRACE)
        if not DEFAULT_TRACE.exists():
            args.trace = str(bundled_trace("metacentrum-2009"))
            print(f"bench_sim: {DEFAULT_TRACE} not found (the full traces live beside the checkout, in "
                  f"../shared/data/traces); replaying the bundled slice {Path(args.trace).name} instead "
                  "(--trace FILE for another)", file=sys.stderr)
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
    setup_s = t1 - t0 - read_s
    c1 = time.process_time()
    if args.profile:
        import cProfile
        cProfile.runctx("sim.run()", globals(), {"sim": sim}, args.profile)
    else:
        sim.run()
    wall = time.perf_counter() - t1
    cpu = time.process_time() - c1
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    jobs = replay.trace_info["jobs"]
    out = {"trace": replay.trace_info["name"], "jobs": jobs, "cycles": sim.cycles, "wall_s": round(wall, 2),
           "jobs_per_s": round(jobs / wall, 1) if wall else None, "peak_rss_mb": round(rss_mb, 1),
           "cpu_s": round(cpu, 2), "read_s": round(read_s, 2), "total_s": round(read_s + setup_s + wall, 2),
           "max_rss_mb": args.max_rss_mb or None, "engine": sim.sched.engine.name, "policy": policy.site,
           "ended": sim.ended, "never_ran": sim.never_count, "ticks_skipped": sim.ticks_skipped,
           "violations": sim.violation_count}
    if args.summary:
        s = summarize(sim, policy_path=args.policy, trace_info=replay.trace_info, hosts_desc=replay.hosts_desc,
                      assumptions=replay.assumptions, mapping_choices=replay.mapping_choices, wall_s=wall)
        write_json(s, Path(args.summary))
    print(json.dumps(out))
    if args.max_rss_mb and rss_mb > args.max_rss_mb:
        print(f"bench_sim: peak RSS {rss_mb:.1f} MB is above the bound of {args.max_rss_mb:.0f} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
