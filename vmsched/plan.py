"""What one cycle decides: an ordered list of actions and a reason for every job left waiting,
and what each action does to the cluster.

The batch-system adapters and the simulator carry out the same actions in the same order;
an action that depends on an earlier one (run a job in a domain being resumed) simply
follows it, and the executor waits for the earlier one to finish.

What an action does is defined here once (:func:`apply_action`, :func:`apply`) and used by
the simulator, the tests and the adapters alike, so that they cannot drift apart on what,
say, suspending a domain does to the jobs in it. Only the immediate effect is defined: a
boot leaves a domain booting, a shutdown leaves it shutting down. How long those take is
the executor's business; it calls :func:`finish_boot` and :func:`finish_shutdown` when
they are over (the tests' world, which has no delays, at once).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from vmsched.model import Domain, DomainState, JobState, Snapshot

__all__ = ["Action", "RouteJob", "RunJob", "BootDomain", "ResumeDomain", "SuspendDomain",
           "ShutdownDomain", "SuspendJob", "ResumeJob", "RequeueJob", "BindJob", "Pending",
           "Verdict", "Plan", "PendingReasons", "PlanError", "ClusterState", "SnapshotState", "apply", "apply_action",
           "check_action", "finish_boot", "finish_shutdown", "finish_job", "settle_domain"]


@attrs.frozen(slots=True)
class Action:
    verb = "action"

    def to_json(self) -> dict[str, Any]:
        out = {"action": self.verb}
        out.update(attrs.asdict(self))
        return out

    def __str__(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in attrs.asdict(self).items())
        return f"{self.verb} {args}"


@attrs.frozen(slots=True)
class RouteJob(Action):
    """``pbs_movejob`` from a routing queue to the execution queue that accepted the job."""

    verb = "route"
    job: str
    queue: str


@attrs.frozen(slots=True)
class RunJob(Action):
    """``pbs_runjob`` on the node that is this domain."""

    verb = "run"
    job: str
    domain: str


@attrs.frozen(slots=True)
class BootDomain(Action):
    """Create and start a VM of ``image`` and ``flavor`` on ``host`` (dynamic instantiation)."""

    verb = "boot"
    domain: str
    host: str
    image: str
    flavor: str
    cores: int
    memory_mb: int


@attrs.frozen(slots=True)
class ResumeDomain(Action):
    """Make a domain active: thaw a suspended one, or activate an occupied one."""

    verb = "resume-domain"
    domain: str


@attrs.frozen(slots=True)
class SuspendDomain(Action):
    """Freeze a domain (and the jobs in it) so another on the host can take its place."""

    verb = "suspend-domain"
    domain: str
    by: str | None = None  # the preemptor's job id; None when the domain is idle
    share_for: str | None = None  # frozen for fair share: the VO under its share that takes the host


@attrs.frozen(slots=True)
class ShutdownDomain(Action):
    verb = "shutdown"
    domain: str


@attrs.frozen(slots=True)
class SuspendJob(Action):
    """``pbs_sigjob(job, "suspend")``."""

    verb = "suspend-job"
    job: str
    by: str | None = None  # the preemptor's job id


@attrs.frozen(slots=True)
class ResumeJob(Action):
    """``pbs_sigjob(job, "resume")``."""

    verb = "resume-job"
    job: str


@attrs.frozen(slots=True)
class RequeueJob(Action):
    """``pbs_rerunjob``: the job loses its work so far and waits again."""

    verb = "requeue"
    job: str
    by: str | None = None  # the preemptor's job id


@attrs.frozen(slots=True)
class BindJob(Action):
    """WNoDeS: the job waits, bound to the domain being prepared for it (same job id)."""

    verb = "bind"
    job: str
    domain: str


class Verdict(enum.Enum):
    """OpenPBS's distinction: *not now* (capacity, share, a boot under way) versus *never*
    (nothing in this cluster could ever run it as asked)."""

    NOT_NOW = "not now"
    NEVER = "never"


@attrs.frozen(slots=True)
class Pending:
    """Why a job is still waiting; ``text`` becomes the PBS job comment."""

    verdict: Verdict
    text: str

    def __str__(self) -> str:
        return f"{self.verdict.value}: {self.text}"


class PendingReasons(Sequence):
    """Why each job left waiting waits: a sequence of ``(job id, Pending)`` sorted by job id.

    A cycle at a saturated site leaves a hundred thousand jobs waiting, most of them in a
    few groups that wait for the same reason; sorting every job's reason into a list each
    cycle cost more than the decision. So the reasons are kept as the cycle made them
    (single jobs, and groups of jobs sharing one ``Pending``) and sorted only when
    something reads them as a whole; :meth:`get` answers for one job without that.

    ``early`` are reasons given before the groups, ``groups`` a list of (job ids,
    Pending) or of objects whose ``pairs()`` gives (job id, Pending) when read, ``late``
    reasons given after them; a later one wins for a job in two."""

    __slots__ = ("_early", "_groups", "_late", "_sorted", "_index")

    def __init__(self, early: Mapping[str, Pending] | Iterable[tuple[str, Pending]] = (),
                 groups: Iterable[tuple[Sequence[str], Pending]] = (),
                 late: Mapping[str, Pending] | None = None):
        self._early = dict(early)
        self._groups = list(groups)
        self._late = dict(late or {})
        self._sorted: tuple[tuple[str, Pending], ...] | None = None
        self._index: dict[str, Pending] | None = None

    def _all(self) -> dict[str, Pending]:
        if self._index is None:
            out = dict(self._early)
            for group in self._groups:
                if isinstance(group, tuple):
                    out.update(dict.fromkeys(group[0], group[1]))
                else:        # a group whose jobs have reasons of their own, listed when read
                    out.update(group.pairs())
            out.update(self._late)
            self._index = out
        return self._index

    def _items(self) -> tuple[tuple[str, Pending], ...]:
        if self._sorted is None:
            self._sorted = tuple(sorted(self._all().items()))
        return self._sorted

    def __len__(self) -> int:
        return len(self._all())

    def __getitem__(self, i):
        return self._items()[i]

    def __iter__(self):
        return iter(self._items())

    def __eq__(self, other) -> bool:
        if isinstance(other, PendingReasons):
            return self._all() == other._all()
        if isinstance(other, (tuple, list)):
            return self._items() == tuple(other)
        return NotImplemented

    def __hash__(self):
        return hash(self._items())

    def __repr__(self) -> str:
        return f"PendingReasons({len(self)} jobs)"

    def get(self, job_id: str) -> Pending | None:
        p = self._late.get(job_id)
        if p is not None:
            return p
        if not self._groups:
            return self._early.get(job_id)
        return self._all().get(job_id)

    def never(self, job_id: str) -> Pending | None:
        """The job's reason if it is *never*, without sorting anything: a never verdict is
        always a single job's (a group waits for capacity, which is *not now*)."""
        p = self._late.get(job_id)
        if p is None:
            p = self._early.get(job_id)
        return p if p is not None and p.verdict is Verdict.NEVER else None


