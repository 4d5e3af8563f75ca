"""One scheduling cycle against a live server: read, decide, apply, explain, publish.

1. *read*: ``pbs_statserver``, ``pbs_statnode`` (``statvnode`` on OpenPBS),
   ``pbs_statjob``, modelled by :class:`~vmsched_pbs.view.ServerReader`; jobs that ended
   are charged to fair share once, from their ``resources_used``, through the Scheduler's
   usage store (crash-safe, and idempotent per job id: a restarted vmsched-pbs that sees
   the same completed jobs again charges nothing twice; the jobs running are kept beside
   it, :mod:`~vmsched_pbs.running`, so one that ends while vmsched-pbs is down is charged
   when it is back);
2. *decide*: the same :class:`vmsched.cycle.Scheduler` the simulator drives, ``on_cycle``;
3. *apply*: :class:`~vmsched_pbs.apply.Executor`, action by action;
4. *explain*: every job left waiting gets its reason as its ``comment``, the way PBS
   schedulers write it ("Not Running: ...", "Can Never Run: ..."), only when it changed and
   at most once per ``comment_period`` per job (OpenPBS's scheduler has the same rule,
   ``attr_update_period``): a server with 100,000 jobs is not flooded with alterjob calls;
5. *publish*: each domain's state on its node (Torque ``note``, OpenPBS ``comment``), and
   inactive domains offline, so that admins see it in ``pbsnodes`` and nothing else
   schedules onto them; only where it changed.

A dry run does 1 and 2 only: it changes nothing on the server or any VM.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import attrs

from vmsched.cycle import Scheduler
from vmsched.model import DomainState, Job, JobState, ModelError, Snapshot, parse_duration, parse_size_mb
from vmsched.plan import Plan, SnapshotState, Verdict
from vmsched.policyfile import Policy
from vmsched_pbs.apply import Executor, Outcome
from vmsched_pbs.config import PbsConfig
from vmsched_pbs.driver import ExternalDriver, VMDriver
from vmsched_pbs.ifl import IFLBackend, IFLError, Op
from vmsched_pbs.running import RunningFile
from vmsched_pbs.view import ENDED_STATES, Reading, ServerReader, job_attributes, note_attribute, note_text

__all__ = ["Adapter", "CycleReport", "comment_for"]

log = logging.getLogger("vmsched_pbs")

_WAITING = (JobState.QUEUED, JobState.HELD, JobState.WAITING)
_IN_DOMAIN = (JobState.RUNNING, JobState.SUSPENDED)


class _Timer:
    """Each step's wall time (``seconds[step]``) and CPU time (``seconds[step + "_cpu"]``):
    the log line gives the first, the benchmark compares the second on a shared machine."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def mark(self, step: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.seconds[step] = wall - self._wall
        self.seconds[step + "_cpu"] = cpu - self._cpu
        self._wall, self._cpu = wall, cpu


def comment_for(verdict: Verdict, text: str) -> str:
    """A pending reason as PBS schedulers word a job's comment."""
    return f"{'Can Never Run' if verdict is Verdict.NEVER else 'Not Running'}: {text}"


@attrs.frozen(slots=True)
class CycleReport:
    """What one cycle saw, decided and did; the log line and the tests read it."""

    time: float
    reading: Reading | None
    plan: Plan | None
    outcomes: tuple[Outcome, ...] = ()
    comments: int = 0
    published: int = 0
    failures: tuple[str, ...] = ()          # comment/publish calls that failed
    seconds: Mapping[str, float] = attrs.field(factory=dict)
    skipped: str | None = None              # why no cycle ran (the server's scheduling is off)
    charged: int = 0                        # ended jobs charged to fair share this cycle
    domains: tuple = ()                     # the domains after the plan, as far as it went
    running: tuple = ()                     # the jobs running or suspended after the plan

    def count(self, result: str) -> int:
        return sum(1 for o in self.outcomes if o.result == result)

    def line(self) -> str:
        if self.skipped:
            return f"cycle at {self.time:.0f}: skipped: {self.skipped}"
        r, p = self.reading, self.plan
        jobs = len(r.snapshot.jobs) if r else 0
        secs = " ".join(f"{k} {v:.3f}" for k, v in self.seconds.items() if not k.endswith("_cpu"))
        return (f"cycle at {self.time:.0f}: {jobs} jobs ({len(r.skipped_jobs) if r else 0} unreadable), "
                f"{len(r.snapshot.domains) if r else 0} domains, {len(p.actions) if p else 0} actions: "
                f"{self.count('done')} done, {self.count('failed')} failed, {self.count('skipped')} skipped; "
                f"{self.comments} comments, {self.published} nodes published, {self.charged} ended jobs charged; "
                f"s: {secs}")


