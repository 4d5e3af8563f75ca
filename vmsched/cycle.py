"""The Scheduler: the cycle API a batch system calls.

``on_submit(job) -> queue`` routes a job when it arrives; ``on_cycle(snapshot, now) -> Plan``
decides a cycle from the server's view; ``on_job_end(job, usage)`` charges fair-share usage.
Between cycles the Scheduler keeps the cluster in its matcher (an in-memory core), so
adapters that know what changed (the simulator, an event-driven server hook) can feed
changes with ``set_job``/``set_domain``/``remove_job`` and call ``cycle(now)``; ``on_cycle``
works out the changes from a full snapshot and then does the same. Either way the same code
decides, and the same input gives the same plan: a fresh Scheduler given a snapshot always
decides the same, whatever order the server lists things in. Exact ties (two equally good
domains, two jobs of equal priority submitted the same second) go to the one the scheduler
has known longest, so a scheduler with a different history may break such a tie the other
way.

Extension points (``[plugins]`` in the policy), one small interface each, Kubernetes-style:
``pre_filter`` (may a job be considered at all this cycle), ``filter`` (may it run in this
domain), ``queue_sort`` and ``score`` (order jobs, rank domains: these take the Python path,
since a site plugin is Python), ``preempt`` (may these victims be displaced).
"""

from __future__ import annotations

import enum
import heapq
import importlib
import warnings
from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from vmsched.matching import (MODE_REQUEUE, MODE_SUSPEND_DOMAIN, MODE_SUSPEND_JOBS, SLOT_ACTIVE, SLOT_IDLE,
                              SLOT_STARTING, SLOT_UNAVAILABLE, Engine, EngineError, PyEngine, Reason)
from vmsched.model import Domain, DomainState, Host, Job, JobState, QueueKind, Snapshot
from vmsched.plan import (Action, BindJob, Pending, Plan, RequeueJob, ResumeDomain, ResumeJob, RouteJob,
                          RunJob, ShutdownDomain, SuspendDomain, SuspendJob, Verdict)
from vmsched.policies import lifecycle, partition
from vmsched.policies.fairshare import FairShare, ShareTree, usage_amount
from vmsched.policies.preemption import engine_mode, find_owner_reclaim
from vmsched.policies.routing import route
from vmsched.policyfile import Policy
from vmsched.usage import UsageStore, decayed_usage

__all__ = ["Scheduler", "Status", "Code", "PreFilterPlugin", "FilterPlugin", "QueueSortPlugin",
           "ScorePlugin", "PreemptPlugin", "make_engine"]


# --------------------------------------------------------------------------- extension points

class Code(enum.Enum):
    SUCCESS = "success"
    UNSCHEDULABLE = "unschedulable"            # not now
    UNSCHEDULABLE_NEVER = "unschedulable-never"  # never, as asked


@attrs.frozen(slots=True)
class Status:
    code: Code = Code.SUCCESS
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS


class PreFilterPlugin(Protocol):
    def pre_filter(self, job: Job, now: float) -> Status: ...


class FilterPlugin(Protocol):
    def filter(self, job: Job, domain: Domain, host: Host) -> Status: ...


class QueueSortPlugin(Protocol):
    def sort_key(self, job: Job, priority: float) -> Any: ...


class ScorePlugin(Protocol):
    def score(self, job: Job, domain: Domain, host: Host) -> float: ...


class PreemptPlugin(Protocol):
    def allow(self, preemptor: Job, victims: list[Job]) -> Status: ...


def _load_plugin(spec: str):
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)()
    except Exception as e:  # a site plugin can fail in any way; name it, don't crash the server
        raise ValueError(f"plugin {spec}: cannot load: {type(e).__name__}: {e}") from None


def make_engine(choice: str = "auto") -> Engine:
    """The C engine when it is built (or asked for), the Python reference otherwise."""
    if choice == "python":
        return PyEngine()
    try:
        from vmsched import _core
    except ImportError:
        _core = None
    if choice == "c":
        if _core is None or not _core.AVAILABLE:
            raise RuntimeError("the C matching core is not built (pip install . builds it)")
        return _core.CEngine()
    if _core is None:
        warnings.warn("vmsched: C matching core not built; using the Python reference engine", RuntimeWarning,
                      stacklevel=2)
        return PyEngine()
    return _core.best_engine()


# --------------------------------------------------------------------------- the scheduler

_STATE_PENDING, _STATE_RUNNING, _STATE_HELD, _STATE_ROUTING, _STATE_BOUND, _STATE_SUSPENDED, _STATE_DONE = \
    "pending", "running", "held", "routing", "bound", "suspended", "done"

_GONE_KEEP = 200_000
_HOLDS_ROOM = (DomainState.FREE, DomainState.RUNNING, DomainState.BOOTING)
_INACTIVE = (DomainState.OCCUPIED, DomainState.SUSPENDED)

# How the matcher sees each domain state. A domain closed for new work for one cycle (held
# for a higher class, or for a VO under its share) is set to STARTING: its host room stays
# counted and it is no candidate for activation.
_SLOT_OF = {DomainState.FREE: SLOT_ACTIVE, DomainState.RUNNING: SLOT_ACTIVE, DomainState.BOOTING: SLOT_STARTING,
            DomainState.OCCUPIED: SLOT_IDLE, DomainState.SUSPENDED: SLOT_IDLE,
            DomainState.DOWN: SLOT_UNAVAILABLE, DomainState.SHUTTING_DOWN: SLOT_UNAVAILABLE}

_REASON_WORDS = {Reason.NOT_ACTIVE: "not active", Reason.FULL: "full (per-domain job cap)",
                 Reason.CORES: "insufficient cores", Reason.MEMORY: "insufficient memory"}


class _Shape:
    """What a cycle asks of a pending job, the same for every job of that shape: its images,
    size, features, queue, class and VO. Interned, so a shape is its own identity-hashed key
    and a queue of thousands of jobs costs a cycle one decision per shape, not per job."""

    __slots__ = ("images", "cores", "memory_mb", "features", "queue", "rank", "vo", "group", "image",
                 "lifecycle_key")

    def __init__(self, images, cores, memory_mb, features, queue, rank, vo, group, image):
        self.images, self.cores, self.memory_mb, self.features = images, cores, memory_mb, features
        self.queue, self.rank, self.vo, self.group, self.image = queue, rank, vo, group, image
        # what lifecycle placement depends on (it ignores queue, class and VO)
        self.lifecycle_key = (images, cores, memory_mb, features)


_SHAPES_KEEP = 65_536


