"""``vmsched simulate`` and ``vmsched compare``: replay a workload trace against policies.

``vmsched simulate`` with no arguments replays the bundled METACENTRUM-2009-2 slice on
the bundled example policy, prints the summary and writes ``./vmsched-report/``
(``summary.json``, ``utilisation.png``, ``share.png``, ``waits.png``).
"""

from __future__ import annotations

import sys
import time
from importlib import resources
from pathlib import Path

__all__ = ["BadInput", "add_commands", "cmd_simulate", "cmd_compare"]

BUNDLED_POLICY = "metacentrum-sim.toml"
BUNDLED_TRACE = "metacentrum-2009"


class BadInput(Exception):
    """Bad input named on the command line: each line is one problem (``FILE: what``); the
    ``vmsched`` command prints them and exits 2."""

    def __init__(self, lines):
        super().__init__(*lines)
        self.lines = list(lines)


def _bad(lines):
    return BadInput(lines)


def _example(name: str) -> Path:
    return Path(str(resources.files("vmsched") / "examples" / name))


def _trace_path(spec: str) -> Path:
    from vmsched.sim.swf import bundled_trace
    if spec.startswith("bundled:"):
        try:
            return bundled_trace(spec[len("bundled:"):])
        except KeyError as e:
            raise _bad([f"--trace {spec}: {e.args[0]}"]) from None
    p = Path(spec)
    if not p.exists():
        raise _bad([f"{spec}: no such file (expected an SWF trace, plain or gzip, or bundled:metacentrum-2009 / "
                    "bundled:wagap-2013)"])
    if p.is_dir():
        raise _bad([f"{spec}: is a directory, expected an SWF trace file"])
    return p


def _outdir(spec: str) -> Path:
    out = Path(spec)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".vmsched-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise _bad([f"{spec}: cannot write the report there: {e.strerror or e}"]) from None
    return out


class _Progress:
    """tqdm on stderr, only when stderr is a terminal or --progress was given."""

    def __init__(self, total: int, label: str, enabled: bool | None):
        self.bar = None
        if enabled is False or (enabled is None and not sys.stderr.isatty()):
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, desc=label, unit="job", file=sys.stderr, leave=False, mininterval=0.5)

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _load(path: str):
    from vmsched.policyfile import load_policy
    return load_policy(path)


class SimulationFailed(Exception):
    pass


def _run(replay, policy, args, label, split=None):
    """One replay under ``policy`` (or, given a static ``split``, under its twin)."""
    from vmsched.sim.engine import SimulationError
    from vmsched.sim.report import summarize
    if split is not None:
        policy = split.policy
    prog = _Progress(replay.trace_info["jobs"], label, args.progress)
    t = time.perf_counter()
    try:
        sim = replay.simulation(policy, job_map=split.job if split is not None else None, check=args.check,
                                every_tick=args.every_tick, on_progress=prog)
        sim.run()
    except SimulationError as e:
        raise SimulationFailed(f"{policy.source}: simulation stopped: {e}") from e
    finally:
        prog.close()
    wall = time.perf_counter() - t
    summary = summarize(sim, policy_path=str(sim.policy.source), trace_info=replay.trace_info,
                        hosts_desc=replay.hosts_desc, assumptions=replay.assumptions,
                        mapping_choices=replay.mapping_choices, wall_s=wall)
    if split is not None:
        summary["baseline"] = split.report()
    return sim, summary


def _guard(fn):
    """A scheduler failure mid-replay is a bug, not bad input: one line, exit 1."""
    def wrapped(args) -> int:
        try:
            return fn(args)
        except SimulationFailed as e:
            print(f"vmsched: {e}", file=sys.stderr)
            return 1
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def _plots(fn, *a):
    try:
        return fn(*a)
    except ImportError as e:
        print(f"vmsched: plots skipped: {e.name or 'matplotlib'} is not installed (pip install 'vmsched[sim]')",
              file=sys.stderr)
        return []


@_guard
def cmd_simulate(args) -> int:
    from vmsched.sim.baseline import static_split
    from vmsched.sim.engine import prepare
    from vmsched.sim.report import format_summary, plot_report, write_json
    if args.policy is None:
        policy_path = _example(BUNDLED_POLICY)
        trace = _trace_path(args.trace or f"bundled:{BUNDLED_TRACE}")
    else:
        policy_path = Path(args.policy)
        if args.trace is None:
            raise _bad([f"{args.policy}: give the trace to replay with --trace FILE (or bundled:metacentrum-2009, "
                        "bundled:wagap-2013); with no arguments at all, simulate runs the bundled example"])
        trace = _trace_path(args.trace)
    out = _outdir(args.out)
    policy = _load(str(policy_path))
    replay = prepare(policy, trace, hosts=args.hosts, skip_bad=args.skip_bad)
    split = static_split(replay.policy, replay.vos) if args.baseline else None
    sim, summary = _run(replay, replay.policy, args, "simulate", split)
    summary["policy"]["path"] = str(policy_path) + (" [static baseline]" if args.baseline else "")
    write_json(summary, out / "summary.json")
    files = [out / "summary.json"]
    if not args.no_plots:
        files += _plots(plot_report, summary, sim, out)
    if not args.quiet:
        print(format_summary(summary))
        print(f"\n  report: {', '.join(str(f) for f in files)}")
    return 0