def _pending(value) -> PendingReasons:
    return value if isinstance(value, PendingReasons) else PendingReasons(value)


@attrs.frozen(slots=True)
class Plan:
    time: float
    actions: tuple[Action, ...]
    pending: PendingReasons = attrs.field(converter=_pending)
    engine: str = "python"

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "engine": self.engine, "actions": [a.to_json() for a in self.actions],
                "pending": {j: {"verdict": p.verdict.value, "reason": p.text} for j, p in self.pending}}

    def reason(self, job_id: str) -> Pending | None:
        return self.pending.get(job_id)


# --------------------------------------------------------------------------- what actions do

class PlanError(ValueError):
    """An action names a job or domain the cluster does not have, or asks for what the
    state forbids (running a job in a suspended domain, or beyond the domain's size).

    One type for every such case, so that an executor can refuse or count them alike:
    ``action`` is the action (or what was asked, for the ``finish_*`` steps), ``why`` the
    reason in one line."""

    def __init__(self, action: Action | str, why: str):
        self.action, self.why = action, why
        super().__init__(f"{action}: {why}")


class ClusterState:
    """The state the actions read and change, as a few primitives that only store.

    Every rule (which state allows which action, and what follows from it) is in the
    functions below; an implementation keeps the state however suits it. Two do:
    :class:`SnapshotState`, over a snapshot's frozen models, and the simulator, which
    hangs its accounting and its delays (end events, resume waits) on these primitives,
    so that it keeps its incremental speed without a second definition of the actions.
    """

    # -- what the actions read
    def job_state(self, job_id: str) -> JobState | None:
        """None: the cluster has no such job."""
        raise NotImplementedError

    def job_domain(self, job_id: str) -> str | None:
        """KeyError: no such job."""
        raise NotImplementedError

    def job_size(self, job_id: str) -> tuple[int, int]:
        """(cores, memory_mb)."""
        raise NotImplementedError

    def domain_state(self, name: str) -> DomainState | None:
        """None: the cluster has no such domain."""
        raise NotImplementedError

    def domain_size(self, name: str) -> tuple[int, int]:
        """(cores, memory_mb)."""
        raise NotImplementedError

    def domain_place(self, name: str) -> tuple[str, str]:
        """(host, image)."""
        raise NotImplementedError

    def domain_jobs(self, name: str) -> set[str]:
        """The jobs running or suspended in the domain (the caller does not change it)."""
        raise NotImplementedError

    def domain_load(self, name: str) -> tuple[int, int]:
        """(cores, memory_mb) that the jobs running in the domain take; suspended ones take
        none (they can be swapped out), which is what lets a preemptor run beside them."""
        raise NotImplementedError

    def has_host(self, name: str) -> bool:
        raise NotImplementedError

    # -- what the actions change
    def start_job(self, job_id: str, domain: str, now: float) -> None:
        """Queued -> running in ``domain``, started at ``now``."""
        raise NotImplementedError

    def freeze_job(self, job_id: str) -> None:
        """Running -> suspended; it stays in its domain."""
        raise NotImplementedError

    def thaw_job(self, job_id: str) -> None:
        """Suspended -> running in the same domain."""
        raise NotImplementedError

    def requeue_job(self, job_id: str) -> None:
        """Back to the queue: no domain, no start time."""
        raise NotImplementedError

    def end_job(self, job_id: str) -> str | None:
        """The job is gone from its domain and from the cluster; returns the domain it was
        in. KeyError: no such job."""
        raise NotImplementedError

    def route_job(self, job_id: str, queue: str) -> None:
        raise NotImplementedError

    def bind_job(self, job_id: str, domain: str) -> None:
        raise NotImplementedError

    def set_domain_state(self, name: str, state: DomainState, now: float) -> None:
        """The domain enters ``state`` at ``now`` (its ``since``)."""
        raise NotImplementedError

    def add_domain(self, domain: Domain) -> None:
        raise NotImplementedError

    def remove_domain(self, name: str) -> None:
        """The domain is gone; a job bound to it is bound no more."""
        raise NotImplementedError

    def cache_image(self, host: str, image: str) -> None:
        """The host holds ``image`` from now on (a later boot of it downloads nothing)."""
        raise NotImplementedError