class Scheduler:
    """One site's scheduler. Not thread-safe: a batch system runs one cycle at a time."""

    def __init__(self, policy: Policy, *, engine: Engine | None = None, store: UsageStore | None = None,
                 plugins: Mapping[str, Any] | None = None):
        self.policy = policy
        self.engine = engine if engine is not None else make_engine(policy.engine)
        self.store = store if store is not None else UsageStore(policy.fairshare.store or ":memory:")
        fs = policy.fairshare
        self.fairshare = FairShare(ShareTree.from_entries(fs.shares, default_share=fs.default_share),
                                   fs.half_life_s, fs.floor)
        self.mode = engine_mode(policy.preemption)
        if plugins is None:
            plugins = {k: _load_plugin(v) for k, v in policy.plugins.items()}
        self.plugins = dict(plugins)
        self.hosts: dict[str, Host] = {}
        self.domains: dict[str, Domain] = {}
        self.jobs: dict[str, Job] = {}
        self.status: dict[str, str] = {}
        self.host_domains: dict[str, list[str]] = {}
        self.domain_jobs: dict[str, set[str]] = {}
        self._never: dict[str, str] = {}
        self._host_h: dict[str, int] = {}
        self._slot_h: dict[str, int] = {}
        self._slot_name: dict[int, str] = {}
        self._job_h: dict[str, int] = {}
        self._job_name: dict[int, str] = {}
        self._kinds: dict[tuple[str, frozenset], int] = {}
        self._kind_total: Counter = Counter()
        self._entities: dict[tuple[str, ...], int] = {}
        self._next_slot = 0
        self._next_job = 0
        # Handles index the matcher's tables: recycled, smallest first, so the tables stay
        # as small as the cluster (a simulation boots and ends domains for months).
        self._free_slots: list[int] = []
        self._free_jobs: list[int] = []
        self._free_hosts: list[int] = []
        self._job_kinds_cache: dict[tuple, tuple[int, ...]] = {}
        self._images_cache: dict[tuple, tuple[str, ...]] = {}
        self._ranks: dict[str, tuple[Job, tuple, int]] = {}
        self._shapes: dict[tuple, _Shape] = {}          # interned job shapes
        self._hshape: dict[int, _Shape] = {}            # matcher handle -> its job's shape
        self._reason_texts: dict[tuple, str] = {}       # (shape, counts, domains) -> the reason's text
        # domains per state, and idle-or-frozen (occupied, suspended) domains per image, kept
        # as domains change so that a cycle never walks every domain of the site
        self._by_state: dict[DomainState, set[str]] = {st: set() for st in DomainState}
        self._inactive_img: dict[str, set[str]] = {}
        self._owners_cache: tuple[int, dict[str, list[str]]] = (-1, {})
        self._capacity_cache: tuple[int, int, int] = (-1, 0, 0)
        self._factors_pushed: tuple[Any, int] | None = None
        self._gone: OrderedDict[str, Job] = OrderedDict()   # recently vanished jobs, for late on_job_end
        top = {p[0] for p, _ in fs.shares if len(p) == 1}
        # image -> the top-level share VOs it serves (for the share between images)
        self._image_share_vos = {name: tuple(sorted(im.vos & top)) for name, im in policy.images.items()}
        self._contrib: dict[str, tuple] = {}           # job -> what it adds to the sums below
        # jobs per status, for the few statuses a cycle walks (not pending, not running)
        self._listed: dict[str, set[str]] = {st: set() for st in (_STATE_SUSPENDED, _STATE_ROUTING, _STATE_BOUND,
                                                                  _STATE_HELD)}
        self._suspended = self._listed[_STATE_SUSPENDED]
        self._frozen_version = 0                       # bumped when a job is suspended or leaves that
        self._frozen_cache: tuple[int, tuple[dict, dict]] = (-1, ({}, {}))
        self._vo_rank_pending: dict[str, bool] = {}    # pending jobs above the lowest class
        self._ranked_running: set[str] = set()          # running jobs above the lowest class
        self._run_agg: dict[tuple[str, ...], list] = {}   # entity -> [sum w, sum w*start, jobs] running
        self._vo_cores: Counter = Counter()            # (status, vo) -> cores of pending/running/suspended jobs
        self._img_pending: Counter = Counter()         # image -> pending jobs that may use it
        self._stored: dict[tuple[str, ...], tuple[float, float]] | None = None
        self._factors: dict[tuple[str, ...], float] | None = None
        self._factors_at = 0.0
        self._factors_entities = 0
        parents: dict[str, set[str]] = {}
        for path, _ in fs.shares:
            if len(path) == 2:
                parents.setdefault(path[1], set()).add(path[0])
        self._group_vo = {g: next(iter(v)) for g, v in parents.items() if len(v) == 1 and g not in
                          {p[0] for p, _ in fs.shares if len(p) == 1}}
        self._biggest: dict[tuple, tuple[bool, int, int]] = {}
        self._topology = 0          # bumped when hosts come or go or change
        # Bumped by anything lifecycle placement depends on (a domain or host changes, a domain
        # turns idle or busy): a job shape that found no placement keeps failing until then.
        self._lifecycle_epoch = 0
        self._placement_failed: dict[tuple, int] = {}
        self._rooms_version = 0     # bumped by any change of a domain (for the held cores)
        self._held: Counter = Counter()
        self._booting = 0
        self._held_at = -1
        self._domain_version = 0    # bumped when domains come or go
        self._never_checked = (0, 0)  # the topology the never-runnable verdicts were made for
        self._share_idle_search: tuple | None = None  # what the last share-preemption search that moved nothing saw
        self._share_next = float("-inf")   # share preemption looks again from this time on
        self._share_looked = float("-inf")  # ... and last looked then
        self.last_plan: Plan | None = None

    # ------------------------------------------------------------------ the cycle API
    def on_submit(self, job: Job) -> str | None:
        """The execution queue a newly submitted job goes to (None: no queue accepts it)."""
        return route(job, self.policy.queues).queue

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

    # ------------------------------------------------------------------ feeding changes
    def sync(self, snapshot: Snapshot) -> None:
        """Make the in-core state equal to ``snapshot``, touching only what changed."""
        jobs = {j.id: j for j in snapshot.jobs}
        for jid in [j for j in self.jobs if j not in jobs]:
            self.remove_job(jid)
        doms = {d.name: d for d in snapshot.domains}
        for h in snapshot.hosts:
            self.set_host(h)
        for name in [d for d in self.domains if d not in doms]:
            self.remove_domain(name)
        for d in sorted(doms.values(), key=lambda d: d.name):
            self.set_domain(d)
        names = {x.name for x in snapshot.hosts}
        for name in [h for h in self.hosts if h not in names]:
            self.remove_host(name)
        for j in sorted(snapshot.jobs, key=lambda j: (j.submit_time, j.id)):
            self.set_job(j)
        # Servers differ in when they flip a node between free and job-exclusive; what counts
        # is whether jobs are in it.
        for name in sorted(self.domains):
            self._settle(name, snapshot.time)

    def _settle(self, name: str, now: float) -> None:
        d = self.domains[name]
        has = bool(self.domain_jobs.get(name))
        if d.state is DomainState.RUNNING and not has:
            self.set_domain(attrs.evolve(d, state=DomainState.FREE, since=now))
        elif d.state is DomainState.FREE and has:
            self.set_domain(attrs.evolve(d, state=DomainState.RUNNING))

    def set_host(self, host: Host) -> None:
        old = self.hosts.get(host.name)
        if old == host:
            return
        self.hosts[host.name] = host
        self._topology += 1
        self._lifecycle_epoch += 1
        self.host_domains.setdefault(host.name, [])
        if host.name not in self._host_h:
            self._host_h[host.name] = heapq.heappop(self._free_hosts) if self._free_hosts else len(self._host_h)
        self.engine.set_host(self._host_h[host.name], host.cores, host.memory_mb, host.max_active)
        if old is not None and old.features != host.features:
            for d in list(self.host_domains[host.name]):
                dom = self.domains[d]
                self.remove_domain(d)
                self.set_domain(dom)
        elif old is not None and old.up != host.up:
            for d in self.host_domains[host.name]:
                self.engine.set_slot_state(self._slot_h[d], self._slot_state(self.domains[d]))

    def remove_host(self, name: str) -> None:
        for d in list(self.host_domains.get(name, ())):
            self.remove_domain(d)
        self.hosts.pop(name, None)
        self.host_domains.pop(name, None)
        self._lifecycle_epoch += 1
        h = self._host_h.pop(name, None)
        if h is not None:
            self.engine.remove_host(h)
            heapq.heappush(self._free_hosts, h)
        self._topology += 1

    def _kind(self, image: str, features: frozenset) -> int:
        key = (image, features)
        k = self._kinds.get(key)
        if k is None:
            k = self._kinds[key] = len(self._kinds)
            self._job_kinds_cache.clear()
            self._reload_jobs()
        return k

    def _slot_state(self, d: Domain) -> int:
        """The matcher's view of a domain: can take jobs, can be activated, holds host room."""
        host = self.hosts.get(d.host)
        if host is None or not host.up:
            return SLOT_UNAVAILABLE
        return _SLOT_OF[d.state]

    def set_domain(self, d: Domain) -> None:
        if d.host not in self.hosts:
            raise ValueError(f"domain {d.name}: host {d.host} is unknown")
        old = self.domains.get(d.name)
        if old == d:
            return
        self._rooms_version += 1
        # A free domain taking its first job only narrows what lifecycle can do; everything
        # else may open a placement that failed before.
        if not (old is not None and old.state is DomainState.FREE and d.state is DomainState.RUNNING
                and attrs.evolve(old, state=d.state, since=d.since) == d):
            self._lifecycle_epoch += 1
        host = self.hosts[d.host]
        if old is not None and (old.image, old.host, old.cores, old.memory_mb) == (d.image, d.host, d.cores, d.memory_mb):
            self.domains[d.name] = d
            self._reindex(old, d)
            self.engine.set_slot_state(self._slot_h[d.name], self._slot_state(d))
            return
        if old is not None:
            self.remove_domain(d.name)
        kind = self._kind(d.image, host.features)
        self._domain_version += 1
        if self._free_slots:
            h = heapq.heappop(self._free_slots)
        else:
            h = self._next_slot
            self._next_slot += 1
        self._slot_h[d.name], self._slot_name[h] = h, d.name
        self.domains[d.name] = d
        self._reindex(None, d)
        self.host_domains.setdefault(d.host, []).append(d.name)
        self.host_domains[d.host].sort()
        self.domain_jobs.setdefault(d.name, set())
        self._kind_total[kind] += 1
        self.engine.add_slot(h, self._host_h[d.host], kind, d.cores, d.memory_mb, self._slot_state(d))

    def remove_domain(self, name: str) -> None:
        d = self.domains.get(name)
        if d is None:
            return
        self._lifecycle_epoch += 1
        for jid in list(self.domain_jobs.get(name, ())):
            job = self.jobs[jid]
            self.remove_job(jid)
            # A job whose domain vanished is no longer where the server said; it will be
            # re-read from the next snapshot (or requeued by the server).
            self._remember(job)
        h = self._slot_h.pop(name)
        del self._slot_name[h]
        heapq.heappush(self._free_slots, h)
        self._kind_total[self._kind(d.image, self.hosts[d.host].features)] -= 1
        self.engine.remove_slot(h)
        self.host_domains[d.host].remove(name)
        self.domain_jobs.pop(name, None)
        del self.domains[name]
        self._reindex(d, None)
        self._domain_version += 1
        self._rooms_version += 1

    def _reindex(self, old: Domain | None, new: Domain | None) -> None:
        if old is not None:
            self._by_state[old.state].discard(old.name)
            if old.state in _INACTIVE:
                self._inactive_img[old.image].discard(old.name)
        if new is not None:
            self._by_state[new.state].add(new.name)
            if new.state in _INACTIVE:
                self._inactive_img.setdefault(new.image, set()).add(new.name)

    def _remember(self, job: Job) -> None:
        if job.state in (JobState.RUNNING, JobState.SUSPENDED):
            job = attrs.evolve(job, state=JobState.QUEUED, domain=None, start_time=None)
        self.set_job(job)

    def rank_of(self, job: Job) -> int:
        """The job's preemption class as a rank (0 = lowest). Cached per job and the fields a
        class rule reads, so state changes (running, suspended) reuse it; the very Job object
        seen last (models are frozen) skips even the comparison."""
        r = self._ranks.get(job.id)
        if r is not None and r[0] is job:
            return r[2]
        key = (job.id, job.queue, job.group, job.vo, job.user, job.interactive, job.klass)
        if r is None or r[1] != key:
            r = (job, key, self.policy.preemption.rank(self.policy.preemption.class_of(job)))
        else:
            r = (job, key, r[2])
        self._ranks[job.id] = r
        return r[2]

    def _shape_of(self, job: Job, rank: int) -> _Shape:
        key = (self.images_for(job), job.cores, job.memory_mb, job.features, job.queue, rank, job.vo, job.group,
               job.image)
        sh = self._shapes.get(key)
        if sh is None:
            if len(self._shapes) >= _SHAPES_KEEP:
                self._shapes.clear()     # only sharing is lost: equal shapes compare by identity
            sh = self._shapes[key] = _Shape(*key)
        return sh

    def _entity(self, job: Job) -> int:
        path = (job.vo, job.group, job.user)
        e = self._entities.get(path)
        if e is None:
            e = self._entities[path] = len(self._entities)
        return e

    def images_for(self, job: Job) -> tuple[str, ...]:
        """Images the job may run in: the one it asked for, else its VO's; a queue may narrow."""
        key = (job.vo, job.group, job.image, job.queue)
        imgs = self._images_cache.get(key)
        if imgs is None:
            imgs = self._images_cache[key] = self._images_uncached(job)
        return imgs

    def _images_uncached(self, job: Job) -> tuple[str, ...]:
        if job.image is not None:
            imgs = (job.image,) if job.image in self.policy.images and \
                (job.vo in self.policy.images[job.image].vos or job.group in self.policy.images[job.image].vos
                 or not self.policy.images[job.image].vos) else ()
        else:
            imgs = self.policy.images_for(job.vo, job.group)
        q = self.policy.queues.get(job.queue)
        if q is not None and q.images:
            imgs = tuple(i for i in imgs if i in q.images)
        return imgs

    def _job_kinds(self, job: Job) -> tuple[int, ...]:
        key = (self.images_for(job), job.features)
        ks = self._job_kinds_cache.get(key)
        if ks is None:
            images, feats = set(key[0]), job.features
            ks = tuple(sorted(k for (img, f), k in self._kinds.items() if img in images and feats <= f))
            self._job_kinds_cache[key] = ks
        return ks

    def _classify(self, job: Job) -> str:
        q = self.policy.queues.get(job.queue)
        if job.state in (JobState.RUNNING, JobState.EXITING) and job.domain is not None:
            return _STATE_RUNNING
        if job.state is JobState.SUSPENDED:
            return _STATE_SUSPENDED
        if job.state is not JobState.QUEUED:
            return _STATE_HELD if job.state in (JobState.HELD, JobState.WAITING, JobState.TRANSIT) else _STATE_DONE
        if q is not None and q.kind is QueueKind.ROUTING:
            return _STATE_ROUTING
        if job.domain is not None:
            return _STATE_BOUND
        return _STATE_PENDING

    def _verdict_version(self) -> tuple[int, int]:
        """What a never-runnable verdict depends on: hosts when domains are booted on demand,
        the domains themselves when the site defines them statically."""
        return (self._topology, 0 if self.policy.lifecycle.dynamic_boot else self._domain_version)

    def _never_reason(self, job: Job) -> str | None:
        q = self.policy.queues.get(job.queue)
        if q is None:
            return f"queue {job.queue} is not defined in the policy"
        imgs = self.images_for(job)
        if not imgs:
            if job.image is not None:
                return f"image {job.image} is not defined or not open to VO {job.vo}"
            return f"no image is open to VO {job.vo}"
        key = (imgs, job.features, self._verdict_version())
        found = self._biggest.get(key)
        if found is None:
            if len(self._biggest) > 4096:
                self._biggest.clear()
            hosts = [h for h in self.hosts.values() if job.features <= h.features]
            if self.policy.lifecycle.dynamic_boot:
                biggest_c = max((h.cores for h in hosts), default=0)
                biggest_m = max((h.memory_mb for h in hosts), default=0)
            else:
                doms = [d for d in self.domains.values() if d.image in imgs and job.features <= self.hosts[d.host].features]
                biggest_c = max((d.cores for d in doms), default=0)
                biggest_m = max((d.memory_mb for d in doms), default=0)
            found = self._biggest[key] = (bool(hosts), biggest_c, biggest_m)
        any_host, biggest_c, biggest_m = found
        if self.hosts and not any_host:
            return f"no host has features {', '.join(sorted(job.features))}"
        if self.hosts and job.cores > biggest_c:
            return f"asks for {job.cores} cores, the largest domain it could use has {biggest_c}"
        if self.hosts and job.memory_mb > biggest_m:
            return f"asks for {job.memory_mb} MB, the largest domain it could use has {biggest_m} MB"
        return None

    def set_job(self, job: Job, force: bool = False) -> None:
        """Add or update a job as the server sees it."""
        if job.vo == job.group and job.group in self._group_vo:
            # qstat shows only egroup; the share tree says which VO that group belongs to.
            job = attrs.evolve(job, vo=self._group_vo[job.group])
        old = self.jobs.get(job.id)
        if old == job and not force:
            return
        if old is not None:
            self.remove_job(job.id)
        self.jobs[job.id] = job
        st = self._classify(job)
        self._set_status(job.id, st)
        if job.domain is not None and st in (_STATE_RUNNING, _STATE_SUSPENDED):
            if job.domain not in self.domains:
                raise ValueError(f"job {job.id}: domain {job.domain} is unknown")
            self._domain_add(job.domain, job.id)
        if st == _STATE_PENDING:
            why = self._never_reason(job)
            if why is not None:
                self._never[job.id] = why
                return
        if st in (_STATE_PENDING, _STATE_RUNNING) or (st == _STATE_SUSPENDED and job.domain is not None
                                                     and not self.domains[job.domain].state.active):
            self._engine_add(job, st)

    def _engine_add(self, job: Job, st: str, handle: int | None = None) -> None:
        q = self.policy.queues[job.queue] if job.queue in self.policy.queues else None
        cap = q.per_domain_jobs if q is not None else 1
        if handle is not None:
            h = handle
        elif self._free_jobs:
            h = heapq.heappop(self._free_jobs)
        else:
            h = self._next_job
            self._next_job += 1
        rank = self.rank_of(job)
        try:
            self.engine.add_job(h, self._job_kinds(job), job.cores, job.memory_mb, cap, rank, self._entity(job),
                                job.submit_time)
        except EngineError as e:
            # One job's odd values must not stop the site's cycle: it waits, with the reason.
            self._never[job.id] = f"cannot be scheduled: {e}"
            return
        self._job_h[job.id], self._job_name[h] = h, job.id
        self._hshape[h] = self._shape_of(job, rank)
        if st != _STATE_PENDING:
            try:
                self.engine.start_job(h, self._slot_h[job.domain], job.start_time or 0.0)
            except EngineError:
                # The server runs more in this domain than its size or cap allows. Trust the
                # server, keep the job out of the matcher and the domain closed to new work.
                self.engine.remove_job(h)
                del self._job_h[job.id], self._job_name[h], self._hshape[h]
                self.engine.set_slot_state(self._slot_h[job.domain], SLOT_STARTING)

    def remove_job(self, job_id: str) -> None:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return
        # PBS servers drop finished jobs from qstat before (or without) telling anyone the
        # job ended; keep recent ones so on_job_end(job_id, ...) can still charge them.
        self._gone[job_id] = job
        if len(self._gone) > _GONE_KEEP:
            self._gone.popitem(last=False)
        h = self._job_h.pop(job_id, None)
        if h is not None:
            del self._job_name[h]
            self._hshape.pop(h, None)
            self.engine.remove_job(h)
            heapq.heappush(self._free_jobs, h)
        if job.domain is not None and job.domain in self.domain_jobs:
            self._domain_discard(job.domain, job_id)
        self._set_status(job_id, None)
        self._never.pop(job_id, None)
        self._ranks.pop(job_id, None)

    def _reload_jobs(self) -> None:
        """A new kind (image x host features) appeared: jobs' allowed kinds are stale. Each job
        keeps its handle, so a cycle holding handles (and the queue order) stays valid."""
        for jid in sorted(self._job_h, key=lambda j: self._job_h[j]):
            job = self.jobs[jid]
            h = self._job_h.pop(jid)
            del self._job_name[h]
            running = self.status[jid] != _STATE_PENDING
            self.engine.remove_job(h)
            self._engine_add(job, _STATE_RUNNING if running else _STATE_PENDING, handle=h)

    # ------------------------------------------------------------------ the decision
    def _held_cores(self) -> Counter:
        """Cores each share VO's images hold in active or booting domains (cached per epoch)."""
        if self._held_at != self._rooms_version:
            held: Counter = Counter()
            booting = 0
            share_vos = self._image_share_vos
            for d in self.domains.values():
                if d.state in _HOLDS_ROOM:
                    if d.state is DomainState.BOOTING:
                        booting += 1
                    vos = share_vos.get(d.image)
                    if vos:
                        for vo in vos:
                            held[vo] += d.cores / len(vos)
            self._held, self._booting, self._held_at = held, booting, self._rooms_version
        return self._held

    def _owners(self) -> dict[str, list[str]]:
        """Owner group -> its hosts (cached until hosts change; callers must not modify it)."""
        if self._owners_cache[0] != self._topology:
            owners: dict[str, list[str]] = {}
            for hname, host in sorted(self.hosts.items()):
                if host.owner is not None:
                    owners.setdefault(host.owner, []).append(hname)
            self._owners_cache = (self._topology, owners)
        return self._owners_cache[1]

    def _capacity(self) -> int:
        """Cores of the hosts that are up (cached until hosts change)."""
        if self._capacity_cache[0] != self._topology:
            up = [h.cores for h in self.hosts.values() if h.up]
            self._capacity_cache = (self._topology, sum(up), min(up, default=0))
        return self._capacity_cache[1]

    def _smallest_host(self) -> int:
        """Cores of the smallest host that is up (cached until hosts change)."""
        self._capacity()
        return self._capacity_cache[2]

    def _frozen_domains(self) -> dict[str, list[str]]:
        """Domain -> its suspended jobs (cached until a job is suspended or resumed; callers
        must not modify it)."""
        return self._frozen()[0]

    def _frozen_hosts(self) -> dict[str, tuple[int, tuple[str, ...]]]:
        """Host -> (the highest class rank of its suspended jobs, the domains they are in),
        cached like ``_frozen_domains``."""
        return self._frozen()[1]

    def _frozen(self):
        if self._frozen_cache[0] != self._frozen_version:
            doms: dict[str, list[str]] = {}
            for j in sorted(self._suspended):
                d = self.jobs[j].domain
                if d in self.domains:
                    doms.setdefault(d, []).append(j)
            hosts: dict[str, tuple[int, tuple[str, ...]]] = {}
            for dname, inside in doms.items():
                h = self.domains[dname].host
                high, names = hosts.get(h, (-1, ()))
                hosts[h] = (max(high, *(self.rank_of(self.jobs[j]) for j in inside)), names + (dname,))
            self._frozen_cache = (self._frozen_version, (doms, hosts))
        return self._frozen_cache[1]

    def booting_count(self) -> int:
        self._held_cores()
        return self._booting

    def _domain_add(self, domain: str, jid: str) -> None:
        # An idle domain turning busy only narrows what lifecycle can do: no new epoch.
        self.domain_jobs[domain].add(jid)

    def _domain_discard(self, domain: str, jid: str) -> None:
        jobs = self.domain_jobs[domain]
        if jid in jobs:
            jobs.discard(jid)
            if not jobs:
                self._lifecycle_epoch += 1  # a busy domain became idle

    def _set_status(self, jid: str, st: str | None) -> None:
        """Every change of a job's status goes through here, so the per-entity sums of running
        work (for fair share) and per-VO cores (for the share between images) stay exact
        without a scan of all jobs each cycle."""
        old = self._contrib.pop(jid, None)
        if old is not None:
            path, w, ws, vo, cores, was, images = old
            if was == _STATE_RUNNING:
                agg = self._run_agg[path]
                agg[0] -= w
                agg[1] -= ws
                agg[2] -= 1
                if agg[2] == 0:
                    del self._run_agg[path]
            self._vo_cores[(was, vo)] -= cores
            if was == _STATE_PENDING:
                for img in images:
                    self._img_pending[img] -= 1
        was = self.status.get(jid)
        if was == _STATE_SUSPENDED or st == _STATE_SUSPENDED:
            self._frozen_version += 1
        if was in self._listed:
            self._listed[was].discard(jid)
        if st is None:
            self.status.pop(jid, None)
            self._vo_rank_pending.pop(jid, None)
            self._ranked_running.discard(jid)
            return
        self.status[jid] = st
        if st in self._listed:
            self._listed[st].add(jid)
        if st == _STATE_PENDING and self.rank_of(self.jobs[jid]) > 0:
            self._vo_rank_pending[jid] = True
        else:
            self._vo_rank_pending.pop(jid, None)
        if st == _STATE_RUNNING and self.rank_of(self.jobs[jid]) > 0:
            self._ranked_running.add(jid)
        else:
            self._ranked_running.discard(jid)
        if st in (_STATE_RUNNING, _STATE_PENDING, _STATE_SUSPENDED):
            j = self.jobs[jid]
            path = (j.vo, j.group, j.user)
            w = ws = 0.0
            if st == _STATE_RUNNING and j.start_time is not None:
                fs = self.policy.fairshare
                w = usage_amount(j.cores, j.memory_mb, 1.0, fs.usage, mb_per_core=fs.memory_mb_per_core)
                ws = w * j.start_time
                agg = self._run_agg.setdefault(path, [0.0, 0.0, 0])
                agg[0] += w
                agg[1] += ws
                agg[2] += 1
            self._vo_cores[(st, j.vo)] += j.cores
            images = self.images_for(j) if st == _STATE_PENDING else ()
            for img in images:
                self._img_pending[img] += 1
            self._contrib[jid] = (path, w, ws, j.vo, j.cores, st, images)

    def _stored_usage(self, now: float) -> dict[tuple[str, ...], float]:
        """Charged usage decayed to ``now``, from a copy kept in memory beside the store:
        the store is read once, and every charge after that updates both."""
        fs = self.policy.fairshare
        if self._stored is None:
            self._stored = {p: (u, now) for p, u in self.store.usage(now, fs.half_life_s, fs.floor).items()}
        out = {}
        for p, (u, t0) in self._stored.items():
            out[p] = max(fs.floor, decayed_usage(u, t0, now, fs.half_life_s, fs.floor))
        return out

    def _charge_memory(self, path: tuple[str, ...], amount: float, at: float) -> None:
        if self._stored is None:
            return
        fs = self.policy.fairshare
        u, t0 = self._stored.get(path, (0.0, at))
        if at >= t0:
            self._stored[path] = (decayed_usage(u, t0, at, fs.half_life_s, fs.floor) + amount, at)
        else:
            self._stored[path] = (u + decayed_usage(amount, at, t0, fs.half_life_s, 0.0), t0)

    def factors(self, now: float) -> dict[tuple[str, ...], float]:
        """Fair-share factors at ``now``. Recomputed at most every ``[fairshare] refresh``
        seconds (like Maui's FSINTERVAL), since usage moves slowly against a half-life."""
        fs = self.policy.fairshare
        if self._factors is not None and now - self._factors_at < fs.refresh_s and \
                self._factors_entities == len(self._entities) and now >= self._factors_at:
            return self._factors
        usage = self._stored_usage(now)
        # Running work counts as used already, or a VO holding long jobs would keep its
        # priority for their whole length (OpenPBS charges running jobs the same way).
        for p, (w, ws, _n) in self._run_agg.items():
            running = w * now - ws
            if running > 0.0:
                usage[p] = usage.get(p, 0.0) + running
        self._factors = self.fairshare.factors(usage, extra_paths=tuple(self._entities))
        self._factors_at, self._factors_entities = now, len(self._entities)
        return self._factors

    def cycle(self, now: float) -> Plan:
        if self._never and self._never_checked != self._verdict_version():
            # Hosts or domains changed: a job that could never run may run now.
            for jid in sorted(self._never):
                self.set_job(attrs.evolve(self.jobs[jid], id=jid), force=True)
        self._never_checked = self._verdict_version()
        ctx = _Cycle(self, now)
        plan = ctx.run()
        self.last_plan = plan
        return plan

    @property
    def share_pace(self) -> tuple[float, float]:
        """When share preemption last looked, and from when it looks again (it paces itself
        to once per cycle interval): a simulator that skips quiet cycles wakes for a job
        reaching ``share_after`` after the last look, no earlier than the next."""
        return self._share_looked, self._share_next

    def explain(self, job_id: str) -> Pending | None:
        return self.last_plan.reason(job_id) if self.last_plan else None

    # helpers the cycle uses to mirror its own plan into the state ------------------
    def _mark_domain(self, name: str, state: DomainState, now: float) -> None:
        d = self.domains[name]
        self.set_domain(attrs.evolve(d, state=state, since=now))

    def _mark_running(self, job_id: str, domain: str, now: float, via_engine: bool) -> None:
        job = attrs.evolve(self.jobs[job_id], state=JobState.RUNNING, domain=domain, start_time=now)
        self.jobs[job_id] = job
        self._set_status(job_id, _STATE_RUNNING)
        self._domain_add(domain, job_id)
        if not via_engine:
            h = self._job_h.get(job_id)
            if h is None:
                self._engine_add(job, _STATE_RUNNING)
            else:
                self.engine.start_job(h, self._slot_h[domain], now)


