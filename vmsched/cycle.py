"""The Scheduler: the cycle API a batch system calls, and the order in which a cycle decides.

``on_submit(job) -> queue`` routes a job when it arrives; ``on_cycle(snapshot, now) -> Plan``
decides a cycle from the server's view; ``on_job_end(job, usage)`` charges fair-share usage.
Between cycles the Scheduler keeps the cluster in memory (:class:`vmsched.cluster.Cluster`),
so adapters that know what changed (the simulator, an event-driven server hook) can feed
changes with ``set_job``/``set_domain``/``remove_job`` and call ``cycle(now)``; ``on_cycle``
works out the changes from a full snapshot and then does the same. Either way the same code
decides, and the same input gives the same plan: a fresh Scheduler given a snapshot always
decides the same, whatever order the server lists things in. Exact ties (two equally good
domains, two jobs of equal priority submitted the same second) go to the one the scheduler
has known longest, so a scheduler with a different history may break such a tie the other
way.

A cycle is the list of phases in :data:`PHASES`, run in that order over one
:class:`~vmsched.context.CycleContext`; each phase is one module under ``vmsched/policies/``.
A new policy is a new phase module and one line in that list. Extension points for site
plugins are in :mod:`vmsched.extensions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from vmsched.cluster import Cluster, make_engine
from vmsched.context import CycleContext
from vmsched.extensions import (Code, FilterPlugin, PreemptPlugin, PreFilterPlugin, QueueSortPlugin, ScorePlugin,
                                Status, load_plugin)
from vmsched.matching import SLOT_ACTIVE, Engine
from vmsched.model import Job, Snapshot
from vmsched.plan import Pending, PendingReasons, Plan
from vmsched.policies.bound import BoundJobs
from vmsched.policies.class_preemption import ClassPreemption
from vmsched.policies.factors import FairShareFactors
from vmsched.policies.fairshare import usage_amount
from vmsched.policies.flavor_jobs import FlavorJobs
from vmsched.policies.idle import IdleShutdown
from vmsched.policies.image_share import ImageShare
from vmsched.policies.match import Match
from vmsched.policies.placement import Place
from vmsched.policies.reasons import Reasons
from vmsched.policies.reservations import ReserveForPreemptors
from vmsched.policies.resume import ResumeFrozen
from vmsched.policies.route_jobs import RouteJobs
from vmsched.policies.routing import route
from vmsched.policies.second_chance import SecondChance
from vmsched.policies.share_preemption import SharePreemption
from vmsched.policies.warm_pool import WarmPool
from vmsched.policyfile import Policy
from vmsched.usage import UsageStore

__all__ = ["Scheduler", "Phase", "PHASES", "Status", "Code", "PreFilterPlugin", "FilterPlugin", "QueueSortPlugin",
           "ScorePlugin", "PreemptPlugin", "make_engine"]


class Phase(Protocol):
    """One step of a cycle: reads the cluster and the plan so far from ``ctx`` and adds to it."""

    name: str

    def run(self, ctx: CycleContext) -> None: ...


#: The order in which a cycle decides. Frozen work first gets its room back, then shares
#: and reservations close what must stay closed, then jobs are matched into open room (jobs
#: that named a flavor into domains of that flavor, or a boot of one); what is left waiting
#: may preempt (by class: owner reclaim and share take-back are tried for
#: each job that finds no victim), may move a host by share, or gets a domain activated or
#: booted; held-back domains nobody took go back; idle domains shut down; warm pools fill;
#: and every job still waiting gets its reason.
PHASES: tuple[Phase, ...] = (
    FairShareFactors(),
    RouteJobs(),
    ResumeFrozen(),
    ImageShare(),
    ReserveForPreemptors(),
    BoundJobs(),
    Match(),
    FlavorJobs(),
    ClassPreemption(),
    SharePreemption(),
    Place(),
    SecondChance(),
    IdleShutdown(),
    WarmPool(),
    Reasons(),
)


class Scheduler(Cluster):
    """One site's scheduler. Not thread-safe: a batch system runs one cycle at a time."""

    def __init__(self, policy: Policy, *, engine: Engine | None = None, store: UsageStore | None = None,
                 plugins: Mapping[str, Any] | None = None, phases: tuple[Phase, ...] = PHASES):
        super().__init__(policy, engine=engine, store=store)
        if plugins is None:
            plugins = {k: load_plugin(v, k) for k, v in policy.plugins.items()}
        self.plugins = dict(plugins)
        self.phases = tuple(phases)
        self.last_plan: Plan | None = None

    # ------------------------------------------------------------------ the cycle API
    def on_submit(self, job: Job) -> str | None:
        """The execution queue a newly submitted job goes to (None: no queue accepts it)."""
        return route(self.with_vo(job), self.policy.queues).queue

    def on_job_end(self, job: Job | str, usage: float | Mapping[str, float] | None = None,
                   now: float | None = None) -> bool:
        """Charge the job's usage to its VO/group/user and forget it. Idempotent per job id,
        so a server that reports the same end twice charges it once."""
        if isinstance(job, str):
            found = self.jobs.get(job) or self._gone.get(job)
            if found is None:
                raise ValueError(f"on_job_end: job {job} is unknown to the scheduler; pass the Job itself "
                                 "so its usage is not lost")
            job = found
        if usage is None and now is None:
            raise ValueError(f"on_job_end: job {job.id}: give the usage (walltime seconds) or the end time; "
                             "charging nothing would lose the usage")
        if isinstance(usage, Mapping):
            seconds = float(usage.get("walltime", 0.0))
        elif usage is None:
            end = now if now is not None else job.start_time or 0.0
            seconds = max(0.0, end - (job.start_time if job.start_time is not None else end))
        else:
            seconds = float(usage)
        fs = self.policy.fairshare
        amount = usage_amount(job.cores, job.memory_mb, seconds, fs.usage, mb_per_core=fs.memory_mb_per_core)
        at = now if now is not None else (job.start_time or 0.0) + seconds
        recorded = self.store.record(job.id, (job.vo, job.group, job.user), amount, at)
        if recorded:
            self._charge_memory((job.vo, job.group, job.user), amount, at)
        self.remove_job(job.id)
        if job.domain in self.domains:
            self._settle(job.domain, at)
        return recorded

    def on_cycle(self, snapshot: Snapshot, now: float | None = None) -> Plan:
        """One cycle from a full snapshot: the state is brought up to it, then decided."""
        self.sync(snapshot)
        return self.cycle(snapshot.time if now is None else now)

    def cycle(self, now: float) -> Plan:
        """Decide one cycle from the state as it stands: each phase in turn, then the plan."""
        if self._never and self._never_checked != self._verdict_version():
            # Hosts or domains changed: a job that could never run may run now.
            for jid in sorted(self._never):
                self.set_job(attrs.evolve(self.jobs[jid], id=jid), force=True)
        self._never_checked = self._verdict_version()
        ctx = CycleContext(self, now)
        for phase in self.phases:
            phase.run(ctx)
        plan = self._finish(ctx)
        self.last_plan = plan
        return plan

    def _finish(self, ctx: CycleContext) -> Plan:
        """What no phase owns: reserved domains open again for the next cycle's own
        decision, and the plan itself."""
        self.engine.set_slot_states([self._slot_h[name] for name in ctx.reserved
                                     if name in self.domains and self.domains[name].state.active], SLOT_ACTIVE)
        if any(not self.domain_jobs.get(n) for n in ctx.claimed):
            # Domains this cycle set aside without giving them a job (switched out, booting
            # for a job, evicted) are free to lifecycle again next cycle: what failed with
            # them claimed may succeed then.
            self._lifecycle_epoch += 1
        return Plan(ctx.now, tuple(ctx.actions), PendingReasons(ctx.pending, ctx.pending_groups, ctx.pending_late),
                    self.engine.name)

    @property
    def share_pace(self) -> tuple[float, float]:
        """When share preemption last looked, and from when it looks again (it paces itself
        to once per cycle interval): a simulator that skips quiet cycles wakes for a job
        reaching ``share_after`` after the last look, no earlier than the next."""
        return self._share_looked, self._share_next

    def explain(self, job_id: str) -> Pending | None:
        return self.last_plan.reason(job_id) if self.last_plan else None