_ACTIVE = (DomainState.FREE, DomainState.RUNNING)
_INACTIVE = (DomainState.SUSPENDED, DomainState.OCCUPIED)
_QUEUED, _RUNNING, _SUSPENDED = (JobState.QUEUED,), (JobState.RUNNING,), (JobState.SUSPENDED,)


def _state_words(states) -> str:
    return " or ".join(s.name.lower() for s in states)


def _job(c: ClusterState, a, job_id: str, states: tuple[JobState, ...]) -> JobState:
    st = c.job_state(job_id)
    if st is None:
        raise PlanError(a, f"job {job_id} is unknown")
    if st not in states:
        raise PlanError(a, f"job {job_id} is {st.name.lower()}, not {_state_words(states)}")
    return st


def _domain(c: ClusterState, a, name: str, states: tuple[DomainState, ...] | None = None,
            whose: str = "domain") -> DomainState:
    st = c.domain_state(name)
    if st is None:
        raise PlanError(a, f"{whose} {name} is unknown")
    if states is not None and st not in states:
        want = "active" if states is _ACTIVE else " or ".join(s.value for s in states)
        raise PlanError(a, f"{whose} {name} is {st.value}, not {want}")
    return st


def _fits(c: ClusterState, a, job_id: str, domain: str) -> None:
    """The job (not running yet) fits the domain beside the jobs running there."""
    cores, memory = c.job_size(job_id)
    used_cores, used_memory = c.domain_load(domain)
    cores += used_cores
    memory += used_memory
    dc, dm = c.domain_size(domain)
    if cores > dc or memory > dm:
        raise PlanError(a, f"job {job_id} does not fit domain {domain}: with the jobs running there it needs "
                           f"{cores}/{dc} cores, {memory}/{dm} MB")


