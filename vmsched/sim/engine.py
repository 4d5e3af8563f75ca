"""A discrete-event simulator of a VM cluster, driven by the real scheduler's cycle API.

Nothing here decides anything. The simulator plays the batch server and the hypervisors:
it feeds the :class:`~vmsched.cycle.Scheduler` the changes a server would report (a job
queued, a job ended, a boot finished, a domain gone), calls ``cycle(now)`` exactly when a
PBS server would call its scheduler (every ``cycle_interval`` and on arrival, end and
boot-done events, events at one instant coalesced into one cycle), and carries out the
plan's actions in order with the delays the policy gives (boot, image download, resume,
shutdown). The same plan drives the PBS adapters.

The core is SimPy-style: a heap of ``(time, priority, sequence, kind, payload)``;
:meth:`Simulation.step` handles one instant, :meth:`Simulation.run` steps to the end. Time
never runs backwards (checked on every pop). The simulator keeps its own ground truth of
domains and jobs, independent of the Scheduler's optimistic mirror of its own plans, and
with ``check=True`` verifies after every step that no host is over-committed.
"""

from __future__ import annotations

import heapq
import itertools
import math
import warnings
from collections import Counter
from collections.abc import Callable, Sequence

import attrs

from vmsched.model import Domain, DomainState, Host, Job, JobState
from vmsched.plan import ClusterState, Plan, PlanError, apply_action, finish_boot, finish_job, finish_shutdown
from vmsched.policies import partition
from vmsched.policyfile import Policy, initial_domains
from vmsched.sim.figures import FULL_LOAD, JobFigures
from vmsched.sim.mapping import SimJob, Unrunnable
from vmsched.sim.stream import JobList, JobStream, as_stream
from vmsched.usage import UsageStore

__all__ = ["Simulation", "SimulationError", "SimDomain", "END", "SHUTDOWN_DONE", "BOOT_DONE", "ARRIVAL", "TICK"]

# Event kinds; the number is also the priority among events at the same instant: state
# changes first, then arrivals, then the periodic tick, so one cycle sees the whole instant.
END, SHUTDOWN_DONE, BOOT_DONE, ARRIVAL, TICK = 0, 1, 2, 3, 4
_ACTIVE_LIKE = (DomainState.FREE, DomainState.RUNNING, DomainState.BOOTING)
_INACTIVE = (DomainState.SUSPENDED, DomainState.OCCUPIED)
# a SimJob's state as the actions see it; a job not yet arrived or dropped is not in the cluster
_JOB_STATE = {"queued": JobState.QUEUED, "running": JobState.RUNNING, "suspended": JobState.SUSPENDED,
              "done": JobState.COMPLETE}
MAX_VIOLATIONS_KEPT = 20


class SimulationError(RuntimeError):
    """The plan asked for something impossible, or an invariant broke (``strict`` runs)."""


@attrs.define(slots=True, eq=False)
class SimDomain:
    """The ground truth of one domain (the Scheduler's view may be ahead or behind)."""

    name: str
    host: str
    image: str
    flavor: str
    cores: int
    memory: int
    state: DomainState
    since: float = 0.0
    jobs: set = attrs.Factory(set)          # running or suspended job ids
    used_cores: int = 0                     # taken by the running ones
    used_memory: int = 0

    def view(self) -> Domain:
        return Domain(self.name, self.host, self.image, self.flavor, self.state, self.cores, self.memory,
                      since=max(0.0, self.since))