class Adapter:
    """vmsched as the scheduler of one PBS server."""

    def __init__(self, policy: Policy, config: PbsConfig, backend: IFLBackend, driver: VMDriver | None = None, *,
                 scheduler: Scheduler | None = None, clock=time.time):
        if config.server_kind not in ("auto", backend.kind):
            raise ValueError(f"the policy's [pbs] server_kind is {config.server_kind}, "
                             f"but the backend reaches a {backend.kind} library ({backend.origin})")
        self.policy, self.config, self.backend = policy, config, backend
        self.driver = driver if driver is not None else ExternalDriver()
        self.scheduler = scheduler if scheduler is not None else Scheduler(policy)
        self.reader = ServerReader(policy, config, backend.kind)
        self.executor = Executor(backend, self.driver, self.publish)
        self.clock = clock
        self._commented: dict[str, float] = {}     # job -> when vmsched last wrote its comment
        # each domain node's (note, offline, down) as last read or written this cycle
        self._node: dict[str, tuple[str | None, bool | None, bool]] = {}
        self._published = 0
        self._charged: set[str] = set()            # ended jobs charged (or found charged) already
        # jobs running or suspended after the last cycle, also on disk beside the usage store
        self._running_file = RunningFile(self.scheduler.store.path)
        self._running: dict[str, Job] = self._running_file.load()

    # ------------------------------------------------------------------ the cycle
    def cycle(self, *, dry_run: bool = False, force: bool = False) -> CycleReport:
        """One cycle. Raises :class:`IFLError` when the server cannot be read or the
        connection is lost midway (the caller reconnects, and the next cycle reads the
        server afresh); a request the server refuses is logged and counted, never raised."""
        now = self.clock()
        timer = _Timer()
        server = self.backend.stat_server()
        scheduling = next(iter(server.values()), {}).get("scheduling", "True")
        if not force and not dry_run and scheduling.strip().lower() in ("false", "0"):
            return CycleReport(now, None, None, skipped="the server's scheduling attribute is False")
        nodes = self.backend.stat_nodes()
        jobs = self.backend.stat_jobs(job_attributes(self.backend.kind))
        timer.mark("stat")
        reading = self.reader.read(nodes, jobs, self.driver, now)
        charged = 0 if dry_run else self._account(reading, now)
        timer.mark("model")
        plan = self.scheduler.on_cycle(reading.snapshot, now)
        timer.mark("decide")
        if dry_run:
            return CycleReport(now, reading, plan, seconds=timer.seconds)
        self._node = {n: (f.note, f.offline, f.down) for n, f in reading.nodes.items()}
        self._published = 0
        try:
            outcomes, after = self.executor.apply(plan, reading.snapshot)
        finally:
            # what runs or is frozen now, as far as the plan got: a job that leaves without an
            # end record is charged from this
            running = {j.id: j for j in self.executor.state.jobs.values() if j.state in _IN_DOMAIN}
            # a job still listed but left out of the cluster this cycle (on a node vmsched
            # cannot use now) is still running as far as anyone knows
            for jid, job in self._running.items():
                if jid not in running and jid in reading.comments \
                        and jid not in self.executor.state.jobs:
                    running[jid] = job
            self._running = running
            self._running_file.save(self._running)
        timer.mark("apply")
        failures: list[str] = []
        comments = self._explain(plan, reading, outcomes, now, failures)
        published = self._publish_all(after, failures)
        timer.mark("comment+publish")
        report = CycleReport(now, reading, plan, tuple(outcomes), comments, published, tuple(failures),
                             timer.seconds, charged=charged, domains=tuple(after.domains.values()),
                             running=tuple(self._running.values()))
        log.info("%s", report.line())
        return report

    # ------------------------------------------------------------------ accounting
    def _account(self, reading: Reading, now: float) -> int:
        """Charge every job that ended (E, C or F: its usage is final once the mom's obit
        is in) and every job that ran and is gone without an end record (Torque with
        ``keep_completed = 0``, OpenPBS without job history), once each."""
        listed = reading.ended.keys() | reading.comments.keys()
        self._charged &= listed
        charged = 0
        for jid, a in reading.ended.items():
            if jid in self._charged:
                continue
            self._charged.add(jid)
            job = self._running.get(jid)
            if job is None:
                try:
                    job = Job.from_pbs(jid, a)
                except ModelError as e:
                    log.warning("job %s ended but cannot be charged to fair share: %s", jid, e.first())
                    continue
            usage = _usage(a)
            start = job.start_time if job.start_time is not None else now
            if "walltime" not in usage:
                usage["walltime"] = max(0.0, now - start)
            end = _epoch(a.get("comp_time") or a.get("obittime")) or start + usage["walltime"]
            charged += self._charge(job, usage, end)
        for jid, job in self._running.items():
            if jid in listed:
                continue
            # gone from the list: OpenPBS with job history still has it (extend "x"), with
            # its final usage; else it is charged up to when it was found gone
            a = self.backend.stat_job(jid, job_attributes(self.backend.kind), history=True) if self.backend.kind == "openpbs" else None
            if a is not None and a.get("job_state") in ENDED_STATES:
                self._charged.add(jid)
                usage = _usage(a)
                if "walltime" in usage:
                    end = _epoch(a.get("obittime") or a.get("comp_time")) or now
                    charged += self._charge(job, usage, end)
                    continue
            elapsed = now - job.start_time if job.start_time is not None else 0.0
            charged += self._charge(job, {"walltime": max(0.0, elapsed)}, now)
        return charged

    def _charge(self, job: Job, usage: dict[str, float], end: float) -> int:
        try:
            return int(self.scheduler.on_job_end(self.scheduler.with_vo(job), usage, now=end))
        except ValueError as e:
            log.warning("job %s: not charged to fair share: %s", job.id, e)
            return 0

    # ------------------------------------------------------------------ comments
    def _explain(self, plan: Plan, reading: Reading, outcomes, now: float, failures: list[str]) -> int:
        """Write each waiting job's reason as its comment, where it changed, at most once
        per period per job. A job the plan started or routed, but the server refused (or
        an earlier step failed), waits too: its comment says what failed."""
        period = self.config.comment_period_s
        current = reading.comments
        for gone in [j for j in self._commented if j not in current]:
            del self._commented[gone]
        wanted: dict[str, str] = {}
        for job in reading.snapshot.jobs:
            if job.state in _WAITING:
                p = plan.reason(job.id)
                if p is not None:
                    wanted[job.id] = comment_for(p.verdict, p.text)
        for o in outcomes:
            job = getattr(o.action, "job", None)
            if o.result != "done" and job is not None and o.action.verb in ("run", "route"):
                where = getattr(o.action, "domain", None) or getattr(o.action, "queue", "")
                wanted[job] = comment_for(Verdict.NOT_NOW, f"{o.action.verb} in {where} {o.result}: "
                                                           f"{o.error}: {o.message}")
        for jid, why in reading.skipped_jobs.items():
            if jid in current:
                wanted[jid] = comment_for(Verdict.NEVER, f"vmsched cannot read this job: {why}")
        written = 0
        for jid, text in wanted.items():
            if current.get(jid) == text:
                continue
            last = self._commented.get(jid)
            if last is not None and now - last < period:
                continue
            try:
                self.backend.alter_job(jid, {"comment": text})
            except IFLError as e:
                if e.lost:
                    raise
                if e.name not in ("UNKJOBID", "JOBNOTFOUND"):
                    failures.append(str(e))
                    log.warning("comment of %s: %s", jid, e)
                continue
            self._commented[jid] = now
            written += 1
        return written

    # ------------------------------------------------------------------ node notes
    def publish(self, name: str, state: DomainState) -> None:
        """Put a domain's state on its node (note or comment) and set the node offline
        while the domain is not active; only what differs from what the node says. A node
        the server reports down is left alone. Raises :class:`IFLError`."""
        now = self._node.get(name)
        if now is None or now[2]:
            return
        note, offline, down = now            # None: unknown (an earlier answer was lost)
        changes = []
        text = note_text(state)
        if note != text:
            changes.append((note_attribute(self.backend.kind), text, Op.SET))
        want_offline = self.config.offline_inactive and not state.active
        if want_offline != offline:
            changes.append(("state", "offline", Op.INCR if want_offline else Op.DECR))
        if changes:
            try:
                self.backend.set_node(name, changes)
            except IFLError as e:
                if e.lost:      # it may or may not have been done: write everything next time
                    self._node[name] = (None, None, down)
                raise
            self._node[name] = (text, want_offline, down)
            self._published += 1

    def _publish_all(self, after: SnapshotState, failures: list[str]) -> int:
        """After the plan: every domain's state where its node does not say it yet (first
        contact, a publish that failed last cycle). Domains down for vmsched (an admin's
        offline, a node the server reports down) are not touched."""
        for d in after.domains.values():
            if d.state is DomainState.DOWN:
                continue
            try:
                self.publish(d.name, d.state)
            except IFLError as e:
                if e.lost:
                    raise
                failures.append(str(e))
                log.warning("publishing %s on node %s: %s", d.state.value, d.name, e)
        return self._published


def _usage(a: Mapping[str, str]) -> dict[str, float]:
    """``resources_used`` as numbers: walltime and cput in seconds, mem in MB."""
    out: dict[str, float] = {}
    for key, parse in (("walltime", parse_duration), ("cput", parse_duration), ("mem", parse_size_mb)):
        v = a.get(f"resources_used.{key}")
        if v:
            try:
                out[key] = float(parse(v))
            except ValueError:
                pass
    return out


def _epoch(v: str | None) -> float | None:
    return float(v) if v and v.strip().isdigit() else None
