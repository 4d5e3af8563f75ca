"""Prometheus metrics of vmsched-pbs (``--metrics-port``), through prometheus-client.

What an admin of a production daemon watches: how long cycles take, what the plans did
and how often the server refused, how many domains are in each state, how many jobs wait
and why (not now, never, unreadable), and each VO's share of the running cores against
its target. prometheus-client is an optional extra (``pip install 'vmsched[metrics]'``),
imported only when metrics are asked for; the endpoint listens on loopback unless told
otherwise.
"""

from __future__ import annotations

from collections import Counter

from vmsched.model import DomainState, JobState
from vmsched.plan import Verdict

__all__ = ["Metrics", "MetricsUnavailable"]


class MetricsUnavailable(RuntimeError):
    """prometheus-client is not installed; the message says how to get it."""


class Metrics:
    """The metrics, in their own registry (so tests and several adapters keep apart)."""

    def __init__(self, policy, registry=None):
        try:
            from prometheus_client import CollectorRegistry, Counter as PCounter, Gauge, Histogram
        except ImportError:
            raise MetricsUnavailable("--metrics-port needs prometheus-client: pip install 'vmsched[metrics]'") \
                from None
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.cycle = Histogram("vmsched_pbs_cycle_seconds", "Wall time of a whole cycle (read, decide, apply)",
                               registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
        self.steps = Histogram("vmsched_pbs_cycle_step_seconds", "Wall time of each step of a cycle", ["step"],
                               registry=r, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
        self.actions = PCounter("vmsched_pbs_actions", "Plan actions by kind and what became of them",
                                ["kind", "outcome"], registry=r)
        self.errors = PCounter("vmsched_pbs_action_errors", "Failed actions by PBS error name", ["error"],
                               registry=r)
        self.cycles = PCounter("vmsched_pbs_cycles", "Cycles run, skipped (scheduling off) or cut (connection lost)",
                               ["result"], registry=r)
        self.domains = Gauge("vmsched_pbs_domains", "Domains (PBS nodes) by state", ["state"], registry=r)
        self.pending = Gauge("vmsched_pbs_pending_jobs", "Jobs waiting, by why", ["reason"], registry=r)
        self.share = Gauge("vmsched_pbs_vo_share", "Each VO's part of the running cores, and its target",
                           ["vo", "kind"], registry=r)
        self.comments = PCounter("vmsched_pbs_comments_written", "Job comments written", registry=r)
        self.charged = PCounter("vmsched_pbs_jobs_charged", "Ended jobs charged to fair share", registry=r)
        top = [(path[0], share) for path, share in policy.fairshare.shares if len(path) == 1]
        total = sum(s for _, s in top) or 1.0
        self._targets = {vo: s / total for vo, s in top}
        self._server = None

    def serve(self, port: int, address: str = "127.0.0.1") -> int:
        """Serve /metrics; returns the port (the one chosen when ``port`` is 0)."""
        from prometheus_client import start_http_server
        self._server, _ = start_http_server(port, address, registry=self.registry)
        return self._server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def lost(self) -> None:
        self.cycles.labels("cut").inc()

    def observe(self, report, vo_of=None) -> None:
        """Everything one cycle's report says; ``vo_of(job)`` is the VO a job is charged to
        (the Scheduler's, which knows that group ``atlas`` belongs to VO ``egee``)."""
        if report.skipped:
            self.cycles.labels("skipped").inc()
            return
        self.cycles.labels("run").inc()
        self.cycle.observe(sum(v for k, v in report.seconds.items() if not k.endswith("_cpu")))
        for step, v in report.seconds.items():
            if not step.endswith("_cpu"):
                self.steps.labels(step).observe(v)
        for o in report.outcomes:
            self.actions.labels(o.action.verb, o.result).inc()
            if o.result == "failed" and o.error:
                self.errors.labels(o.error).inc()
        self.comments.inc(report.comments)
        self.charged.inc(report.charged)
        snap = report.reading.snapshot
        states = Counter(d.state for d in (report.domains or snap.domains))
        for st in DomainState:
            self.domains.labels(st.value).set(states.get(st, 0))
        waiting = Counter()
        started = {o.action.job for o in report.outcomes if o.result == "done" and o.action.verb == "run"}
        for job in snap.jobs:
            if job.state in (JobState.QUEUED, JobState.HELD, JobState.WAITING) and job.id not in started:
                p = report.plan.pending.get(job.id)
                waiting["never" if p is not None and p.verdict is Verdict.NEVER else "not now"] += 1
        waiting["unreadable"] = len(report.reading.skipped_jobs)
        for reason in ("not now", "never", "unreadable"):
            self.pending.labels(reason).set(waiting[reason])
        cores = Counter()
        for job in report.running:
            if job.state is JobState.RUNNING:
                cores[vo_of(job) if vo_of else job.vo] += job.cores
        total = sum(cores.values())
        for vo, target in self._targets.items():
            self.share.labels(vo, "target").set(target)
            self.share.labels(vo, "running").set(cores[vo] / total if total else 0.0)
