"""The ``vmsched`` command: check a policy, explain a cycle, simulate a trace, compare policies.

Exit codes: 0 success, 1 a check or comparison found a difference worth failing on, 2 bad
input (each problem one line on stderr, naming the file and the line or key; never a
traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from vmsched import __version__
from vmsched.sim import cli as sim_cli
from vmsched.sim.cli import BadInput as _BadInput

EXIT_BAD_INPUT = 2


def _examples(name: str) -> Path:
    return Path(str(resources.files("vmsched") / "examples" / name))


def _engine_name() -> str:
    try:
        from vmsched import _core
    except ImportError:
        return "python (C core not built)"
    return getattr(_core, "ENGINE_NAME", "python")




def _bad_input_types():
    from vmsched.model import ModelError
    from vmsched.policyfile import PolicyError
    from vmsched.usage import UsageStoreError
    types = [PolicyError, ModelError, UsageStoreError]
    try:
        from vmsched.sim.swf import TraceError
        types.append(TraceError)
    except ImportError:
        pass
    return tuple(types)


def _lines(e: Exception) -> list[str]:
    """The lines to print for a bad-input error: its problems, each kept to one line."""
    from vmsched.errors import one_line
    probs = getattr(e, "problems", None) or getattr(e, "lines", None)
    if probs:
        return [one_line(str(p)) for p in probs]
    return [line for line in str(e).splitlines() if line] or [type(e).__name__]


# --------------------------------------------------------------------------- check

def cmd_check(args) -> int:
    from vmsched.policyfile import load_policy
    bad = 0
    for path in args.policy:
        try:
            p = load_policy(path)
        except _bad_input_types() as e:
            for line in _lines(e):
                print(f"vmsched: {line}", file=sys.stderr)
            bad += 1
            continue
        if not args.quiet:
            print(f"{path}: ok ({p.site}: {len(p.hosts)} hosts, {len(p.images)} images, {len(p.queues)} queues, "
                  f"{len(p.fairshare.shares)} shares, classes {' < '.join(p.preemption.classes)})")
    return EXIT_BAD_INPUT if bad else 0


# --------------------------------------------------------------------------- explain

def cmd_explain(args) -> int:
    from vmsched.cycle import Scheduler
    from vmsched.model import Snapshot
    from vmsched.policyfile import initial_domains, load_policy

    policy = load_policy(args.policy or _examples("metacenter.toml"))
    snap_path = args.snapshot or _examples("metacenter-snapshot.json")
    snap = Snapshot.load(snap_path)
    if not snap.hosts and policy.hosts:
        import attrs
        snap = attrs.evolve(snap, hosts=policy.hosts, domains=snap.domains or tuple(initial_domains(policy)))
    from vmsched.extensions import PluginError
    try:
        sched = Scheduler(policy)
    except PluginError as e:    # check imports a plugin; only a run makes one, and it may fail
        raise _BadInput([f"{policy.source}: plugins: {e}"]) from None
    try:
        plan = sched.on_cycle(snap)
    except ValueError as e:
        raise _BadInput([f"{snap_path}: {line}" for line in _lines(e)]) from None
    if args.json:
        json.dump(plan.to_json(), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    print(f"cycle at t={plan.time:.0f} on {policy.site} ({policy.source}), snapshot {snap_path}, "
          f"engine {plan.engine}")
    print(f"{len(snap.hosts)} hosts, {len(snap.domains)} domains, {len(snap.jobs)} jobs")
    print(f"\nplan ({len(plan.actions)} actions):")
    for i, a in enumerate(plan.actions, 1):
        print(f"  {i:3d}. {a}")
    print(f"\npending ({len(plan.pending)} jobs):")
    width = max((len(j) for j, _ in plan.pending), default=0)
    for jid, p in plan.pending:
        print(f"  {jid:<{width}}  [{p.verdict.value}] {p.text}")
    return 0


# --------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vmsched", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version",
                    version=f"vmsched {__version__} (matching engine: {_engine_name()})")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", help="validate policy files (exit 2 on the first bad one)")
    c.add_argument("policy", nargs="+")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=cmd_check)

    e = sub.add_parser("explain", help="decide one cycle on a snapshot and say why each pending job waits")
    e.add_argument("snapshot", nargs="?", help="snapshot JSON (default: the bundled MetaCenter example)")
    e.add_argument("--policy", help="policy TOML (default: the bundled MetaCenter example)")
    e.add_argument("--json", action="store_true", help="print the plan as JSON")
    e.set_defaults(func=cmd_explain)

    sim_cli.add_commands(sub)
    return ap


def main(argv=None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.func(args)
    except _BadInput as e:
        for line in _lines(e):
            print(f"vmsched: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except _bad_input_types() as e:
        for line in _lines(e):
            print(f"vmsched: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("vmsched: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    # Run through the imported module, not this __main__ copy: the simulator's commands raise
    # vmsched.cli's exceptions, which must be the ones main() catches.
    from vmsched.cli import main as _main
    sys.exit(_main())