def settle_domain(c: ClusterState, name: str, now: float) -> None:
    """An active domain is *running* while it holds a job and *free* when it holds none
    (Magrathea's names): what flips it is the jobs in it, whichever way they came or went."""
    st = c.domain_state(name)
    if st is DomainState.RUNNING or st is DomainState.FREE:
        want = DomainState.RUNNING if c.domain_jobs(name) else DomainState.FREE
        if want is not st:
            c.set_domain_state(name, want, now)


# One function per verb: it checks, and with ``do`` it also changes. Checking and changing
# in one place keeps the two from disagreeing about what state an action needs.

def _route(c, a: RouteJob, now, do):
    _job(c, a, a.job, _QUEUED)
    if do:
        c.route_job(a.job, a.queue)


def _run(c, a: RunJob, now, do):
    # (the common case tested inline: the simulator runs a hundred thousand of these)
    if c.job_state(a.job) is not JobState.QUEUED:
        _job(c, a, a.job, _QUEUED)
    st = c.domain_state(a.domain)
    if st is not DomainState.RUNNING and st is not DomainState.FREE:
        _domain(c, a, a.domain, _ACTIVE)
    _fits(c, a, a.job, a.domain)
    if do:
        c.start_job(a.job, a.domain, now)
        if st is not DomainState.RUNNING:
            c.set_domain_state(a.domain, DomainState.RUNNING, now)


def _boot(c, a: BootDomain, now, do):
    if c.domain_state(a.domain) is not None:
        raise PlanError(a, f"domain {a.domain} exists already")
    if not c.has_host(a.host):
        raise PlanError(a, f"host {a.host} is unknown")
    try:
        d = Domain(a.domain, a.host, a.image, a.flavor, DomainState.BOOTING, a.cores, a.memory_mb, since=now)
    except (ValueError, TypeError) as e:
        raise PlanError(a, str(e)) from None
    if do:
        c.add_domain(d)


def _resume_domain(c, a: ResumeDomain, now, do):
    _domain(c, a, a.domain, _INACTIVE)
    if do:
        inside = c.domain_jobs(a.domain)
        c.set_domain_state(a.domain, DomainState.RUNNING if inside else DomainState.FREE, now)
        for jid in sorted(inside):
            if c.job_state(jid) is JobState.SUSPENDED:
                c.thaw_job(jid)


def _suspend_domain(c, a: SuspendDomain, now, do):
    _domain(c, a, a.domain, _ACTIVE)
    if do:
        inside = c.domain_jobs(a.domain)
        for jid in sorted(inside):
            if c.job_state(jid) is JobState.RUNNING:
                c.freeze_job(jid)
        c.set_domain_state(a.domain, DomainState.SUSPENDED if inside else DomainState.OCCUPIED, now)


def _shutdown(c, a: ShutdownDomain, now, do):
    st = _domain(c, a, a.domain)
    inside = c.domain_jobs(a.domain)
    if inside:
        raise PlanError(a, f"domain {a.domain} holds jobs {', '.join(sorted(inside))}")
    if do and st is not DomainState.SHUTTING_DOWN:     # asked twice: already on its way
        c.set_domain_state(a.domain, DomainState.SHUTTING_DOWN, now)