@_guard
def cmd_compare(args) -> int:
    from vmsched.sim.baseline import static_split
    from vmsched.sim.engine import prepare
    from vmsched.sim.report import format_compare, plot_compare, write_json
    trace = _trace_path(args.trace)
    out = _outdir(args.out)
    pa = _load(args.a)
    replay_a = prepare(pa, trace, hosts=args.hosts, skip_bad=args.skip_bad)
    split = None
    if args.b is None or args.b == "static":
        replay_b = replay_a
        split = static_split(replay_a.policy, replay_a.vos)
        label_b = f"{args.a} [static baseline]"
    else:
        replay_b = prepare(_load(args.b), trace, hosts=args.hosts, skip_bad=args.skip_bad)
        label_b = args.b
    sim_a, sa = _run(replay_a, replay_a.policy, args, "A")
    sa["policy"]["path"] = args.a
    if split is not None and split.cannot_differ:
        # a split of one VO is the dynamic run's hosts again: say so, not two equal columns
        sim_b, sb = None, None
        sa["baseline_not_run"] = split.cannot_differ
    else:
        sim_b, sb = _run(replay_b, replay_b.policy, args, "B", split)
        sb["policy"]["path"] = label_b
    write_json({"a": sa, "b": sb}, out / "compare.json")
    files = [out / "compare.json"]
    if not args.no_plots and sb is not None:
        files += _plots(plot_compare, sa, sim_a, sb, sim_b, out)
    if not args.quiet:
        print(format_compare(sa, sb))
        print(f"\n  report: {', '.join(str(f) for f in files)}")
    return 0


def _common(p) -> None:
    p.add_argument("--hosts", help="host set instead of the policy's: an Alea .machines file, bundled:wagap-2013, "
                                   "or COUNTxCORES[:MEMORY][,...] like 96x8:16gb")
    p.add_argument("--skip-bad", action="store_true", help="skip (and count) bad trace lines instead of stopping")
    p.add_argument("--no-plots", action="store_true", help="write the JSON only")
    p.add_argument("--progress", action="store_true", default=None,
                   help="show a progress bar even when stderr is not a terminal")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--every-tick", action="store_true",
                   help="run every periodic cycle, even when nothing happened since an empty plan")
    p.add_argument("--check", action="store_true", help="verify host capacity after every step (slower)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing, write the report only")


def add_commands(sub) -> None:
    s = sub.add_parser("simulate", help="replay a workload trace against a policy (no arguments: bundled example)",
                       description="Replay a workload trace against a policy through the real Scheduler and "
                                   "report utilisation, shares, waits, preemptions and boots (JSON and PNG "
                                   "plots). With no arguments: the bundled METACENTRUM-2009-2 slice on the "
                                   "bundled example policy, report in ./vmsched-report/.")
    s.add_argument("policy", nargs="?", help="policy TOML with a [trace] mapping (default: the bundled example)")
    s.add_argument("--trace", help="SWF trace (plain or gzip), or bundled:metacentrum-2009 / bundled:wagap-2013")
    s.add_argument("--out", default="vmsched-report", help="report directory (default: ./vmsched-report)")
    s.add_argument("--baseline", action="store_true",
                   help="replay the policy's static-partition baseline instead (each VO on its own hosts)")
    _common(s)
    s.set_defaults(func=cmd_simulate)

    c = sub.add_parser("compare", help="replay one trace against two policies, side by side",
                       description="Replay one trace against policy A and policy B (default B: the static-partition "
                                   "baseline of A on the same hosts).")
    c.add_argument("a", help="policy A (TOML)")
    c.add_argument("b", nargs="?", help="policy B (TOML), or 'static' for A's static-partition baseline (default)")
    c.add_argument("--trace", required=True, help="SWF trace, or bundled:metacentrum-2009 / bundled:wagap-2013")
    c.add_argument("--out", default="vmsched-compare", help="report directory (default: ./vmsched-compare)")
    _common(c)
    c.set_defaults(func=cmd_compare)