class _Rooms(dict):
    """Each host's room, built the first time this cycle asks for it: most cycles touch few
    hosts, and building all of them each cycle was a tenth of a simulation's time."""

    def __init__(self, s: Scheduler):
        super().__init__()
        self._s = s
        self._names = sorted(s.hosts)

    def __missing__(self, name: str) -> lifecycle.HostRoom:
        s = self._s
        room = self[name] = lifecycle.HostRoom.build(s.hosts[name], s.host_domains.get(name, ()), s.domains)
        return room

    def _all(self) -> None:
        for n in self._names:
            if not dict.__contains__(self, n):
                self[n]

    def __iter__(self):
        self._all()
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def __contains__(self, name) -> bool:
        return name in self._s.hosts

    def keys(self):
        self._all()
        return [n for n in self._names]

    def items(self):
        self._all()
        return [(n, dict.__getitem__(self, n)) for n in self._names]

    def values(self):
        self._all()
        return [dict.__getitem__(self, n) for n in self._names]

    def get(self, name, default=None):
        return self[name] if name in self._s.hosts else default


class _Cycle:
    """The state of one cycle's decision; thrown away when the plan is made."""

    def __init__(self, s: Scheduler, now: float):
        self.s, self.now = s, now
        self.policy = s.policy
        self.actions: list[Action] = []
        self.pending: dict[str, Pending] = {}
        self.notes: dict[str, str] = {}
        self.rooms = _Rooms(s)
        self.claimed: set[str] = set()   # domains this cycle already gave to a job or action
        # capacity waits, explained at the end: (shape, notes) -> the jobs, in queue order
        self.waits: dict[tuple[_Shape, tuple[str, ...]], list[str]] = {}
        self.started_late: set[str] = set()  # waiting jobs that the second chance started
        self.requeued: dict[str, str] = {}  # jobs this cycle displaced, and by whom
        self.reserved: dict[str, int] = {}  # domain -> least class rank that may use it now
        self.held_back: set[str] = set()    # idle domains kept from over-share VOs this cycle
        self.opened = 0                     # domains opened by lifecycle so far in this cycle
        self.over_share: dict[str, str] = {}  # VO -> why its idle domains go to others this cycle
        self.owners = s._owners()               # owner group -> its hosts
        self._shared_notes: dict[tuple, tuple[str, ...]] = {}  # (VO, boot-limited) -> notes of its waits
        self.reclaim_failed: set = set()    # job shapes that found nothing to reclaim
        self.thaw_failed: set = set()       # job shapes that found no share-frozen domain to take back
        self.balance = None                 # (held, target, waiting, frozen) per share VO, as the cycle began
        self.default_rank = s.policy.preemption.rank(s.policy.preemption.default_class)
        self.boots_left = s.policy.lifecycle.max_concurrent_boots - s.booting_count()

    def busy(self, name: str) -> bool:
        return bool(self.s.domain_jobs.get(name)) or name in self.claimed

    def run(self) -> Plan:
        s, now = self.s, self.now
        f = s.factors(now)
        if s._factors_pushed != (id(f), len(s._entities)):   # the matcher has these already
            s.engine.set_factors([f.get(p, 0.0) for p, _ in sorted(s._entities.items(), key=lambda kv: kv[1])])
            s._factors_pushed = (id(f), len(s._entities))
        self.route()
        self.resume_suspended()
        self.balance = self.share_balance() if self.policy.fairshare.image_shares or \
            self.policy.preemption.share_after_s is not None else None
        held_back = self.held_back = self.image_share_holdback(f)
        self.reserve_for_preemptors()
        self.run_bound()
        unplaced = self.match()
        unplaced = self.preempt(unplaced)
        self.share_preempt(unplaced)
        self.place(unplaced, held_back)
        self.second_chance(held_back, unplaced)
        if self.policy.lifecycle.dynamic_boot:
            # Domains a site defines statically (Magrathea) are never shut down: nothing
            # would boot them again.
            self.actions.extend(lifecycle.plan_idle(self.rooms, s.domains, self.busy, self.policy.lifecycle, now,
                                                    self.claimed))
        for a in self.actions:
            if a.verb == "shutdown" and a.domain in s.domains:
                s._mark_domain(a.domain, DomainState.SHUTTING_DOWN, now)
        self.warm_pool()
        self.explain_waiting()
        for name in sorted(self.reserved):
            if name in s.domains and s.domains[name].state.active:
                s.engine.set_slot_state(s._slot_h[name], SLOT_ACTIVE)
        for vid, why in self.requeued.items():
            if s.status.get(vid) == _STATE_PENDING:
                self.pending[vid] = Pending(Verdict.NOT_NOW, why)
        for jid, why in s._never.items():
            self.pending[jid] = Pending(Verdict.NEVER, why)
        for jid in sorted(s._listed[_STATE_HELD]):
            if jid not in self.pending:
                self.pending[jid] = Pending(Verdict.NOT_NOW, f"job is held (state {s.jobs[jid].state.value})")
        if any(not s.domain_jobs.get(n) for n in self.claimed):
            # Domains this cycle set aside without giving them a job (switched out, booting
            # for a job, evicted) are free to lifecycle again next cycle: what failed with
            # them claimed may succeed then.
            s._lifecycle_epoch += 1
        return Plan(now, tuple(self.actions), tuple(sorted(self.pending.items())), s.engine.name)

    # -- routing -----------------------------------------------------------------------
    def route(self) -> None:
        s = self.s
        for jid in sorted(s._listed[_STATE_ROUTING], key=lambda j: (s.jobs[j].submit_time, j)):
            job = s.jobs[jid]
            r = route(job, self.policy.queues)
            if r.queue is None:
                self.pending[jid] = Pending(Verdict.NEVER, r.reason)
                continue
            self.actions.append(RouteJob(jid, r.queue))
            s.set_job(attrs.evolve(job, queue=r.queue))

    # -- resume what preemption froze ----------------------------------------------------
    def resume_suspended(self) -> None:
        s = self.s
        for name in sorted((n for n in s._by_state[DomainState.SUSPENDED] if s.domain_jobs.get(n)),
                           key=lambda n: (s.domains[n].since, n)):
            d = s.domains[name]
            host = s.hosts[d.host]
            if not host.up:
                continue
            # The preemptor's domain, idle now that its work ended, steps aside.
            others = [s.domains[n] for n in s.host_domains[d.host]]
            idle = [o for o in others if o.state is DomainState.FREE and not self.busy(o.name)]
            if not idle and sum(o.state.active for o in others) >= host.max_active:
                continue          # every active slot of the host is busy: nothing can step aside
            room = self.rooms[d.host]
            freed: list[Domain] = []
            while not room.fits(d.cores, d.memory_mb, freed) and len(freed) < len(idle):
                freed.append(idle[len(freed)])
            if room.fits(d.cores, d.memory_mb, freed):
                for f in freed:
                    self.actions.append(SuspendDomain(f.name))
                    room.give(f)
                    s._mark_domain(f.name, DomainState.OCCUPIED, self.now)
                    self.claimed.add(f.name)
                room.take(d.cores, d.memory_mb)
                self.actions.append(ResumeDomain(name))
                s._mark_domain(name, DomainState.RUNNING, self.now)
                for jid in sorted(s.domain_jobs[name]):
                    if s.status.get(jid) == _STATE_SUSPENDED:
                        s.set_job(attrs.evolve(s.jobs[jid], state=JobState.RUNNING))
                self.claimed.add(name)
        # Jobs suspended inside an active domain (suspend-jobs mode) resume when it has room.
        inside_active = [j for n, inside in s._frozen_domains().items() if s.domains[n].state.active for j in inside]
        for jid in sorted(inside_active, key=lambda j: (s.jobs[j].start_time or 0.0, j)):
            job = s.jobs[jid]
            d = s.domains[job.domain]
            running = [s.jobs[o] for o in s.domain_jobs[d.name] if s.status.get(o) == _STATE_RUNNING]
            if d.name in self.reserved and self._rank(job) < self.reserved[d.name]:
                continue
            if self._fits_with(job, d, running):
                try:
                    s.set_job(attrs.evolve(job, state=JobState.RUNNING))
                except EngineError:
                    continue
                self.actions.append(ResumeJob(jid))

    # -- fair share across images ----------------------------------------------------------
    def share_balance(self):
        """(held, target, waiting, frozen) cores per top-level share VO, or None when fewer
        than two VOs have a share. Held: what the VO's images hold in active or booting
        domains; target: its water-filled share of the cores up, for what it asks (running,
        waiting and frozen work); waiting: its queued cores that some capacity could serve;
        frozen: its suspended jobs' cores."""
        s = self.s
        if not self.policy.fairshare.shares:
            return None
        vo_share = {p[0]: sh for p, sh in self.policy.fairshare.shares if len(p) == 1}
        if len(vo_share) < 2:
            return None
        held = s._held_cores()
        waiting: Counter = Counter()
        running: Counter = Counter()
        frozen: Counter = Counter()   # frozen work wants its cores back
        for (st, vo), cores in s._vo_cores.items():
            (waiting if st == _STATE_PENDING else frozen if st == _STATE_SUSPENDED else running)[vo] += cores
        for jid in s._never:      # waiting that no capacity would help is no demand
            if s.status.get(jid) == _STATE_PENDING:
                waiting[s.jobs[jid].vo] -= s.jobs[jid].cores
        demand = {vo: waiting[vo] + running[vo] + frozen[vo] for vo in vo_share}
        return held, partition.targets(s._capacity(), vo_share, demand), waiting, frozen

    def image_share_holdback(self, factors) -> set[str]:
        """Idle domains of VOs over their share are kept from their own VO's jobs this cycle,
        so that lifecycle can hand their hosts to a VO under its share."""
        s = self.s
        if not self.policy.fairshare.image_shares:
            return set()
        balance = self.balance
        if balance is None:
            return set()
        held, target, waiting, _ = balance
        vo_share = {p[0] for p, _ in self.policy.fairshare.shares if len(p) == 1}
        over = partition.over_share(held, target, waiting)
        out = set()
        if not over:
            return out
        # images serving only over-share VOs, that some waiting job could use (holding back a
        # domain no waiting job could take would change nothing)
        images = {name for name, img in self.policy.images.items()
                  if img.vos & vo_share and img.vos & vo_share <= over and s._img_pending[name]}
        if images:
            for name in s._by_state[DomainState.FREE]:
                if s.domains[name].image in images and not s.domain_jobs.get(name):
                    out.add(name)
            for name in sorted(out):
                s.engine.set_slot_state(s._slot_h[name], SLOT_STARTING)
        self.over_share = {vo: f"VO {vo} over its share ({held[vo]:.0f} cores held, target {target.get(vo, 0):.0f})"
                           for vo in over}
        return out

    # -- WNoDeS bound jobs ------------------------------------------------------------------
    def run_bound(self) -> None:
        s = self.s
        for jid in sorted(s._listed[_STATE_BOUND], key=lambda j: (s.jobs[j].submit_time, j)):
            job = s.jobs[jid]
            d = s.domains.get(job.domain)
            if d is None:
                self.pending[jid] = Pending(Verdict.NOT_NOW, f"bound to domain {job.domain}, which is gone; "
                                                             "waiting for the server to unbind it")
            elif d.state.active and not s.domain_jobs.get(d.name) and d.cores >= job.cores \
                    and d.memory_mb >= job.memory_mb:
                self.actions.append(RunJob(jid, d.name))
                s._mark_running(jid, d.name, self.now, via_engine=False)
                self.claimed.add(d.name)
            else:
                self.pending[jid] = Pending(Verdict.NOT_NOW, f"waiting for domain {d.name} (bound) to "
                                                             f"{'boot' if d.state is DomainState.BOOTING else 'free'}")

    # -- matching ---------------------------------------------------------------------------
    def match(self) -> list[int]:
        s, w = self.s, self.policy.priority
        prefilter = self.s.plugins.get("pre_filter")
        blocked = []
        if prefilter is not None:
            for jid, st in sorted(s.status.items()):
                if st == _STATE_PENDING and jid in s._job_h:
                    status = prefilter.pre_filter(s.jobs[jid], self.now)
                    if not status.ok:
                        blocked.append(jid)
                        s.engine.remove_job(s._job_h[jid])
                        self.pending[jid] = Pending(
                            Verdict.NEVER if status.code is Code.UNSCHEDULABLE_NEVER else Verdict.NOT_NOW,
                            status.reason)
        try:
            if "queue_sort" in s.plugins or "score" in s.plugins:
                placed, unplaced = self._match_python(w)
            else:
                res = s.engine.match(self.now, w.fairshare, w.klass, w.age, self.policy.max_starts_per_cycle)
                placed = list(res.placed)
                unplaced = res.pending_jobs()
            flt = s.plugins.get("filter")
            for h, slot in placed:
                jid, dname = s._job_name[h], s._slot_name[slot]
                if flt is not None:
                    st = flt.filter(s.jobs[jid], s.domains[dname], s.hosts[s.domains[dname].host])
                    if not st.ok:
                        s.engine.requeue_job(h)
                        self.notes[jid] = st.reason
                        unplaced.append(h)
                        continue
                self.actions.append(RunJob(jid, dname))
                s._mark_running(jid, dname, self.now, via_engine=True)
                self.claimed.add(dname)
        finally:
            for jid in blocked:
                job = s.jobs[jid]
                h = s._job_h.pop(jid)
                del s._job_name[h]
                if s.status.get(jid) == _STATE_PENDING:
                    s._engine_add(job, _STATE_PENDING, handle=h)
        return unplaced

    def _match_python(self, w) -> tuple[list, list]:
        """The plugin path: a Python queue order and domain scores; same matcher state."""
        s = self.s
        sorter, scorer = s.plugins.get("queue_sort"), s.plugins.get("score")
        order = s.engine.order(self.now, w.fairshare, w.klass, w.age)
        if sorter is not None:
            order = sorted(order, key=lambda h: sorter.sort_key(
                s.jobs[s._job_name[h]], s.engine.priority(h, self.now, w.fairshare, w.klass, w.age)))
        placed, unplaced = [], []
        extra: dict[str, list[Job]] = {}   # placed in this loop, not yet in the scheduler's state
        for h in order:
            if 0 <= self.policy.max_starts_per_cycle <= len(placed):
                unplaced.append(h)
                continue
            slot = s.engine.best_slot(h)
            if slot is not None and scorer is not None:
                job = s.jobs[s._job_name[h]]
                best = None
                for dname in sorted(s.domains):
                    d = s.domains[dname]
                    if self._fits_now(job, d, extra.get(dname, [])):
                        key = (-scorer.score(job, d, s.hosts[d.host]), s._slot_h[dname])
                        best = key if best is None or key < best else best
                slot = best[1] if best else None
            if slot is None:
                unplaced.append(h)
                continue
            s.engine.start_job(h, slot, self.now)
            placed.append((h, slot))
            extra.setdefault(s._slot_name[slot], []).append(s.jobs[s._job_name[h]])
        return placed, unplaced

    def _vetoed(self, jid: str, dname: str) -> bool:
        """The site's filter plugin refuses this domain for this job (its reason is kept)."""
        flt = self.s.plugins.get("filter")
        if flt is None:
            return False
        s = self.s
        st = flt.filter(s.jobs[jid], s.domains[dname], s.hosts[s.domains[dname].host])
        if not st.ok:
            self.notes[jid] = st.reason
        return not st.ok

    def _could_run_in(self, sh: _Shape, d: Domain, host: Host, beside: list[Job]) -> bool:
        """A job of shape ``sh`` may use domain ``d`` (its image, the host's features) and
        has room there beside ``beside``."""
        return d.image in sh.images and sh.features <= host.features and self._fits_with(sh, d, beside)

    def _fits_with(self, job: Job | _Shape, d: Domain, running: list[Job]) -> bool:
        """Room for ``job`` (or any job of a shape) in ``d`` beside ``running``: cores, memory
        and every per-domain cap."""
        queues = self.policy.queues
        caps = [queues[o.queue].per_domain_jobs for o in running + [job] if o.queue in queues]
        return len(running) < min(caps, default=1) and \
            sum(o.cores for o in running) + job.cores <= d.cores and \
            sum(o.memory_mb for o in running) + job.memory_mb <= d.memory_mb

    def _fits_now(self, job: Job, d: Domain, extra: list[Job]) -> bool:
        s = self.s
        if not d.state.active or d.name in self.reserved or d.name in self.held_back or \
                s._kind(d.image, s.hosts[d.host].features) not in s._job_kinds(job):
            return False
        running = [s.jobs[o] for o in s.domain_jobs.get(d.name, ()) if s.status.get(o) == _STATE_RUNNING] + extra
        return self._fits_with(job, d, running)

    # -- preemption -------------------------------------------------------------------------
    def preempt(self, unplaced: list[int]) -> list[int]:
        s = self.s
        if self.mode_off():
            return unplaced
        permit = s.plugins.get("preempt")
        lowest = 0
        if not self.owners and not any(s._vo_rank_pending):
            return unplaced          # nobody waiting outranks anybody: no preemption to search
        left = []
        tried: set = set()
        shapes = s._hshape
        for h in unplaced:
            jid = s._job_name.get(h)
            if jid is None:
                continue
            shape = shapes[h]
            rank = shape.rank
            if rank <= lowest and not self.owners:
                left.append(h)
                continue
            job = s.jobs[jid]
            victims = None
            if rank > lowest and shape not in tried:
                victims = s.engine.find_victims(h, s.mode, self.now)
                if victims is None:
                    tried.add(shape)
            if victims is not None and permit is not None:
                st = permit.allow(job, [s.jobs[s._job_name[v]] for v in victims.jobs])
                if not st.ok:
                    self.notes[jid] = st.reason
                    victims = None
            if victims is None:
                if self.policy.preemption.owner_reclaim and self._owner_reclaim(h, job):
                    continue
                if rank > lowest and s._by_state[DomainState.SUSPENDED] and s.mode == MODE_SUSPEND_DOMAIN \
                        and self._thaw_for(h, job, permit):
                    continue
                left.append(h)
                continue
            self._apply_victims(h, jid, victims)
        return left

    # -- share preemption ------------------------------------------------------------------
    def share_preempt(self, unplaced: list[int]) -> None:
        """Move whole hosts from VOs over their share to a VO under it whose jobs have waited
        ``share_after``.

        The idle-domain holdback only moves hosts that empty; when an over-share VO keeps
        every host busy with long jobs, the VO under its share would wait for days. Here a
        host whose active domain runs only default-class work of over-share VOs has that
        domain frozen and the waiting VO's domain there resumed, when a job of that VO still
        waiting in this cycle after ``share_after`` fits it, or when the VO's own work has
        been frozen there that long. Hosts with the VO's frozen work go first, so its work
        comes back before anybody else's is frozen. A host moves only while it brings both
        VOs nearer their targets and the waiting VO has waiting jobs that fit it, so the shares
        settle instead of swinging. The trigger is the jobs' own wait and the domains' own
        state, so a restarted scheduler decides the same; the only memory is the pace (once
        per cycle interval) and the last fruitless search, and a restart merely looks again."""
        s, now = self.s, self.now
        after = self.policy.preemption.share_after_s
        if after is None or s.mode != MODE_SUSPEND_DOMAIN or self.balance is None or now < s._share_next:
            return
        # A slow correction: looked at once per cycle interval, not at every event a burst
        # of submissions triggers a cycle for (again at once after a move, to go on).
        s._share_looked, s._share_next = now, now + self.policy.cycle_interval_s
        held, target, waiting, frozen_cores = self.balance
        under = {vo for vo in target if (waiting[vo] > 0 or frozen_cores[vo] > 0)
                 and held.get(vo, 0.0) < target[vo] - 1e-9}
        over = {vo for vo, c in held.items() if c > target.get(vo, 0.0) + 1e-9}
        if not under or not over:
            return
        held = Counter(held)
        # The under-share VOs' jobs this cycle left waiting: the shapes of those that waited
        # share_after (they call for a move), and the cores all of them ask (what fills it).
        # Only the smallest hosts move (see below), so only jobs that fit one count.
        smallest = s._smallest_host()
        shapes: set[_Shape] = set()
        supply: Counter = Counter()
        names, jobs, hshape = s._job_name, s.jobs, s._hshape
        for h in unplaced:
            sh = hshape.get(h)
            if sh is None or sh.cores > smallest or sh.vo not in under:
                continue
            jid = names.get(h)
            if jid is None:
                continue
            supply[sh.vo] += sh.cores
            if sh not in shapes and now - jobs[jid].submit_time >= after:
                shapes.add(sh)
        share_vos = s._image_share_vos
        # Work of an under-share VO frozen for share_after calls for its host back as well.
        overdue: set[str] = set()
        for n in s._by_state[DomainState.SUSPENDED]:
            vos = share_vos.get(s.domains[n].image)
            if vos and set(vos) & under and s.domain_jobs.get(n) and now - s.domains[n].since >= after:
                overdue.add(n)
        if not shapes and not overdue:
            return
        due = {sh.vo for sh in shapes} | {vo for n in overdue for vo in share_vos[s.domains[n].image] if vo in under}
        # A search that moved nothing moves nothing again until a domain, the waiting shapes
        # or a VO's distance from its target changes.
        memo = (s._rooms_version, s._topology, frozenset(shapes), frozenset(overdue), frozenset(due), frozenset(over),
                tuple(sorted((vo, round(target[vo] - held[vo])) for vo in due | over)))
        if s._share_idle_search == memo:
            return
        default = self.default_rank
        usable: dict[tuple, bool] = {}      # (image, features, cores, memory) of an empty domain -> a shape fits
        candidates = []
        images = sorted(img for img, vos in share_vos.items() if vos and set(vos) & due and not set(vos) & over)
        for bname in sorted(n for img in images for n in s._inactive_img.get(img, ())):
            b = s.domains[bname]
            host = s.hosts[b.host]
            # Only the smallest hosts move to a VO: the bigger ones are what wide jobs wait
            # for, by share or by class preemption, and work frozen there would leave them
            # nowhere. (A VO's own frozen work may still come back to any host.)
            if not host.up or bname in self.claimed:
                continue
            frozen = [s.jobs[j] for j in s.domain_jobs.get(bname, ())]
            if not frozen and host.cores > smallest:
                continue          # only work of its own comes back to a bigger host
            if b.state is DomainState.SUSPENDED and frozen:
                fits = bname in overdue or any(self._could_run_in(sh, b, host, frozen) for sh in shapes)
            elif b.state is DomainState.OCCUPIED and not frozen:
                key = (b.image, host.features, b.cores, b.memory_mb)
                fits = usable.get(key)
                if fits is None:
                    fits = usable[key] = any(self._could_run_in(sh, b, host, []) for sh in shapes)
            else:
                continue
            if not fits:
                continue
            for aname in s.host_domains[b.host]:
                a = s.domains[aname]
                a_vos = share_vos.get(a.image)
                if a.state is not DomainState.RUNNING or not a_vos or not set(a_vos) <= over \
                        or aname in self.claimed or aname in self.reserved \
                        or not self.rooms[b.host].fits(b.cores, b.memory_mb, [a]):
                    continue
                inside = s.domain_jobs.get(aname, ())
                if any(s.status.get(j) != _STATE_RUNNING or self._rank(s.jobs[j]) > default for j in inside):
                    continue          # only default-class work is frozen for share
                if frozen and not self._frozen_for_share(b.host):
                    break
                # the waiting VO's own work back first, then the least work frozen
                candidates.append((0 if frozen else 1, b.cores, sum(s.jobs[j].cores for j in inside), b.host,
                                   aname, bname))
                break
        moved = False
        for *_, hname, aname, bname in sorted(candidates):
            a, b = s.domains[aname], s.domains[bname]
            if aname in self.claimed or bname in self.claimed or a.state is not DomainState.RUNNING \
                    or not self.rooms[hname].fits(b.cores, b.memory_mb, [a]):
                continue          # an earlier move on the same host changed its room
            a_vos, b_vos = share_vos[a.image], share_vos[b.image]
            thaw = bool(s.domain_jobs.get(bname))    # its own frozen work fills it
            gain = [vo for vo in b_vos if vo in due and (thaw or supply[vo] > 0)
                    and held[vo] + b.cores / len(b_vos) <= target[vo] + b.cores / (2 * len(b_vos))]
            if not gain or any(held[vo] - a.cores / len(a_vos) < target.get(vo, 0.0) - a.cores / (2 * len(a_vos))
                               for vo in a_vos):
                continue      # past the middle of the host, or nothing left to run there: it would overshoot
            self._switch(hname, aname, bname, by=None, share_for=gain[0])
            for vo in a_vos:
                held[vo] -= a.cores / len(a_vos)
            for vo in b_vos:
                held[vo] += b.cores / len(b_vos)
            supply[gain[0]] -= b.cores - sum(s.jobs[j].cores for j in s.domain_jobs.get(bname, ()))
            moved = True
        s._share_idle_search = None if moved else memo
        if moved:
            s._share_next = now

    def _switch(self, hname: str, aname: str, bname: str, by: str | None, share_for: str | None) -> None:
        """Freeze active domain ``aname`` (its jobs with it) and resume ``bname`` on host
        ``hname``, thawing any work frozen in it."""
        s, now = self.s, self.now
        room = self.rooms[hname]
        a, b = s.domains[aname], s.domains[bname]
        inside = sorted(s.domain_jobs.get(aname, ()))
        self.actions.append(SuspendDomain(aname, by=by if inside else None, share_for=share_for))
        room.give(a)
        for vid in inside:
            s.jobs[vid] = attrs.evolve(s.jobs[vid], state=JobState.SUSPENDED)
            s._set_status(vid, _STATE_SUSPENDED)
        s._mark_domain(aname, DomainState.SUSPENDED if inside else DomainState.OCCUPIED, now)
        room.take(b.cores, b.memory_mb)
        self.actions.append(ResumeDomain(bname))
        frozen = sorted(s.domain_jobs.get(bname, ()))
        s._mark_domain(bname, DomainState.RUNNING if frozen else DomainState.FREE, now)
        for jid in frozen:
            if s.status.get(jid) == _STATE_SUSPENDED:
                s.set_job(attrs.evolve(s.jobs[jid], state=JobState.RUNNING))
        self.claimed.update((aname, bname))

    def _thaw_for(self, h: int, job: Job, permit) -> bool:
        """A job that outranks the work running on a host may take back its own image's
        domain there when that domain was frozen for fair share and has room for the job
        beside its frozen work: the share preemptor's domain is frozen in turn and the
        frozen work resumes beside the job. Without this, a VO frozen out by share could not
        start even an interactive job until the other VO's hosts drained. (A frozen domain
        with no room beside its work cannot take the job: that is not preemption's to fix.)
        The displaced work is frozen by class while the job runs, and for share after: it
        comes back when the domain it made way for empties, or after ``share_after`` when
        its VO is owed the host."""
        s = self.s
        sh = s._hshape[h]
        if sh in self.thaw_failed:
            return False
        candidates = []
        for bname in sorted(s._by_state[DomainState.SUSPENDED]):
            b = s.domains[bname]
            frozen = [s.jobs[j] for j in s.domain_jobs.get(bname, ())]
            host = s.hosts[b.host]
            if not frozen or not host.up or not self._could_run_in(sh, b, host, frozen) \
                    or not self._frozen_for_share(b.host):
                continue
            room = self.rooms[b.host]
            actives = [s.domains[n] for n in room.domains if s.domains[n].state.active]
            if len(actives) != 1 or actives[0].name in self.claimed or not room.fits(b.cores, b.memory_mb, actives):
                continue
            victims = sorted(s.domain_jobs.get(actives[0].name, ()))
            ranks = [self._rank(s.jobs[j]) for j in victims]
            if any(r >= sh.rank for r in ranks):
                continue
            cost = (max(ranks, default=-1), sum(s.jobs[j].cores for j in victims), b.host, bname)
            candidates.append((cost, actives[0].name, victims))
        for (victim_rank, _, hname, bname), aname, victims in sorted(candidates):
            if self._vetoed(job.id, bname):
                continue
            if permit is not None and victims:
                st = permit.allow(job, [s.jobs[v] for v in victims])
                if not st.ok:
                    self.notes[job.id] = st.reason
                    continue
            self._switch(hname, aname, bname, by=job.id, share_for=None)
            self.actions.append(RunJob(job.id, bname))
            s.engine.start_job(h, s._slot_h[bname], self.now)
            s._mark_running(job.id, bname, self.now, via_engine=True)
            if victim_rank >= 0:
                self._reserve(bname, victim_rank + 1)
            return True
        if not candidates:        # (a veto is the job's own: other jobs of its shape may pass)
            self.thaw_failed.add(sh)
        return False

    def mode_off(self) -> bool:
        return self.s.mode is None

    def _apply_victims(self, h: int, jid: str, victims) -> None:
        s, now = self.s, self.now
        target = s._slot_name[victims.slot]
        victim_rank = max((self._rank(s.jobs[s._job_name[v]]) for v in victims.jobs), default=-1)
        if s.mode == MODE_SUSPEND_DOMAIN:
            for slot in victims.suspend_slots:
                name = s._slot_name[slot]
                self.actions.append(SuspendDomain(name, by=jid))
                self.rooms[s.domains[name].host].give(s.domains[name])
                for v in sorted(s.domain_jobs[name]):
                    s.jobs[v] = attrs.evolve(s.jobs[v], state=JobState.SUSPENDED)
                    s._set_status(v, _STATE_SUSPENDED)
                s._mark_domain(name, DomainState.SUSPENDED, now)
            d = s.domains[target]
            self.rooms[d.host].take(d.cores, d.memory_mb)
            self.actions.append(ResumeDomain(target))
            s._mark_domain(target, DomainState.FREE, now)
        else:
            for v in victims.jobs:
                vid = s._job_name[v]
                vjob = s.jobs[vid]
                if s.mode == MODE_SUSPEND_JOBS:
                    self.actions.append(SuspendJob(vid, by=jid))
                    s.remove_job(vid)
                    s.jobs[vid] = attrs.evolve(vjob, state=JobState.SUSPENDED)
                    s._set_status(vid, _STATE_SUSPENDED)
                    s._domain_add(vjob.domain, vid)
                else:
                    self.actions.append(RequeueJob(vid, by=jid))
                    s.remove_job(vid)
                    s.set_job(attrs.evolve(vjob, state=JobState.QUEUED, domain=None, start_time=None))
                    self.requeued[vid] = f"requeued: preempted by {jid}"
        self.actions.append(RunJob(jid, target))
        s.engine.start_job(h, victims.slot, now)
        s._mark_running(jid, target, now, via_engine=True)
        self.claimed.add(target)
        if victims.jobs:
            self._reserve(target, victim_rank + 1)

    def _owner_reclaim(self, h: int, job: Job) -> bool:
        """The job's group owns hosts that borrowers hold: evict the cheapest borrower
        domains of lower class and place the job there (boot or activate its image).

        Nothing is evicted unless the job can then be placed: the placement is worked out on
        a copy of the host first, so a reclaim never leaves borrowers frozen for nothing."""
        s, now = self.s, self.now
        if s.mode is None or not (job.group in self.owners or job.vo in self.owners):
            return False
        images = s.images_for(job)
        key = (job.group, job.vo, images, job.cores, job.memory_mb, job.features, self._rank(job))
        if not images or key in self.reclaim_failed:
            return False
        owned = {n: self.rooms[n] for n in self.owners.get(job.group, []) + self.owners.get(job.vo, [])}
        running = {j: s.jobs[j] for r in owned.values() for d in r.domains for j in s.domain_jobs.get(d, ())
                   if s.status.get(j) == _STATE_RUNNING}
        rec = find_owner_reclaim(job, self._rank, owned, s.domains, s.domain_jobs, running,
                                 lambda host: self._size_for(job, host), now)
        placement = None
        if rec is not None:
            requeue = s.mode == MODE_REQUEUE
            room = self.rooms[rec.host]
            trial = lifecycle.HostRoom(room.host, [n for n in room.domains if not (requeue and n in rec.domains)],
                                       room.active, room.cores, room.memory)
            view = dict(s.domains)
            for dname in rec.domains:
                trial.give(s.domains[dname])
                view[dname] = attrs.evolve(s.domains[dname], state=DomainState.SHUTTING_DOWN if requeue
                                           else DomainState.SUSPENDED)
            placement = lifecycle.plan_placement(
                job, images, {rec.host: trial}, view,
                lambda n: self.busy(n) or (n in rec.domains and not requeue), self.policy.flavors,
                self.policy.lifecycle, self.boots_left, now)
        if placement is None:
            self.reclaim_failed.add(key)
            return False
        room = self.rooms[rec.host]
        for dname in rec.domains:
            room.give(s.domains[dname])
            self.claimed.add(dname)
            victims = sorted(s.domain_jobs.get(dname, ()))
            if requeue:
                for vid in victims:
                    vjob = s.jobs[vid]
                    self.actions.append(RequeueJob(vid, by=job.id))
                    s.remove_job(vid)
                    s.set_job(attrs.evolve(vjob, state=JobState.QUEUED, domain=None, start_time=None))
                    self.requeued[vid] = f"requeued: host {rec.host}'s owner reclaimed it for job {job.id}"
                self.actions.append(ShutdownDomain(dname))
                room.domains.remove(dname)
                s._mark_domain(dname, DomainState.SHUTTING_DOWN, now)
            else:
                self.actions.append(SuspendDomain(dname, by=job.id if victims else None))
                for vid in victims:
                    s.jobs[vid] = attrs.evolve(s.jobs[vid], state=JobState.SUSPENDED)
                    s._set_status(vid, _STATE_SUSPENDED)
                s._mark_domain(dname, DomainState.SUSPENDED if victims else DomainState.OCCUPIED, now)
        placement = lifecycle.plan_placement(job, images, {rec.host: room}, s.domains, self.busy,
                                             self.policy.flavors, self.policy.lifecycle,
                                             self.boots_left, now)
        if placement is None:   # cannot happen: the trial above found one on the same room
            raise AssertionError(f"owner reclaim for {job.id}: placement vanished")
        self._apply_placement(h, job.id, job, placement)
        return True

    def _size_for(self, job: Job, host: Host) -> tuple[int, int] | None:
        """Room a domain for ``job`` takes on ``host``: an idle inactive domain of its image
        there, else the flavor lifecycle would boot."""
        s = self.s
        images = set(s.images_for(job))
        for dname in s.host_domains.get(host.name, ()):
            d = s.domains[dname]
            if d.image in images and d.state in (DomainState.OCCUPIED, DomainState.SUSPENDED) \
                    and not s.domain_jobs.get(dname) and d.cores >= job.cores and d.memory_mb >= job.memory_mb:
                return d.cores, d.memory_mb
        if not self.policy.lifecycle.dynamic_boot:
            return None
        f = lifecycle.choose_flavor(job, self.policy.flavors, host)
        return None if f is None else f.size_on(host)

    # -- lifecycle ----------------------------------------------------------------------------
    def place(self, unplaced: list[int], held_back: set[str]) -> None:
        s, now = self.s, self.now
        lc = self.policy.lifecycle
        booting_for: dict[str, list[Domain]] = {}
        for name in sorted(s._by_state[DomainState.BOOTING]):
            if not s.domain_jobs.get(name):
                booting_for.setdefault(s.domains[name].image, []).append(s.domains[name])
        promised: Counter = Counter()
        bound = {s.jobs[j].domain for j in s._listed[_STATE_BOUND]}
        failed: set = set()
        # A job shape that found nothing finds nothing again until a domain opens in this
        # phase: with thousands of queued jobs, most of them are the same few shapes.
        # shape -> (domains opened when it found nothing, the wait its jobs join)
        dead: dict[_Shape, tuple[int, list[str]]] = {}
        can_skip = "filter" not in s.plugins
        names, status, shapes, notes = s._job_name, s.status, s._hshape, self.notes
        for h in unplaced:
            jid = names.get(h)
            if jid is None or status.get(jid) != _STATE_PENDING:
                continue
            sh = shapes[h]
            if can_skip:
                gone = dead.get(sh)
                if gone is not None and gone[0] == self.opened and jid not in notes:
                    gone[1].append(jid)
                    continue
            job = s.jobs[jid]
            images = sh.images
            # Domains activated earlier in this phase may take more jobs: fill them first.
            slot = s.engine.best_slot(h)
            if slot is None and self.reserved:
                slot = self._reserved_slot(h, job)
            if slot is None and held_back and sh.rank > self.default_rank:
                slot = self._held_back_slot(h, job, held_back)
            if slot is not None and self._vetoed(jid, s._slot_name[slot]):
                slot = None
            if slot is not None:
                dname = s._slot_name[slot]
                self.actions.append(RunJob(jid, dname))
                s.engine.start_job(h, slot, now)
                s._mark_running(jid, dname, now, via_engine=True)
                self.claimed.add(dname)
                continue
            wait = None
            for img in images:
                for d in booting_for.get(img, ()):
                    if d.cores >= job.cores and d.memory_mb >= job.memory_mb and promised[d.name] < 1 \
                            and job.features <= s.hosts[d.host].features and d.name not in bound:
                        wait = d
                        break
                if wait:
                    break
            if wait is not None:
                promised[wait.name] += 1
                self._wait(jid, sh, (f"waiting for domain {wait.name} to boot",))
                continue
            shape = sh.lifecycle_key
            placement = None
            # Nothing lifecycle looks at has opened up since this shape last failed (claims
            # made in this cycle only narrow it; the epoch moves at the end of the cycle if
            # they are given back).
            if s._placement_failed.get(shape) == s._lifecycle_epoch:
                failed.add(shape)
            if shape not in failed and images:
                rooms = self.rooms if not job.features else \
                    {n: r for n, r in self.rooms.items() if job.features <= r.host.features}
                placement = lifecycle.plan_placement(
                    job, images, rooms, s.domains, self.busy, self.policy.flavors,
                    lc, self.boots_left, now, inactive=s._inactive_img)
                if placement is None:
                    failed.add(shape)
                    s._placement_failed[shape] = s._lifecycle_epoch
            if placement is None:
                group = self._wait(jid, sh, self._capacity_notes(jid, sh))
                if jid not in notes:      # a job with its own note waits in a group of its own
                    dead[sh] = (self.opened, group)
                continue
            boots_left = self.boots_left
            self._apply_placement(h, jid, job, placement)
            if placement.ready:
                self.opened += 1
            elif self.boots_left != boots_left:
                dead.clear()      # the notes of later waits may now say the boot limit is reached

    def _wait(self, jid: str, sh: _Shape, notes: tuple[str, ...]) -> list[str]:
        group = self.waits.get((sh, notes))
        if group is None:
            group = self.waits[(sh, notes)] = []
        group.append(jid)
        return group

    def _capacity_notes(self, jid: str, sh: _Shape) -> tuple[str, ...]:
        """What to add to a capacity wait's reason; the same tuple for every job that shares
        it, so that reasons group by identity."""
        lc = self.policy.lifecycle
        limited = lc.dynamic_boot and self.boots_left <= 0
        key = (sh.vo, limited)
        notes = self._shared_notes.get(key)
        if notes is None:
            share = self.over_share.get(sh.vo) if self.over_share else None
            notes = self._shared_notes[key] = ((share,) if share else ()) + \
                ((f"boot limit reached ({lc.max_concurrent_boots} under way)",) if limited else ())
        if jid in self.notes:
            notes = (self.notes[jid],) + notes
        return notes

    def explain_waiting(self) -> None:
        """Reasons from the state at the end of the cycle, once per job shape: what an admin
        reads must match what the cluster looks like after this plan, not halfway through."""
        s = self.s
        total = len(s.domains)
        texts: dict[_Shape, str] = {}
        late = self.started_late
        for (sh, notes), jids in self.waits.items():
            if late:
                jids = [j for j in jids if j not in late]
                if not jids:
                    continue
            base = texts.get(sh)
            if base is None:
                counts = s.engine.reasons(s._job_h[jids[0]])
                key = (sh, counts, total, s._domain_version)
                base = s._reason_texts.get(key)
                if base is None:
                    if len(s._reason_texts) >= 4096:
                        s._reason_texts.clear()
                    base = s._reason_texts[key] = self._reason_text(sh, counts, total)
                texts[sh] = base
            held = self._held_for_higher(sh)
            if held:
                notes = (f"{held} of them held for higher-class jobs while preempted work waits",) + notes
            self.pending.update(dict.fromkeys(jids, Pending(Verdict.NOT_NOW, "; ".join((base,) + notes))))

    def _held_for_higher(self, sh: _Shape) -> int:
        """Domains of the shape's images that this cycle keeps for jobs of a higher class."""
        if not self.reserved:
            return 0
        images, rank, s = set(sh.images), sh.rank, self.s
        return sum(1 for n, need in self.reserved.items()
                   if rank < need and n in s.domains and s.domains[n].image in images)

    def second_chance(self, held_back: set[str], queue: list[int]) -> None:
        """Held-back domains that no under-share VO took this cycle go back to their own VO:
        idle cores help nobody. ``queue`` is what placement went through, in priority order."""
        s, now = self.s, self.now
        back = [n for n in sorted(held_back) if n not in self.claimed and n in s.domains
                and s.domains[n].state is DomainState.FREE]
        if not back:
            return
        for name in back:
            s.engine.set_slot_state(s._slot_h[name], SLOT_ACTIVE)
        nofit: set[_Shape] = set()     # starting jobs only fills domains: no slot stays no slot
        groups = []
        for (sh, _notes), jids in self.waits.items():
            if sh not in nofit:
                if s.engine.best_slot(s._job_h[jids[0]]) is None:
                    nofit.add(sh)
                else:
                    groups.append(jids)
        if not groups:
            return
        if len(groups) == 1:
            order = [s._job_h[j] for j in groups[0]]
        else:
            waiting = {j for jids in groups for j in jids}
            order = [h for h in queue if s._job_name.get(h) in waiting]
        for h in order:
            jid = s._job_name[h]
            if s._hshape[h] in nofit:
                continue
            slot = s.engine.best_slot(h)
            if slot is None:
                nofit.add(s._hshape[h])
                continue
            if self._vetoed(jid, s._slot_name[slot]):
                continue
            dname = s._slot_name[slot]
            self.actions.append(RunJob(jid, dname))
            s.engine.start_job(h, slot, now)
            s._mark_running(jid, dname, now, via_engine=True)
            self.claimed.add(dname)
            self.started_late.add(jid)

    def _rank(self, job: Job) -> int:
        return self.s.rank_of(job)

    def reserve_for_preemptors(self) -> None:
        """While a host holds suspended work, its active domains serve only jobs that outrank
        it: otherwise an equal job would slip into the room a preemptor made, and the
        suspended jobs would in effect be preempted by their equals. Domains frozen for fair
        share reserve nothing: no preemptor made that room (see ``_host_frozen``)."""
        s = self.s
        frozen = s._frozen_hosts()
        if not frozen:
            return
        top = self._ranked_running_top()
        for hname in sorted(frozen):
            high, for_share = self._host_frozen(hname, top)
            if for_share:
                continue
            for n in s.host_domains[hname]:
                if s.domains[n].state.active:
                    self._reserve(n, high + 1)

    def _ranked_running_top(self) -> dict[str, int]:
        """Host -> the highest class rank running in its active domains, for the hosts where
        it is above the lowest class (the rest run only lowest-class work, if any)."""
        s = self.s
        top: dict[str, int] = {}
        for j in s._ranked_running:
            d = s.domains.get(s.jobs[j].domain)
            if d is not None and d.state.active:
                r = self._rank(s.jobs[j])
                if r > top.get(d.host, 0):
                    top[d.host] = r
        return top

    def _host_frozen(self, hname: str, top: dict[str, int] | None = None) -> tuple[int, bool]:
        """The highest class rank of the work frozen on host ``hname`` (-1: none), and whether
        it sits in suspended domains while no job running there outranks all of it. A
        preemptor outranks everything it froze, so such work was frozen for fair share (or
        its preemptor has ended). Worked out from the state alone, so it survives a
        scheduler restart. ``top``: ``_ranked_running_top()``, when the caller has it."""
        s = self.s
        f = s._frozen_hosts().get(hname)
        if f is None:
            return -1, False
        high, doms = f
        if top is None:
            top = self._ranked_running_top()
        return high, all(s.domains[n].state is DomainState.SUSPENDED for n in doms) and top.get(hname, 0) <= high

    def _frozen_for_share(self, hname: str) -> bool:
        return self._host_frozen(hname)[1]

    def _reserve(self, name: str, need: int) -> None:
        self.reserved[name] = max(need, self.reserved.get(name, 0))
        self.s.engine.set_slot_state(self.s._slot_h[name], SLOT_STARTING)

    def _closed_fits(self, h: int, name: str) -> bool:
        """Whether job ``h`` would take domain ``name``, closed for this cycle, were it open:
        the matcher's own best fit decides, and the domain stays closed."""
        slot = self.s._slot_h[name]
        self.s.engine.set_slot_state(slot, SLOT_ACTIVE)
        found = self.s.engine.best_slot(h)
        self.s.engine.set_slot_state(slot, SLOT_STARTING)
        return found == slot

    def _reserved_slot(self, h: int, job: Job) -> int | None:
        s, rank = self.s, self._rank(job)
        for name in sorted(self.reserved):
            if rank < self.reserved[name] or name not in s.domains or not s.domains[name].state.active:
                continue
            if self._closed_fits(h, name):
                return s._slot_h[name]
        return None

    def _held_back_slot(self, h: int, job: Job, held_back: set[str]) -> int | None:
        """A job above the default class is never kept waiting by the share between images:
        it may take an idle domain held back from its over-share VO."""
        s = self.s
        for name in sorted(held_back):
            if name in self.claimed or name not in s.domains or s.domains[name].state is not DomainState.FREE:
                continue
            if self._closed_fits(h, name):
                held_back.discard(name)       # open again for good: this job takes it
                s.engine.set_slot_state(s._slot_h[name], SLOT_ACTIVE)
                return s._slot_h[name]
        return None

    def _apply_placement(self, h: int, jid: str, job: Job, placement: lifecycle.Placement) -> None:
        s, now = self.s, self.now
        for a in placement.actions:
            self.actions.append(a)
            if hasattr(a, "domain"):
                self.claimed.add(a.domain)
            if a.verb == "suspend-domain":
                s._mark_domain(a.domain, DomainState.OCCUPIED, now)
            elif a.verb == "shutdown":
                s._mark_domain(a.domain, DomainState.SHUTTING_DOWN, now)
                self.claimed.add(a.domain)
            elif a.verb == "resume-domain":
                s._mark_domain(a.domain, DomainState.FREE, now)
        if placement.new is not None:
            self.boots_left -= 1
            s.set_domain(placement.new)
        self.claimed.add(placement.domain)
        if placement.ready:
            self.actions.append(RunJob(jid, placement.domain))
            s._mark_running(jid, placement.domain, now, via_engine=False)
        elif self.policy.lifecycle.bind_on_boot:
            self.actions.append(BindJob(jid, placement.domain))
            s.remove_job(jid)
            s.set_job(attrs.evolve(job, domain=placement.domain))
            self.pending[jid] = Pending(Verdict.NOT_NOW, f"bound to domain {placement.domain}, booting for it")
        else:
            self.pending[jid] = Pending(Verdict.NOT_NOW, f"booting domain {placement.domain} for it")

    def _reason_text(self, sh: _Shape, counts, total: int) -> str:
        s = self.s
        wrong = counts[Reason.WRONG_KIND]
        parts = []
        if wrong:
            images = set(sh.images)
            feat = sum(n for (img, f), k in s._kinds.items() for n in [s._kind_total[k]]
                       if img in images and not sh.features <= f)
            if wrong - feat:
                parts.append(f"{wrong - feat} wrong image")
            if feat:
                parts.append(f"{feat} missing feature {','.join(sorted(sh.features))}")
        for r in (Reason.NOT_ACTIVE, Reason.FULL, Reason.CORES, Reason.MEMORY):
            if counts[r]:
                parts.append(f"{counts[r]} {_REASON_WORDS[r]}")
        return f"0/{total} domains" + (": " + ", ".join(parts) if parts else "")

    def warm_pool(self) -> None:
        s, lc = self.s, self.policy.lifecycle
        for image, want in lc.warm_pool:
            have = sum(1 for d in s.domains.values() if d.image == image and
                       d.state in (DomainState.FREE, DomainState.BOOTING) and not s.domain_jobs.get(d.name))
            vo = sorted(self.policy.images[image].vos)[0] if self.policy.images[image].vos else "warm"
            probe = Job("warm-pool", "vmsched", vo, vo, next(iter(sorted(self.policy.queues))), 1, 0, 1, self.now,
                        image=image)
            while have < want and self.boots_left > 0:
                p = lifecycle.plan_placement(probe, (image,), self.rooms, s.domains, self.busy, self.policy.flavors,
                                             lc, self.boots_left, self.now,
                                             reclaimable=lambda d: False)
                if p is None or p.new is None:
                    break
                self.actions.extend(p.actions)
                self.boots_left -= 1
                s.set_domain(p.new)
                self.claimed.add(p.domain)
                have += 1