def _suspend_job(c, a: SuspendJob, now, do):
    _job(c, a, a.job, _RUNNING)
    if do:
        c.freeze_job(a.job)


def _resume_job(c, a: ResumeJob, now, do):
    _job(c, a, a.job, _SUSPENDED)
    domain = c.job_domain(a.job)
    st = _domain(c, a, domain, _ACTIVE, whose=f"job {a.job}'s domain")
    _fits(c, a, a.job, domain)
    if do:
        c.thaw_job(a.job)
        if st is not DomainState.RUNNING:
            c.set_domain_state(domain, DomainState.RUNNING, now)


def _requeue(c, a: RequeueJob, now, do):
    _job(c, a, a.job, (JobState.RUNNING, JobState.SUSPENDED))
    if do:
        domain = c.job_domain(a.job)
        c.requeue_job(a.job)
        if domain is not None:
            settle_domain(c, domain, now)


def _bind(c, a: BindJob, now, do):
    _job(c, a, a.job, _QUEUED)
    _domain(c, a, a.domain)
    if do:
        c.bind_job(a.job, a.domain)


_RULES = {RouteJob: _route, RunJob: _run, BootDomain: _boot, ResumeDomain: _resume_domain,
          SuspendDomain: _suspend_domain, ShutdownDomain: _shutdown, SuspendJob: _suspend_job,
          ResumeJob: _resume_job, RequeueJob: _requeue, BindJob: _bind}


def apply_action(c: ClusterState, action: Action, now: float) -> None:
    """Carry out one action's immediate effect at ``now``, or raise :class:`PlanError`
    (and change nothing) when the state does not allow it."""
    rule = _RULES.get(type(action))
    if rule is None:
        raise PlanError(action, "unknown action")
    rule(c, action, now, True)


def check_action(c: ClusterState, action: Action) -> None:
    """Raise :class:`PlanError` where :func:`apply_action` would; change nothing."""
    rule = _RULES.get(type(action))
    if rule is None:
        raise PlanError(action, "unknown action")
    rule(c, action, 0.0, False)


def finish_boot(c: ClusterState, name: str, now: float) -> bool:
    """A boot is over: the domain is active (running if a job is already in it) and its
    host keeps the image. False when there is nothing to finish: the domain is gone, or
    was shut down while booting (a boot racing a shutdown is normal, not an error)."""
    if c.domain_state(name) is not DomainState.BOOTING:
        return False
    c.set_domain_state(name, DomainState.RUNNING if c.domain_jobs(name) else DomainState.FREE, now)
    c.cache_image(*c.domain_place(name))
    return True


def finish_shutdown(c: ClusterState, name: str, now: float) -> bool:
    """A shutdown is over: the domain is gone. Jobs still in it go back to the queue, as
    the server requeues them. False when the domain was already gone."""
    if c.domain_state(name) is None:
        return False
    for jid in sorted(c.domain_jobs(name)):
        c.requeue_job(jid)
    c.remove_domain(name)
    return True


def finish_job(c: ClusterState, job_id: str, now: float) -> None:
    """A job ended: it leaves the cluster, and its domain, if now empty, is free."""
    try:
        domain = c.end_job(job_id)
    except KeyError:
        raise PlanError(f"end {job_id}", f"job {job_id} is unknown") from None
    if domain is not None:
        settle_domain(c, domain, now)