class Simulation(ClusterState):
    """One replay of mapped trace jobs on a host set under a policy.

    The ground truth is a :class:`~vmsched.plan.ClusterState`: what each action does to it
    is :func:`vmsched.plan.apply_action`'s; the primitives below add the simulator's own
    accounting (busy cores, end events, resume delays) to each change.

    ``every_tick``: run the periodic cycle even when nothing happened since a cycle that
    planned nothing (by default such ticks are skipped, except when an idle-shutdown
    deadline falls due: with the current Scheduler they cannot change anything, and a
    172-day trace has 250,000 of them). ``check``: verify host capacity after every step.
    ``strict``: raise :class:`SimulationError` on the first impossible action instead of
    counting it.

    ``jobs``: a :class:`~vmsched.sim.stream.JobStream` (a trace read lazily: the
    simulation holds a job only from just before its arrival until it ends, folding what
    the report needs of it into :attr:`figures`), or the jobs themselves. ``keep_jobs``
    keeps every job after it ended, in :attr:`order` (and never-ran records in
    :attr:`never`), for tests and callers that look at single jobs; it is the default
    when the jobs are given as a list, which holds them anyway. ``job_map`` changes each
    job as it arrives (the static baseline points jobs at their VO's image).
    """

    def __init__(self, policy: Policy, jobs: Sequence[SimJob] | JobStream | JobList,
                 unrunnable: Sequence[Unrunnable] = (), *,
                 scheduler=None, store: UsageStore | None = None, check: bool = False, strict: bool = False,
                 every_tick: bool = False, bin_s: float | None = None,
                 on_progress: Callable[[int], None] | None = None, keep_jobs: bool | None = None,
                 job_map: Callable[[Job], Job] | None = None):
        from vmsched.cycle import Scheduler
        self.policy = policy
        if scheduler is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                scheduler = Scheduler(policy, store=store if store is not None else UsageStore(":memory:"))
            self.warnings = [str(w.message) for w in caught]
        else:
            self.warnings = []
        self.sched = scheduler
        self.check = check
        self.strict = strict
        self.every_tick = every_tick
        self.on_progress = on_progress
        self.interval = float(policy.cycle_interval_s)
        self.resume_s = float(policy.preemption.resume_s)

        self.hosts: dict[str, Host] = {h.name: h for h in policy.hosts}
        self.capacity_cores = sum(h.cores for h in policy.hosts)
        self.domains: dict[str, SimDomain] = {}
        self.host_domains: dict[str, set] = {h: set() for h in self.hosts}
        stream = as_stream(jobs, unrunnable)
        if isinstance(stream, JobList):
            ids = [sj.job.id for sj in stream.jobs]
            if len(set(ids)) != len(ids):
                raise ValueError(f"job {next(i for i in ids if ids.count(i) > 1)} is given twice")
        self.keep_jobs = isinstance(stream, JobList) if keep_jobs is None else keep_jobs
        self.total = stream.total                 # jobs to replay
        self.first_arrival = stream.first
        self.vos = stream.vos                     # the VOs of those jobs
        # live jobs (the next to arrive, then queued, running or suspended; with keep_jobs every one seen)
        self.jobs: dict[str, SimJob] = {}
        self._kept: list[SimJob] = []
        self.never: list[Unrunnable] = []         # with keep_jobs; else counted in figures only
        self.figures = JobFigures(self.total)
        self._arrivals = stream.arrivals(self._mapping_never, job_map)
        self._arrived = 0                          # jobs taken from the stream so far

        # the event heap
        self._heap: list = []
        self._seq = 0
        self.now = stream.first
        self._started_at = self.now
        self._tick_at: float | None = None
        self._dirty = True
        self._last_empty = False
        self._idle_deadline: float | None | bool = False   # False: not computed since the last change
        self._share_deadline: float | None | bool = False  # the same, for share preemption
        self._share_heap: list[tuple[float, str]] = []     # (when a queued job has waited share_after, job)
        self._suspended_domains: set[SimDomain] = set()
        self._last_activity = self.now
        self._last_cycle_t = -math.inf
        self._arrived_now: list[str] = []
        self._touched: set[str] = set()    # domains a plan changed, to tell the Scheduler
        self._resumed: set[str] = set()    # domains a plan resumed: what starts there waits resume_s

        # counters
        self.cycles = 0
        self.ticks_skipped = 0
        self.events = Counter()
        self.actions = Counter()
        self.ended = 0
        self.dropped = 0
        self.violations: list[str] = []
        self.violation_count = 0
        self.domain_suspensions = 0
        self.resumed_starts = 0        # starts and thaws that waited for a resumed domain
        self.killed_at_walltime = 0
        self.stalled = False
        self.time_went_back = 0

        # accounting (integrals over time)
        self._last_t = self.now
        self.busy_cores = 0
        self.busy_by_vo: Counter = Counter()
        self.active_domain_cores = 0
        self.queued_by_vo: Counter = Counter()
        # queued jobs that any host could run (no wider than the smallest host): a VO with
        # such work would use whatever cores fair share gave it
        self.queued_any_host_by_vo: Counter = Counter()
        self.queued_cores_by_vo: Counter = Counter()
        self.frozen_by_vo: Counter = Counter()   # cores of suspended jobs
        self._smallest = (min((h.cores for h in self.hosts.values()), default=0),
                          min((h.memory_mb for h in self.hosts.values()), default=0))
        self.busy_core_s = 0.0
        self.held_idle_core_s = 0.0      # cores held by jobs waiting out a resume delay
        self.busy_core_s_arrivals = 0.0
        self.arrivals_end = self.now
        self.busy_core_s_by_vo: Counter = Counter()
        self.active_core_s = 0.0
        share_vos = [p[0] for p, _ in policy.fairshare.shares if len(p) == 1]
        self.share_vos = [v for v in share_vos if v in self.vos]
        self.saturated_s = 0.0                 # every share VO waiting and the cluster full
        self.sat_core_s_by_vo: Counter = Counter()
        self.all_waiting_s = 0.0               # every share VO waiting, whatever the load
        self.all_waiting_core_s_by_vo: Counter = Counter()
        self.contended_s = 0.0                 # saturated, and every share VO has work any host could run
        self.contended_core_s_by_vo: Counter = Counter()
        # the same periods, each VO's fair part of the busy cores: its share of the cores,
        # or all it asks for (running, frozen and queued cores) if less, the rest split by share
        self.contended_fair_core_s_by_vo: Counter = Counter()
        self._vo_shares = {p[0]: sh for p, sh in policy.fairshare.shares if len(p) == 1 and p[0] in self.share_vos}
        span = stream.last - stream.first
        self.bin_s = float(bin_s) if bin_s else max(self.interval, math.ceil(max(span, 1.0) / 400.0 / 60.0) * 60.0)
        self.bins_busy: list[float] = []
        self.bins_by_vo: dict[str, list[float]] = {}
        self.bins_queued: list[float] = []

        # initial hosts and domains
        for h in policy.hosts:
            self.sched.set_host(h)
        for d in initial_domains(policy):
            sd = SimDomain(d.name, d.host, d.image, d.flavor, d.cores, d.memory_mb, d.state, d.since)
            self._add_domain(sd)
            self.sched.set_domain(d)
        self._next_arrival()
        self._arm_tick(self.now)

    # ------------------------------------------------------------------ the event heap
    def _push(self, t: float, kind: int, payload) -> None:
        if t < self.now:
            raise SimulationError(f"event at {t} scheduled before now ({self.now})")
        heapq.heappush(self._heap, (t, kind, self._seq, payload))
        self._seq += 1

    def _arm_tick(self, at_or_after: float) -> None:
        """The next periodic tick on the interval grid, at or after ``at_or_after``."""
        k = math.ceil((at_or_after - self._started_at) / self.interval - 1e-9)
        t = self._started_at + max(0, k) * self.interval
        while t <= self.now:   # strictly after now: a tick never repeats an instant
            t += self.interval
        if self._tick_at is not None and self._tick_at <= t:
            return
        self._tick_at = t
        self._push(t, TICK, t)

    @property
    def done(self) -> bool:
        return not self._heap

    # ------------------------------------------------------------------ jobs in and out
    def _next_arrival(self) -> None:
        """Take the next job from the stream and put its arrival on the heap. Arrivals come
        in order, one at a time: the next is taken when this one arrives, so all arrivals
        of an instant are on the heap while that instant is handled (in the same order,
        and so with the same decisions, as with every arrival put on the heap at the start)."""
        sj = next(self._arrivals, None)
        if sj is None:
            return
        if sj.job.id in self.jobs:
            raise ValueError(f"job {sj.job.id} is given twice")
        sj.rank = self._arrived
        self._arrived += 1
        sj.remaining = sj.work
        self.jobs[sj.job.id] = sj
        if self.keep_jobs:
            self._kept.append(sj)
        self._push(sj.arrival, ARRIVAL, sj.job.id)

    def _mapping_never(self, u: Unrunnable) -> None:
        """A job the mapping could not make replayable, met in the stream."""
        self.figures.never_ran(u)
        if self.keep_jobs:
            self.never.append(u)
        if self.on_progress is not None:
            self.on_progress(1)

    def _gone(self, sj: SimJob, never: Unrunnable | None = None) -> None:
        """A job leaves the replay for good: its figures are taken, and (streaming) it is forgotten."""
        if never is None:
            self.figures.ended(sj)
        else:
            self.figures.left(sj)
            self.figures.never_ran(never)
            if self.keep_jobs:
                self.never.append(never)
        if not self.keep_jobs:
            self.jobs.pop(sj.job.id, None)

    @property
    def order(self) -> list[SimJob]:
        """Every job of the replay in arrival order (only with ``keep_jobs``)."""
        if not self.keep_jobs:
            raise AttributeError("Simulation.order is kept only with keep_jobs=True: a streaming replay forgets "
                                 "jobs that ended (their figures are in .figures)")
        return self._kept

    @property
    def never_count(self) -> int:
        return self.figures.never

    def run(self, until: float | None = None) -> "Simulation":
        while self._heap and (until is None or self._heap[0][0] <= until):
            self.step()
        if not self._heap:
            self._finish()
        return self

    def step(self) -> bool:
        """Handle the next instant: all its events, then (at most) one cycle. False when done."""
        if not self._heap:
            return False
        t = self._heap[0][0]
        if t < self.now:
            self.time_went_back += 1
            raise SimulationError(f"time would run backwards: {t} < {self.now}")
        self._advance(t)
        self.now = t
        trigger = False
        tick = False
        while self._heap and self._heap[0][0] == t:
            _, kind, _, payload = heapq.heappop(self._heap)
            self.events[kind] += 1
            if kind == TICK:
                if payload == self._tick_at:
                    self._tick_at = None
                    tick = True
            elif kind == END:
                trigger |= self._on_end(*payload)
            elif kind == ARRIVAL:
                trigger |= self._on_arrival(payload)
            elif kind == BOOT_DONE:
                trigger |= self._on_boot_done(payload)
            elif kind == SHUTDOWN_DONE:
                trigger |= self._on_shutdown_done(payload)
        if trigger:
            self._dirty = True
        if trigger or (tick and self._tick_wanted(t)):
            self._cycle(t)
        elif tick:
            self.ticks_skipped += 1
        if self.every_tick or self._dirty or not self._last_empty:
            self._arm_tick(t)
        else:
            deadline = self._next_deadline()
            if deadline is not None:
                self._arm_tick(deadline)
        if self.check:
            self.check_invariants()
        if not self._heap or self._stalled(t):
            self._finish()
        return bool(self._heap)

    def _tick_wanted(self, t: float) -> bool:
        if self.every_tick or self._dirty or not self._last_empty:
            return True
        deadline = self._next_deadline()
        return deadline is not None and deadline <= t

    def _next_deadline(self) -> float | None:
        """When a quiet cycle could next decide something: an idle domain's shutdown, or a
        job or frozen domain reaching the share preemption wait."""
        found = [d for d in (self._next_idle_deadline(), self._next_share_deadline()) if d is not None]
        return min(found) if found else None

    def _next_share_deadline(self) -> float | None:
        """The first moment after the last cycle that a queued job has waited, or a frozen
        domain has been frozen, ``share_after``: share preemption may act then."""
        after = self.policy.preemption.share_after_s
        if after is None:
            return None
        if self._share_deadline is False:
            last = self._last_cycle_t
            # The scheduler looks at share at most once per cycle interval: a deadline its
            # last look passed was seen then; a later one waits for its next look.
            looked, look = self.sched.share_pace
            heap = self._share_heap
            while heap and (heap[0][0] <= looked or getattr(self.jobs.get(heap[0][1]), "state", None) != "queued"):
                heapq.heappop(heap)
            times = [heap[0][0]] if heap else []
            times += [d.since + after for d in self._suspended_domains if d.jobs and d.since + after > looked]
            times = [max(x, look) for x in times]
            self._share_deadline = min((x for x in times if x > last), default=None)
        return self._share_deadline  # type: ignore[return-value]

    def _next_idle_deadline(self) -> float | None:
        """The first idle-shutdown deadline after the last cycle (one that passed with an
        empty plan was not acted on, and will not be on another quiet tick either)."""
        if not self.policy.lifecycle.dynamic_boot:
            return None   # domains defined per host are never shut down for idleness
        if self._idle_deadline is False:
            lim = self.policy.lifecycle.idle_shutdown_s
            best = None
            after = self._last_cycle_t
            for d in self.domains.values():
                if not d.jobs and d.state in (DomainState.FREE, DomainState.OCCUPIED):
                    at = d.since + lim
                    if at > after and (best is None or at < best):
                        best = at
            self._idle_deadline = best
        return self._idle_deadline  # type: ignore[return-value]

    def _stalled(self, t: float) -> bool:
        """Every job has ended or been dropped; or nothing is left to arrive, nothing is
        running or booting, and no job has started or ended for a long time."""
        if self.ended + self.dropped >= self.total:
            self._heap.clear()
            return True
        if self.events[ARRIVAL] < self.total or self.busy_cores:
            return False
        if any(k in (END, BOOT_DONE, SHUTDOWN_DONE) for _, k, _, _ in self._heap):
            return False
        # Long enough for idle domains to be shut down and others booted, bounded so that a
        # scheduler that keeps planning without ever starting a job cannot run forever.
        quiet = min(max(2 * self.policy.lifecycle.idle_shutdown_s, 86400.0), 30 * 86400.0)
        if t - self._last_activity < quiet:
            return False
        self.stalled = True
        self._heap.clear()
        return True

    # ------------------------------------------------------------------ accounting
    def _count_queued(self, job: Job, n: int) -> None:
        if n > 0 and self.policy.preemption.share_after_s is not None:
            heapq.heappush(self._share_heap, (job.submit_time + self.policy.preemption.share_after_s, job.id))
        self.queued_by_vo[job.vo] += n
        self.queued_cores_by_vo[job.vo] += n * job.cores
        if job.cores <= self._smallest[0] and job.memory_mb <= self._smallest[1]:
            self.queued_any_host_by_vo[job.vo] += n

    def _advance(self, t: float) -> None:
        """Integrate the accounting from the last step to ``t``. (Runs once a step: written
        with locals; every sum takes the same terms in the same order as it always did, so
        the figures do not move by a bit.)"""
        t0 = self._last_t
        if t <= t0:
            return
        dt = t - t0
        busy = self.busy_cores
        self.busy_core_s += busy * dt
        self.active_core_s += self.active_domain_cores * dt
        busy_by_vo = self.busy_by_vo
        used = self.busy_core_s_by_vo
        for vo, c in busy_by_vo.items():
            if c:
                used[vo] += c * dt
        share_vos = self.share_vos
        if len(share_vos) > 1:
            queued_by_vo = self.queued_by_vo
            if all(queued_by_vo[v] > 0 for v in share_vos):
                self._advance_shares(busy, dt)
        # bins
        w = self.bin_s
        start = self._started_at
        queued = sum(self.queued_by_vo.values())
        bins_busy, bins_queued, bins_by_vo = self.bins_busy, self.bins_queued, self.bins_by_vo
        a = t0
        while a < t:
            i = int((a - start) // w)
            b = start + (i + 1) * w
            if not b < t:
                b = t
            if b <= a:  # float edge
                b = a + w
                if not b < t:
                    b = t
            piece = b - a
            while len(bins_busy) <= i:
                bins_busy.append(0.0)
                bins_queued.append(0.0)
                for lst in bins_by_vo.values():
                    lst.append(0.0)
            bins_busy[i] += busy * piece
            bins_queued[i] += queued * piece
            for vo, c in busy_by_vo.items():
                if c:
                    lst = bins_by_vo.get(vo)
                    if lst is None:
                        lst = bins_by_vo[vo] = [0.0] * len(bins_busy)
                    lst[i] += c * piece
            a = b
        self._last_t = t

    def _advance_shares(self, busy: int, dt: float) -> None:
        """The share measures over a stretch in which every VO with a share had jobs waiting."""
        share_vos = self.share_vos
        full = busy >= FULL_LOAD * self.capacity_cores
        self.all_waiting_s += dt
        contended = False
        if full:
            self.saturated_s += dt
            contended = all(self.queued_any_host_by_vo[v] > 0 for v in share_vos)
            if contended:
                self.contended_s += dt
                demand = {vo: self.busy_by_vo.get(vo, 0) + self.frozen_by_vo[vo] + self.queued_cores_by_vo[vo]
                          for vo in share_vos}
                fair = partition.targets(self.capacity_cores, self._vo_shares, demand)
                total_fair = sum(fair.values())
                if total_fair > 0:
                    for vo in share_vos:
                        self.contended_fair_core_s_by_vo[vo] += busy * fair[vo] / total_fair * dt
        for vo in share_vos:
            c = self.busy_by_vo.get(vo, 0)
            if c:
                self.all_waiting_core_s_by_vo[vo] += c * dt
                if full:
                    self.sat_core_s_by_vo[vo] += c * dt
                    if contended:
                        self.contended_core_s_by_vo[vo] += c * dt

    # ------------------------------------------------------------------ events
    def _on_arrival(self, jid: str) -> bool:
        sj = self.jobs[jid]
        sj.state = "queued"
        sj.load_at_arrival = self.busy_cores / self.capacity_cores if self.capacity_cores else 0.0
        self._count_queued(sj.job, 1)
        self.sched.set_job(sj.job)
        self._arrived_now.append(jid)
        if self.events[ARRIVAL] == self.total:
            self.busy_core_s_arrivals = self.busy_core_s
            self.arrivals_end = self.now
        self._next_arrival()
        return True

    def _on_end(self, jid: str, token: int) -> bool:
        sj = self.jobs.get(jid)
        if sj is None or sj.token != token or sj.state != "running":
            return False
        t = self.now
        ran = max(0.0, t - sj.clock_from)
        self.held_idle_core_s += sj.job.cores * (t - sj.busy_from - ran)
        sj.executed += ran
        sj.remaining = 0.0
        sj.state = "done"
        sj.end = t
        if sj.killed:
            self.killed_at_walltime += 1
        d = self.domains.get(sj.domain)
        self.busy_cores -= sj.job.cores
        self.busy_by_vo[sj.job.vo] -= sj.job.cores
        finish_job(self, jid, t)
        self.sched.on_job_end(jid, sj.executed, now=t)
        if d is not None:
            self._sync_domain(d)
        self.ended += 1
        self._last_activity = t
        self._gone(sj)
        if self.on_progress is not None:
            self.on_progress(1)
        return True

    def _on_boot_done(self, name: str) -> bool:
        if not finish_boot(self, name, self.now):
            return False
        self._sync_domain(self.domains[name])
        return True

    def _on_shutdown_done(self, name: str) -> bool:
        d = self.domains.get(name)
        if d is None:
            return False
        if d.jobs:
            # Scheduler.remove_domain puts such jobs back in the queue; so does the server.
            self._violation(f"domain {name} shut down while holding jobs {sorted(d.jobs)}: requeued")
        finish_shutdown(self, name, self.now)
        self.sched.remove_domain(name)
        return True

    # ------------------------------------------------------------------ domains
    def _add_domain(self, d: SimDomain) -> None:
        self.domains[d.name] = d
        self.host_domains[d.host].add(d.name)
        if d.state in _ACTIVE_LIKE:
            self.active_domain_cores += d.cores
        self._idle_deadline = self._share_deadline = False

    def _remove_domain(self, d: SimDomain) -> None:
        if d.state in _ACTIVE_LIKE:
            self.active_domain_cores -= d.cores
        del self.domains[d.name]
        self.host_domains[d.host].discard(d.name)
        self._idle_deadline = self._share_deadline = False

    def _set_state(self, d: SimDomain, state: DomainState) -> None:
        if d.state is state:
            return
        was = d.state in _ACTIVE_LIKE
        now = state in _ACTIVE_LIKE
        if was and not now:
            self.active_domain_cores -= d.cores
        elif now and not was:
            self.active_domain_cores += d.cores
        d.state = state
        d.since = self.now
        if state is DomainState.SUSPENDED:
            self._suspended_domains.add(d)
        else:
            self._suspended_domains.discard(d)
        self._idle_deadline = self._share_deadline = False

    def _sync_domain(self, d: SimDomain) -> None:
        """Tell the Scheduler about a domain whose real state differs from its view."""
        seen = self.sched.domains.get(d.name)
        if seen is None or seen.state is not d.state:
            self.sched.set_domain(d.view())

    # ------------------------------------------------------------------ jobs
    def _start(self, sj: SimJob, d: SimDomain, delay: float) -> None:
        t = self.now
        sj.busy_from = t
        sj.state = "running"
        sj.domain = d.name
        sj.clock_from = t + delay
        if sj.first_start is None:
            sj.first_start = t + delay
        sj.token += 1
        d.used_cores += sj.job.cores
        d.used_memory += sj.job.memory_mb
        self._push(sj.clock_from + sj.remaining, END, (sj.job.id, sj.token))

    def _unload(self, sj: SimJob) -> None:
        """A running job stops taking its domain's cores (suspended or requeued; end_job
        does the same for an ended one)."""
        d = self.domains.get(sj.domain)
        if d is not None:
            d.used_cores -= sj.job.cores
            d.used_memory -= sj.job.memory_mb

    def _freeze(self, sj: SimJob) -> None:
        ran = max(0.0, self.now - sj.clock_from)
        self.held_idle_core_s += sj.job.cores * (self.now - sj.busy_from - ran)
        sj.executed += ran
        sj.remaining = max(0.0, sj.remaining - ran)
        sj.token += 1
        sj.state = "suspended"
        self._unload(sj)
        self.busy_cores -= sj.job.cores
        self.busy_by_vo[sj.job.vo] -= sj.job.cores
        self.frozen_by_vo[sj.job.vo] += sj.job.cores

    def _thaw(self, sj: SimJob, delay: float) -> None:
        self.frozen_by_vo[sj.job.vo] -= sj.job.cores
        self.busy_cores += sj.job.cores
        self.busy_by_vo[sj.job.vo] += sj.job.cores
        self._start(sj, self.domains[sj.domain], delay)

    # ------------------------------------------------------------------ the ClusterState primitives
    # plan.apply_action decides; these store the change and do the simulator's accounting.
    def job_state(self, job_id: str) -> JobState | None:
        sj = self.jobs.get(job_id)
        return None if sj is None else _JOB_STATE.get(sj.state)

    def job_domain(self, job_id: str) -> str | None:
        return self.jobs[job_id].domain

    def job_size(self, job_id: str) -> tuple[int, int]:
        job = self.jobs[job_id].job
        return job.cores, job.memory_mb

    def domain_state(self, name: str) -> DomainState | None:
        d = self.domains.get(name)
        return None if d is None else d.state

    def domain_size(self, name: str) -> tuple[int, int]:
        d = self.domains[name]
        return d.cores, d.memory

    def domain_place(self, name: str) -> tuple[str, str]:
        d = self.domains[name]
        return d.host, d.image

    def domain_jobs(self, name: str) -> set[str]:
        return self.domains[name].jobs

    def domain_load(self, name: str) -> tuple[int, int]:
        d = self.domains[name]
        return d.used_cores, d.used_memory

    def has_host(self, name: str) -> bool:
        return name in self.hosts

    def start_job(self, job_id: str, domain: str, now: float) -> None:
        sj, d = self.jobs[job_id], self.domains[domain]
        self._count_queued(sj.job, -1)
        d.jobs.add(job_id)
        self.busy_cores += sj.job.cores
        self.busy_by_vo[sj.job.vo] += sj.job.cores
        self._start(sj, d, self._resume_delay(domain))
        self._touched.add(domain)
        self._last_activity = now

    def freeze_job(self, job_id: str) -> None:
        sj = self.jobs[job_id]
        self._freeze(sj)
        sj.preemptions += 1

    def thaw_job(self, job_id: str) -> None:
        sj = self.jobs[job_id]
        self._thaw(sj, self._resume_delay(sj.domain))

    def _resume_delay(self, domain: str) -> float:
        """A job (re)starting in a domain this plan resumed waits the resume time (counted,
        so that the report names the resume time only when it applied)."""
        if domain in self._resumed:
            self.resumed_starts += 1
            return self.resume_s
        return 0.0

    def requeue_job(self, job_id: str) -> None:
        """Back to the queue; the work done so far is lost."""
        sj = self.jobs[job_id]
        sj.preemptions += 1
        if sj.state == "running":
            self._freeze(sj)
        self.frozen_by_vo[sj.job.vo] -= sj.job.cores
        sj.lost_work += sj.executed
        sj.executed = 0.0
        sj.remaining = sj.work
        sj.requeues += 1
        sj.state = "queued"
        self._count_queued(sj.job, 1)
        d = self.domains.get(sj.domain)
        sj.domain = None
        if d is not None:
            d.jobs.discard(job_id)
            self._touched.add(d.name)

    def end_job(self, job_id: str) -> str | None:
        """(Only a running job ends here: _on_end.)"""
        sj = self.jobs[job_id]
        d = self.domains.get(sj.domain)
        if d is not None:
            d.jobs.discard(job_id)
            d.used_cores -= sj.job.cores
            d.used_memory -= sj.job.memory_mb
        return sj.domain

    def route_job(self, job_id: str, queue: str) -> None:
        sj = self.jobs[job_id]
        sj.job = attrs.evolve(sj.job, queue=queue)

    def bind_job(self, job_id: str, domain: str) -> None:
        self.jobs[job_id].domain = domain

    def set_domain_state(self, name: str, state: DomainState, now: float) -> None:
        d = self.domains[name]
        if d.state in _INACTIVE and (state is DomainState.FREE or state is DomainState.RUNNING):
            self._resumed.add(name)
        elif state is DomainState.SUSPENDED:      # (only a domain holding jobs is suspended)
            self.domain_suspensions += 1
        self._set_state(d, state)
        self._touched.add(name)
        if state is DomainState.SHUTTING_DOWN:
            self._push(now + self.policy.lifecycle.shutdown_s, SHUTDOWN_DONE, name)

    def add_domain(self, domain: Domain) -> None:
        """A boot: the domain is up after the image's boot time, and its download first
        where the host does not hold the image."""
        image = self.policy.images[domain.image]
        boot_s = image.boot_s
        if domain.image not in self.hosts[domain.host].cached_images:
            boot_s += image.size_gb * self.policy.lifecycle.image_download_s_per_gb
        self._add_domain(SimDomain(domain.name, domain.host, domain.image, domain.flavor, domain.cores,
                                   domain.memory_mb, domain.state, domain.since))
        self._push(self.now + boot_s, BOOT_DONE, domain.name)

    def remove_domain(self, name: str) -> None:
        self._remove_domain(self.domains[name])

    def cache_image(self, host: str, image: str) -> None:
        h = self.hosts[host]
        if image not in h.cached_images:
            h = attrs.evolve(h, cached_images=h.cached_images | {image})
            self.hosts[host] = h
            self.sched.set_host(h)

    def _violation(self, text: str) -> None:
        self.violation_count += 1
        if len(self.violations) < MAX_VIOLATIONS_KEPT:
            self.violations.append(f"t={self.now:.0f}: {text}")
        if self.strict:
            raise SimulationError(f"t={self.now:.0f}: {text}")

    # ------------------------------------------------------------------ the cycle
    def _cycle(self, t: float) -> None:
        try:
            plan = self.sched.cycle(t)
        except Exception as e:  # the Scheduler's bug, reported with where it happened
            raise SimulationError(f"t={t:.0f}: Scheduler.cycle raised {type(e).__name__}: {e} (cycle "
                                  f"{self.cycles + 1}, {len(self.jobs)} jobs, {len(self.domains)} domains)") from e
        self.cycles += 1
        self._apply(plan)
        if self._arrived_now:
            for jid in self._arrived_now:
                never = plan.pending.never(jid)
                sj = self.jobs.get(jid)
                if never is not None and sj is not None and sj.state == "queued":
                    self._drop_never(sj, never.text, "scheduler")
            self._arrived_now.clear()
        self._dirty = False
        self._last_empty = not plan.actions
        self._last_cycle_t = t
        self._idle_deadline = self._share_deadline = False

    def _drop_never(self, sj: SimJob, reason: str, stage: str) -> None:
        self.sched.remove_job(sj.job.id)
        if sj.state == "queued":
            self._count_queued(sj.job, -1)
        sj.state = "never"
        self.dropped += 1
        self._gone(sj, Unrunnable(sj.trace_id, sj.job.id, sj.job.vo, sj.klass, reason, stage))
        if self.on_progress is not None:
            self.on_progress(1)

    def _apply(self, plan: Plan) -> None:
        t = self.now
        self._resumed.clear()
        self._touched.clear()
        count = self.actions
        for a in plan.actions:
            count[a.verb] += 1
            try:
                apply_action(self, a, t)
            except PlanError as e:
                self._violation(str(e))
        for name in self._touched:
            d = self.domains.get(name)
            if d is not None:
                self._sync_domain(d)

    # ------------------------------------------------------------------ checks and the end
    def check_invariants(self) -> None:
        """No host over-committed: active domains within the host's cores, memory and
        max_active; running jobs within their domain; running jobs only in active domains."""
        for hname, names in self.host_domains.items():
            h = self.hosts[hname]
            act = [self.domains[n] for n in names if self.domains[n].state in _ACTIVE_LIKE]
            c = sum(d.cores for d in act)
            m = sum(d.memory for d in act)
            if len(act) > h.max_active or c > h.cores or m > h.memory_mb:
                self._violation(f"host {hname} over-committed: {len(act)} active domains (max {h.max_active}), "
                                f"{c}/{h.cores} cores, {m}/{h.memory_mb} MB")
        for d in self.domains.values():
            running = [self.jobs[j] for j in d.jobs if self.jobs[j].state == "running"]
            if not running:
                continue
            if d.state not in (DomainState.FREE, DomainState.RUNNING):
                self._violation(f"domain {d.name} is {d.state.value} but runs {sorted(j.job.id for j in running)}")
            c = sum(j.job.cores for j in running)
            m = sum(j.job.memory_mb for j in running)
            if c > d.cores or m > d.memory:
                self._violation(f"domain {d.name} over-committed: jobs use {c}/{d.cores} cores, {m}/{d.memory} MB")

    def finish(self) -> None:
        """Stop here: every job not ended is reported never-runnable, with the reason."""
        self._finish()

    def _finish(self) -> None:
        """Jobs still waiting when nothing more can happen are reported, with the reason."""
        if getattr(self, "_finished", False):
            return
        self._finished = True
        self._heap.clear()
        plan = self.sched.last_plan
        reasons = dict(plan.pending) if plan is not None else {}
        # in arrival order: the live jobs, then those the stream has not handed on yet
        for sj in itertools.chain(list(self.jobs.values()), self._arrivals):
            if sj.state == "future" and sj.rank < 0:
                sj.rank = self._arrived
                self._arrived += 1
                if self.keep_jobs:
                    self._kept.append(sj)
            if sj.state in ("queued", "future"):
                p = reasons.get(sj.job.id)
                why = str(p) if p is not None else "never started"
                self._drop_never(sj, f"still waiting at the end of the simulation ({why})", "end")
            elif sj.state in ("suspended", "running"):
                if sj.state == "running":
                    self._freeze(sj)
                    why = f"still running in domain {sj.domain} when the simulation stopped"
                else:
                    why = f"suspended in domain {sj.domain} and never resumed before the simulation ended"
                sj.state = "never"
                self.dropped += 1
                self._gone(sj, Unrunnable(sj.trace_id, sj.job.id, sj.job.vo, sj.klass, why, "end"))

    # ------------------------------------------------------------------ results
    @property
    def end_time(self) -> float:
        return self._last_t

    def finished_jobs(self) -> list[SimJob]:
        return [sj for sj in self.order if sj.state == "done"]



# --------------------------------------------------------------------------- a whole replay

@attrs.define(slots=True, eq=False)
class Replay:
    """A trace indexed for one policy and host set, ready to simulate any number of times.

    Only the index is held (:class:`~vmsched.sim.stream.JobStream`): each
    :meth:`simulation` reads the mapped jobs back as it goes, so no replay holds the whole
    trace. :attr:`jobs` and :attr:`unrunnable` read them all at once, for tests and small
    traces."""

    policy: Policy
    stream: JobStream
    mapping_choices: list
    hosts_desc: str

    @property
    def trace_info(self) -> dict:
        return self.stream.trace_info

    @property
    def assumptions(self) -> list:
        return list(self.stream.assumptions)

    @property
    def vos(self) -> tuple[str, ...]:
        """The VOs of the jobs to replay."""
        return self.stream.vos

    @property
    def jobs(self) -> list[SimJob]:
        """Every replayable job, mapped (the whole trace in memory: for tests and small traces)."""
        return [r for r in self.stream.mapped() if isinstance(r, SimJob)]

    @property
    def unrunnable(self) -> list[Unrunnable]:
        """Every job the mapping refused, with its reason."""
        return [r for r in self.stream.mapped() if not isinstance(r, SimJob)]

    def simulation(self, policy: Policy | None = None, *, job_map: Callable[[Job], Job] | None = None,
                   **kw) -> Simulation:
        """A fresh simulation streaming the trace; ``job_map`` changes each job first (the
        static baseline points jobs that name an image at their VO's copy)."""
        return Simulation(policy or self.policy, self.stream, job_map=job_map, **kw)


def mapping_choices(policy: Policy) -> list[str]:
    """What holds for the whole replay rather than for some jobs (those are counted by the
    Mapper, job by job, so that the report lists only assumptions that touched a job)."""
    if policy.trace is None:
        return ["the policy has no [trace] section: the default mapping (its stand-ins are counted below)"]
    return []


def prepare(policy: Policy, trace_path, *, hosts: str | None = None, skip_bad: bool = False,
            limit: int | None = None, spool: bool = True) -> Replay:
    """Resolve the host set (``--hosts`` spec, ``[trace] hosts`` or the policy's) and index
    the trace: read and map every job once, keeping counts in memory and the mapped jobs in
    a spool file (``spool=False``: none, every replay maps the trace again; see
    :mod:`vmsched.sim.stream`). Raises TraceError / PolicyError on bad input."""
    from vmsched.sim.mapping import check_domains_fit, policy_with_hosts, resolve_hosts
    from vmsched.sim.stream import index_trace
    host_set, desc = resolve_hosts(policy, hosts)
    policy = policy_with_hosts(policy, host_set)
    check_domains_fit(policy)
    stream = index_trace(policy, trace_path, skip_bad=skip_bad, limit=limit, spool=spool)
    return Replay(policy, stream, mapping_choices(policy), desc)


__all__ += ["Replay", "prepare", "mapping_choices"]
