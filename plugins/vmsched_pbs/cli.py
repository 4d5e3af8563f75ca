"""The ``vmsched-pbs`` command: vmsched as the scheduler of a Torque or OpenPBS server.

Exit codes: 0 done (``--once``) or stopped by a signal; 1 the server or its client library
cannot be reached; 2 bad input: the policy file, or data from the server that cannot be
made into a cluster (each problem one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

from vmsched.model import ModelError, parse_duration
from vmsched.policyfile import PolicyError
from vmsched_pbs.backends import BackendError, open_backend

__all__ = ["main", "build_parser"]

EXIT_UNREACHABLE = 1
EXIT_BAD_INPUT = 2
log = logging.getLogger("vmsched_pbs")


def _duration(text: str) -> float:
    try:
        return float(parse_duration(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="vmsched-pbs",
        description="Run vmsched as the scheduler of a Torque or OpenPBS server: each cycle read the "
                    "server's nodes (VM domains) and jobs, decide with vmsched, and apply the plan.")
    ap.add_argument("--policy", required=True, help="the site's policy TOML (with an optional [pbs] table)")
    ap.add_argument("--server", default=None, help="PBS server host[:port] (default: the library's default server)")
    ap.add_argument("--check", action="store_true", help="check the policy file (with its [pbs] table) and exit")
    ap.add_argument("--once", action="store_true", help="run one cycle and exit")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    ap.add_argument("--interval", type=_duration, default=None,
                    help="time between cycles, e.g. 60s or 2m (default: the policy's cycle_interval)")
    ap.add_argument("--listen", default=None, metavar="[ADDRESS:]PORT",
                    help="Torque: also run a cycle when the server asks, on its scheduler port (e.g. 15004; "
                         "loopback unless an address is given)")
    ap.add_argument("--okclients", default="", metavar="HOST[,HOST...]",
                    help="with --listen: hosts allowed to send commands besides loopback (the server's host)")
    ap.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                    help="serve Prometheus metrics on this port (needs prometheus-client: vmsched[metrics])")
    ap.add_argument("--metrics-address", default="127.0.0.1", help="where --metrics-port listens (default: loopback)")
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    ap.add_argument("--backend", default="auto", choices=["auto", "pbs_python", "cffi"],
                    help="how to reach the server: pbs_python's module, or the C library through cffi "
                         "(auto: pbs_python if it loads, else cffi)")
    ap.add_argument("--library", default=None,
                    help="the IFL library for --backend cffi (default: libtorque.so.2, else libpbs.so)")
    return ap


def _print_plan(report, adapter, out) -> None:
    r, plan = report.reading, report.plan
    snap = r.snapshot
    b = adapter.backend
    print(f"cycle at t={plan.time:.0f} on {adapter.policy.site} ({adapter.policy.source}), "
          f"server {b.server_name or 'default'} ({b.kind}, {b.origin}), engine {plan.engine}", file=out)
    print(f"{len(snap.hosts)} hosts, {len(snap.domains)} domains, {len(snap.jobs)} jobs, "
          f"{len(r.skipped_jobs)} unreadable jobs, {len(r.skipped_nodes)} unreadable nodes", file=out)
    print(f"\nplan ({len(plan.actions)} actions):", file=out)
    for i, a in enumerate(plan.actions, 1):
        print(f"  {i:3d}. {a}", file=out)
    print(f"\npending ({len(plan.pending)} jobs):", file=out)
    width = max((len(j) for j, _ in plan.pending), default=0)
    for jid, p in plan.pending:
        print(f"  {jid:<{width}}  [{p.verdict.value}] {p.text}", file=out)
    for title, items in (("unreadable jobs", r.skipped_jobs), ("unreadable nodes", r.skipped_nodes)):
        if items:
            print(f"\n{title} ({len(items)}):", file=out)
            for name, why in sorted(items.items()):
                print(f"  {name}  {why}", file=out)


def main(argv=None, *, backend=None, driver=None, out=None, err=None, sleep=time.sleep) -> int:
    """The command. ``backend`` and ``driver`` replace the ones the options would open
    (the tests give the fake server's)."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=err,
                        format="%(asctime)s vmsched-pbs %(levelname)s %(message)s")

    def fail(code: int, lines) -> int:
        for line in lines:
            print(f"vmsched-pbs: {line}", file=err)
        return code

    from vmsched_pbs.config import load_site
    try:
        policy, config = load_site(args.policy)
    except (PolicyError, ModelError) as e:
        return fail(EXIT_BAD_INPUT, e.problems)
    if args.check:
        print(f"{args.policy}: ok ({policy.site}: {len(policy.images)} images, {len(policy.queues)} queues, "
              f"server kind {config.server_kind}, comment period {config.comment_period_s:.0f}s, "
              f"max_active {config.max_active})", file=out)
        return 0
    if backend is None:
        try:
            backend = open_backend(args.backend, args.library)
        except BackendError as e:
            return fail(EXIT_UNREACHABLE, [str(e)])
    from vmsched_pbs.adapter import Adapter
    from vmsched_pbs.ifl import IFLError
    from vmsched_pbs.listener import SCH_QUIT
    try:
        adapter = Adapter(policy, config, backend, driver)
    except ValueError as e:
        return fail(EXIT_BAD_INPUT, [f"{args.policy}: {e}"])
    interval = args.interval or policy.cycle_interval_s
    port = None
    if args.listen and not args.once:
        from vmsched_pbs.listener import SchedulerPort, parse_listen
        try:
            address, number = parse_listen(args.listen)
            port = SchedulerPort(address, number, [h for h in args.okclients.split(",") if h]).open()
        except (ValueError, OSError) as e:
            return fail(EXIT_UNREACHABLE if isinstance(e, OSError) else EXIT_BAD_INPUT, [f"--listen: {e}"])
        log.info("listening for the server's commands on %s:%d", address, port.port)
    metrics = None
    if args.metrics_port is not None:
        from vmsched_pbs.metrics import Metrics, MetricsUnavailable
        try:
            metrics = Metrics(policy)
            log.info("metrics on http://%s:%d/metrics", args.metrics_address,
                     metrics.serve(args.metrics_port, args.metrics_address))
        except MetricsUnavailable as e:
            return fail(EXIT_UNREACHABLE, [str(e)])
        except OSError as e:
            return fail(EXIT_UNREACHABLE, [f"--metrics-port {args.metrics_port}: {e.strerror}"])
    stop = []
    if not args.once:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.append(True))
    backoff = 1.0
    try:
        while True:
            try:
                if not backend.connected:
                    backend.connect(args.server)
                    log.info("connected to %s (%s through %s)", args.server or "the default server", backend.kind,
                             backend.origin)
                report = adapter.cycle(dry_run=args.dry_run, force=args.once)
                backoff = 1.0
                if metrics is not None and not args.dry_run:
                    metrics.observe(report, lambda job: adapter.scheduler.with_vo(job).vo)
            except IFLError as e:
                backend.disconnect()
                if metrics is not None:
                    metrics.lost()
                if args.once:
                    return fail(EXIT_UNREACHABLE, [f"server {args.server or 'default'}: {e}"])
                log.error("server %s: %s; again in %.0f s", args.server or "default", e, backoff)
                if stop:
                    break
                sleep(backoff)
                backoff = min(backoff * 2, max(interval, 1.0))
                continue
            except (ModelError, ValueError) as e:
                lines = getattr(e, "problems", None) or [str(e)]
                if args.once:
                    return fail(EXIT_BAD_INPUT, [f"bad data from the server: {line}" for line in lines])
                log.error("bad data from the server: %s", "; ".join(lines))
            else:
                if args.dry_run:
                    _print_plan(report, adapter, out)
            if args.once or stop:
                break
            if port is None:
                sleep(interval)
            else:
                commands = port.wait(interval)
                if SCH_QUIT in commands:
                    log.info("the server said quit")
                    break
            if stop:
                break
    finally:
        backend.disconnect()
        if port is not None:
            port.close()
        if metrics is not None:
            metrics.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