class SnapshotState(ClusterState):
    """A snapshot's models, changed action by action (each change a new frozen model), and
    read back as a snapshot with :meth:`snapshot`."""

    def __init__(self, snapshot: Snapshot):
        self.time = snapshot.time
        self.hosts = {h.name: h for h in snapshot.hosts}
        self.domains = {d.name: d for d in snapshot.domains}
        self.jobs = {j.id: j for j in snapshot.jobs}
        self._inside: dict[str, set[str]] = {}
        for j in snapshot.jobs:
            if j.domain is not None and j.state in (JobState.RUNNING, JobState.SUSPENDED):
                self._inside.setdefault(j.domain, set()).add(j.id)

    def snapshot(self, time: float | None = None) -> Snapshot:
        return Snapshot(self.time if time is None else time, tuple(self.hosts.values()),
                        tuple(self.domains.values()), tuple(self.jobs.values()))

    # reads
    def job_state(self, job_id):
        j = self.jobs.get(job_id)
        return None if j is None else j.state

    def job_domain(self, job_id):
        return self.jobs[job_id].domain

    def job_size(self, job_id):
        j = self.jobs[job_id]
        return j.cores, j.memory_mb

    def domain_state(self, name):
        d = self.domains.get(name)
        return None if d is None else d.state

    def domain_size(self, name):
        d = self.domains[name]
        return d.cores, d.memory_mb

    def domain_place(self, name):
        d = self.domains[name]
        return d.host, d.image

    def domain_jobs(self, name):
        return self._inside.get(name, set())

    def domain_load(self, name):
        running = [self.jobs[j] for j in self.domain_jobs(name) if self.jobs[j].state is JobState.RUNNING]
        return sum(j.cores for j in running), sum(j.memory_mb for j in running)

    def has_host(self, name):
        return name in self.hosts

    # changes
    def _set_job(self, job_id, **changes):
        self.jobs[job_id] = attrs.evolve(self.jobs[job_id], **changes)

    def start_job(self, job_id, domain, now):
        self._set_job(job_id, state=JobState.RUNNING, domain=domain, start_time=now)
        self._inside.setdefault(domain, set()).add(job_id)

    def freeze_job(self, job_id):
        self._set_job(job_id, state=JobState.SUSPENDED)

    def thaw_job(self, job_id):
        self._set_job(job_id, state=JobState.RUNNING)

    def _leave(self, job_id):
        domain = self.jobs[job_id].domain
        if domain in self._inside:
            self._inside[domain].discard(job_id)

    def requeue_job(self, job_id):
        self._leave(job_id)
        self._set_job(job_id, state=JobState.QUEUED, domain=None, start_time=None)

    def end_job(self, job_id):
        domain = self.jobs[job_id].domain
        self._leave(job_id)
        del self.jobs[job_id]
        return domain

    def route_job(self, job_id, queue):
        self._set_job(job_id, queue=queue)

    def bind_job(self, job_id, domain):
        self._set_job(job_id, domain=domain)

    def set_domain_state(self, name, state, now):
        self.domains[name] = attrs.evolve(self.domains[name], state=state, since=now)

    def add_domain(self, domain):
        self.domains[domain.name] = domain

    def remove_domain(self, name):
        del self.domains[name]
        self._inside.pop(name, None)
        for j in [j for j in self.jobs.values() if j.domain == name]:
            self._set_job(j.id, domain=None)

    def cache_image(self, host, image):
        h = self.hosts[host]
        if image not in h.cached_images:
            self.hosts[host] = attrs.evolve(h, cached_images=h.cached_images | {image})


def apply(snapshot: Snapshot, plan: Plan, *, instant: bool = False, check=None) -> Snapshot:
    """The snapshot after ``plan``'s actions, carried out in order at ``plan.time``.

    Raises :class:`PlanError` at the first action the state does not allow. Boots are left
    booting and shutdowns shutting down, as a server reports them right after the plan;
    ``instant`` finishes them at once (a world without delays). ``check(state, action)``,
    when given, is called before each action with the :class:`SnapshotState` as it then
    is, for rules beyond the state's (the tests check a plan against its policy)."""
    state = SnapshotState(snapshot)
    now = plan.time
    for a in plan.actions:
        if check is not None:
            check_action(state, a)
            check(state, a)
        apply_action(state, a, now)
        if instant:
            if type(a) is BootDomain:
                finish_boot(state, a.domain, now)
            elif type(a) is ShutdownDomain:
                finish_shutdown(state, a.domain, now)
    return state.snapshot(now)
