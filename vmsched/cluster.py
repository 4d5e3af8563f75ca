"""The state the scheduler keeps between cycles, and the one place that changes it.

A batch server reports the whole cluster every cycle, or only what changed; either way the
Scheduler keeps the cluster in memory (its matcher, C or Python, holds the same hosts,
domains and jobs by handle), with indexes kept exact as things change: domains per state,
idle domains per image, jobs per status, running sums per fair-share entity, cores per VO.
So a cycle at a site of thousands of hosts looks only at what it must, never at everything.
"""

from __future__ import annotations

import bisect
import heapq
import warnings
from collections import Counter, OrderedDict
from typing import Any

import attrs

from vmsched.matching import (SLOT_ACTIVE, SLOT_IDLE, SLOT_STARTING, SLOT_UNAVAILABLE, Engine, EngineError,
                              PyEngine)
from vmsched.model import Domain, DomainState, Host, Job, JobState, QueueKind, Snapshot
from vmsched.policies.fairshare import FairShare, ShareTree, usage_amount
from vmsched.policies.preemption import engine_mode
from vmsched.policyfile import Policy
from vmsched.usage import UsageStore, decayed_usage

__all__ = ["Cluster", "Shape", "make_engine", "STATE_PENDING", "STATE_RUNNING", "STATE_HELD", "STATE_ROUTING",
           "STATE_BOUND", "STATE_SUSPENDED", "STATE_DONE"]


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


# A job's status as the cycle sees it (finer than the server's state: a queued job may be
# pending, waiting in a routing queue, or bound to a domain booting for it).
STATE_PENDING, STATE_RUNNING, STATE_HELD, STATE_ROUTING, STATE_BOUND, STATE_SUSPENDED, STATE_DONE = \
    "pending", "running", "held", "routing", "bound", "suspended", "done"

_GONE_KEEP = 200_000
_IN_DOMAIN = (JobState.RUNNING, JobState.EXITING, JobState.SUSPENDED)   # jobs that occupy their domain
_HOLDS_ROOM = (DomainState.FREE, DomainState.RUNNING, DomainState.BOOTING)
_INACTIVE = (DomainState.OCCUPIED, DomainState.SUSPENDED)

# How the matcher sees each domain state. A domain closed for new work for one cycle (held
# for a higher class, or for a VO under its share) is set to STARTING: its host room stays
# counted and it is no candidate for activation.
_SLOT_OF = {DomainState.FREE: SLOT_ACTIVE, DomainState.RUNNING: SLOT_ACTIVE, DomainState.BOOTING: SLOT_STARTING,
            DomainState.OCCUPIED: SLOT_IDLE, DomainState.SUSPENDED: SLOT_IDLE,
            DomainState.DOWN: SLOT_UNAVAILABLE, DomainState.SHUTTING_DOWN: SLOT_UNAVAILABLE}

class Shape:
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


def _moved(obj, **changes):
    """A copy of a model object with ``changes``, skipping its validators: for the
    scheduler's own changes of state, whose values (a state, a domain's name, a time) come
    from objects already validated. Starting a thousand jobs a cycle, attrs.evolve's
    validation of every field was most of the cost."""
    cls = obj.__class__
    new = object.__new__(cls)
    for a in cls.__attrs_attrs__:
        object.__setattr__(new, a.name, changes[a.name] if a.name in changes else getattr(obj, a.name))
    return new


def _same_place(a: Domain, b: Domain) -> bool:
    """The same domain apart from its state and since: name, host, image, flavor and size."""
    return (a.name, a.host, a.image, a.flavor, a.cores, a.memory_mb) == (b.name, b.host, b.image, b.flavor, b.cores,
                                                                         b.memory_mb)


class Cluster:
    """The site as the scheduler last saw it, kept between cycles: hosts, domains and jobs,
    the matcher's copy of them, and the indexes and running sums that let a cycle look only
    at what matters. Every change goes through ``set_*``/``remove_*``, which keep all of them
    exact. The cycle (:mod:`vmsched.cycle`) reads this state and mirrors its own plan into it
    through ``_mark_domain``/``_mark_running``/``set_job``."""

    def __init__(self, policy: Policy, *, engine: Engine | None = None, store: UsageStore | None = None):
        self.policy = policy
        self.engine = engine if engine is not None else make_engine(policy.engine)
        self.store = store if store is not None else UsageStore(policy.fairshare.store or ":memory:")
        fs = policy.fairshare
        self.fairshare = FairShare(ShareTree.from_entries(fs.shares, default_share=fs.default_share),
                                   fs.half_life_s, fs.floor, bookkeeping=fs.bookkeeping)
        self.mode = engine_mode(policy.preemption)
        self.plugins: dict[str, Any] = {}
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
        self._shapes: dict[tuple, Shape] = {}          # interned job shapes
        self._rates: dict[tuple[int, int], float] = {}  # (cores, memory) -> usage charged per second
        self._hshape: dict[int, Shape] = {}            # matcher handle -> its job's shape
        self._reason_texts: dict[tuple, str] = {}       # (shape, counts, domains) -> the reason's text
        # domains per state, and idle-or-frozen (occupied, suspended) domains per image, kept
        # as domains change so that a cycle never walks every domain of the site
        self._by_state: dict[DomainState, set[str]] = {st: set() for st in DomainState}
        # Per host, kept as domains change: the room its active and booting domains hold
        # [domains, cores, memory], its active domains without jobs, and the hosts where a
        # domain could be activated or booted at all (an active slot left, or an idle active
        # domain to switch out). A saturated site has few of those, and lifecycle looks
        # only at them instead of at every host.
        self._room_used: dict[str, list[int]] = {}
        self._idle_active: dict[str, set[str]] = {}
        self._openable: set[str] = set()
        self._openable_sorted: list[str] = []
        self._held_img: Counter = Counter()        # image -> cores its active and booting domains hold
        self._idle_img: dict[str, set[str]] = {}   # image -> its idle active domains
        self._inactive_img: dict[str, set[str]] = {}
        self._owners_cache: tuple[int, dict[str, list[str]]] = (-1, {})
        self._names_cache: tuple[int, list[str]] = (-1, [])
        self._capacity_cache: tuple[int, int, int] = (-1, 0, 0)
        self._factors_pushed: tuple[Any, int] | None = None
        self._gone: OrderedDict[str, Job] = OrderedDict()   # recently vanished jobs, for late on_job_end
        top = {p[0] for p, _ in fs.shares if len(p) == 1}
        # image -> the top-level share VOs it serves (for the share between images)
        self._image_share_vos = {name: tuple(sorted(im.vos & top)) for name, im in policy.images.items()}
        self._contrib: dict[str, tuple] = {}           # job -> what it adds to the sums below
        # jobs per status, for the few statuses a cycle walks (not pending, not running)
        self._listed: dict[str, set[str]] = {st: set() for st in (STATE_SUSPENDED, STATE_ROUTING, STATE_BOUND,
                                                                  STATE_HELD)}
        self._suspended = self._listed[STATE_SUSPENDED]
        self._frozen_version = 0                       # bumped when a job is suspended or leaves that
        self._frozen_cache: tuple[int, tuple[dict, dict]] = (-1, ({}, {}))
        self._vo_rank_pending: dict[str, bool] = {}    # pending jobs above the lowest class
        # jobs that named a flavor: the flavor-jobs phase places them, and with none it
        # costs a cycle nothing
        self.flavor_jobs: set[str] = set()
        self._ranked_running: set[str] = set()          # running jobs above the lowest class
        self._ranked_version = 0                        # bumped when a job enters, leaves or changes in it
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
        self._held_at = -1
        self._domain_version = 0    # bumped when domains come or go
        self._never_checked = (0, 0)  # the topology the never-runnable verdicts were made for
        self._share_idle_search: tuple | None = None  # what the last share-preemption search that moved nothing saw
        self._share_next = float("-inf")   # share preemption looks again from this time on
        self._share_looked = float("-inf")  # ... and last looked then

    # ------------------------------------------------------------------ feeding changes
    def sync(self, snapshot: Snapshot) -> None:
        """Make the in-core state equal to ``snapshot``, touching only what changed: a
        steady cycle of a large site differs from the last one in a few jobs, and only
        those may cost anything (models are frozen, so an unchanged one is often the very
        object seen last time)."""
        jobs = {j.id: j for j in snapshot.jobs}
        for jid in [j for j in self.jobs if j not in jobs]:
            self.remove_job(jid)
        doms = {d.name: d for d in snapshot.domains}
        for h in snapshot.hosts:
            old = self.hosts.get(h.name)
            if old is not h:
                self.set_host(h)
        for name in [d for d in self.domains if d not in doms]:
            self.remove_domain(name)
        # Servers differ in when they flip a node between free and job-exclusive (Torque
        # keeps a node with free slots "free"); what counts is whether jobs are in it.
        # Settled here, before the domain is set, a busy domain reported "free" every cycle
        # is no change at all.
        busy = {j.domain for j in snapshot.jobs if j.domain is not None and j.state in _IN_DOMAIN}
        changed = []
        for d in doms.values():
            old = self.domains.get(d.name)
            if old is d:
                continue
            if d.state is DomainState.RUNNING and d.name not in busy:
                d = attrs.evolve(d, state=DomainState.FREE, since=snapshot.time)
            elif d.state is DomainState.FREE and d.name in busy:
                if old is not None and old.state is DomainState.RUNNING and _same_place(old, d) \
                        and old.since == d.since:
                    continue      # busy as we know it: no need to build the settled copy
                d = attrs.evolve(d, state=DomainState.RUNNING)
            if old != d:
                changed.append(d)
        for d in sorted(changed, key=lambda d: d.name):
            self.set_domain(d)
        names = {x.name for x in snapshot.hosts}
        for name in [h for h in self.hosts if h not in names]:
            self.remove_host(name)
        changed = []
        for j in snapshot.jobs:
            old = self.jobs.get(j.id)
            if old is None:
                changed.append(j)
            elif old is not j:
                mapped = self.with_vo(j)
                if old != mapped:
                    changed.append(j)
                elif mapped is j:
                    self._swap(old, j)
        for j in sorted(changed, key=lambda j: (j.submit_time, j.id)):
            self.set_job(j)
        # A job the server lists in a domain it does not list is dropped by set_domain's
        # removal; whatever is left unsettled is settled now.
        for name in sorted(n for n, d in self.domains.items()
                           if (d.state is DomainState.RUNNING) != bool(self.domain_jobs.get(n))
                           and d.state in (DomainState.RUNNING, DomainState.FREE)):
            self._settle(name, snapshot.time)

    def _settle(self, name: str, now: float) -> None:
        d = self.domains[name]
        has = bool(self.domain_jobs.get(name))
        if d.state is DomainState.RUNNING and not has:
            self.set_domain(_moved(d, state=DomainState.FREE, since=now))
        elif d.state is DomainState.FREE and has:
            self.set_domain(_moved(d, state=DomainState.RUNNING))

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
        self._update_openable(host.name)
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
        self._room_used.pop(name, None)
        self._idle_active.pop(name, None)
        self._update_openable(name)       # gone from hosts: no longer openable
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
                and _same_place(old, d)):
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
            if old.state in _HOLDS_ROOM:
                self._held_img[old.image] -= old.cores
                used = self._room_used[old.host]
                used[0] -= 1
                used[1] -= old.cores
                used[2] -= old.memory_mb
        if new is not None:
            self._by_state[new.state].add(new.name)
            if new.state in _INACTIVE:
                self._inactive_img.setdefault(new.image, set()).add(new.name)
            if new.state in _HOLDS_ROOM:
                self._held_img[new.image] += new.cores
                used = self._room_used.setdefault(new.host, [0, 0, 0])
                used[0] += 1
                used[1] += new.cores
                used[2] += new.memory_mb
            self._note_idle(new.name, new)
        elif old is not None:
            idle = self._idle_active.get(old.host)
            if idle is not None:
                idle.discard(old.name)
            idle = self._idle_img.get(old.image)
            if idle is not None:
                idle.discard(old.name)
            self._update_openable(old.host)

    def _note_idle(self, name: str, d: Domain | None) -> None:
        """Keep ``name`` in its host's idle active domains exactly while it is one, and the
        host's openness with it."""
        if d is None:
            d = self.domains.get(name)
        host = d.host if d is not None else None
        if d is not None and d.state.active and not self.domain_jobs.get(name):
            self._idle_active.setdefault(host, set()).add(name)
            self._idle_img.setdefault(d.image, set()).add(name)
        elif d is not None:
            idle = self._idle_active.get(host)
            if idle is not None:
                idle.discard(name)
            idle = self._idle_img.get(d.image)
            if idle is not None:
                idle.discard(name)
        if host is not None:
            self._update_openable(host)

    def _update_openable(self, name: str) -> None:
        h = self.hosts.get(name)
        used = self._room_used.get(name)
        if h is not None and h.up and (self._idle_active.get(name) or used is None or used[0] < h.max_active):
            if name not in self._openable:
                self._openable.add(name)
                bisect.insort(self._openable_sorted, name)
        elif name in self._openable:
            self._openable.discard(name)
            del self._openable_sorted[bisect.bisect_left(self._openable_sorted, name)]

    def openable_hosts(self) -> list[str]:
        """Hosts where lifecycle could activate or boot a domain, as the state stands, by
        name: an active slot left, or an idle active domain to switch out (callers must not
        modify the list). Others fail lifecycle's room test whatever the job."""
        return self._openable_sorted

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

    def _shape_of(self, job: Job, rank: int) -> Shape:
        key = (self.images_for(job), job.cores, job.memory_mb, job.features, job.queue, rank, job.vo, job.group,
               job.image)
        sh = self._shapes.get(key)
        if sh is None:
            if len(self._shapes) >= _SHAPES_KEEP:
                self._shapes.clear()     # only sharing is lost: equal shapes compare by identity
            sh = self._shapes[key] = Shape(*key)
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
            return STATE_RUNNING
        if job.state is JobState.SUSPENDED:
            return STATE_SUSPENDED
        if job.state is not JobState.QUEUED:
            return STATE_HELD if job.state in (JobState.HELD, JobState.WAITING, JobState.TRANSIT) else STATE_DONE
        if q is not None and q.kind is QueueKind.ROUTING:
            return STATE_ROUTING
        if job.domain is not None:
            return STATE_BOUND
        return STATE_PENDING

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
            found = self._biggest[key] = self._largest_domains(imgs, job.features)
        any_host, sizes = found
        if not self.hosts:
            return None
        if not any_host:
            return f"no host has features {', '.join(sorted(job.features))}"
        biggest_c = max((c for c, _ in sizes), default=0)
        biggest_m = max((m for _, m in sizes), default=0)
        if job.cores > biggest_c:
            return f"asks for {job.cores} cores, the largest domain it could use has {biggest_c}"
        if job.memory_mb > biggest_m:
            return f"asks for {job.memory_mb} MB, the largest domain it could use has {biggest_m} MB"
        if not any(c >= job.cores and m >= job.memory_mb for c, m in sizes):
            most = max(m for c, m in sizes if c >= job.cores)
            return (f"asks for {job.cores} cores and {job.memory_mb} MB, no domain it could use holds both "
                    f"(with {job.cores} cores or more, at most {most} MB)")
        return None

    def _largest_domains(self, images: tuple[str, ...], features: frozenset) -> tuple[bool, tuple[tuple[int, int], ...]]:
        """Whether any host has ``features``, and the (cores, memory) of the domains a job
        of ``images`` could ever get there, as the sizes no other size covers: when domains
        are booted on demand, what each flavor gives on an empty host (a whole-node flavor
        scales to the host, and its memory per core may leave some of a host's memory
        unused); else the domains of those images that the site defines."""
        hosts = [h for h in self.hosts.values() if features <= h.features]
        sizes: set[tuple[int, int]] = set()
        if not self.policy.lifecycle.dynamic_boot:
            sizes = {(d.cores, d.memory_mb) for d in self.domains.values()
                     if d.image in images and features <= self.hosts[d.host].features}
        else:
            for host in {(h.cores, h.memory_mb): h for h in hosts}.values():    # one host per size
                for f in self.policy.flavors.values():
                    c, m = f.size_on(host)
                    if c <= host.cores and m <= host.memory_mb and (f.whole_node is None or c >= f.min_cores):
                        sizes.add((c, m))
        front = tuple(sorted(x for x in sizes if not any(y != x and y[0] >= x[0] and y[1] >= x[1] for y in sizes)))
        return bool(hosts), front

    def with_vo(self, job: Job) -> Job:
        """The job with its VO as the share tree says: qstat shows only the egroup, and a
        group listed under a VO in the tree (``cms/zh``) belongs to that VO. Routing, fair
        share and images all read the VO, so every way in maps it the same."""
        if job.vo == job.group and job.group in self._group_vo:
            return attrs.evolve(job, vo=self._group_vo[job.group])
        return job

    def _swap(self, old: Job, job: Job) -> None:
        """Our copy of a job replaced by another with the same class fields, the cached class
        rank going with it: one the scheduler moved to running, or the caller's equal copy,
        kept so that the next snapshot, most likely handing the very same object again, costs
        an identity check (a site of 80,000 running jobs the scheduler started otherwise
        compares each field by field, every cycle, forever)."""
        self.jobs[job.id] = job
        r = self._ranks.get(job.id)
        if r is not None and r[0] is old:
            self._ranks[job.id] = (job, r[1], r[2])

    def set_job(self, job: Job, force: bool = False) -> None:
        """Add or update a job as the server sees it."""
        job = self.with_vo(job)
        old = self.jobs.get(job.id)
        if old == job and not force:
            self._swap(old, job)
            return
        if old is not None:
            self.remove_job(job.id)
        self.jobs[job.id] = job
        if job.flavor is not None:
            self.flavor_jobs.add(job.id)
        st = self._classify(job)
        self._set_status(job.id, st)
        if job.domain is not None and st in (STATE_RUNNING, STATE_SUSPENDED):
            if job.domain not in self.domains:
                raise ValueError(f"job {job.id}: domain {job.domain} is unknown")
            self._domain_add(job.domain, job.id)
        if st == STATE_PENDING:
            why = self._never_reason(job)
            if why is not None:
                self._never[job.id] = why
                return
        if st in (STATE_PENDING, STATE_RUNNING) or (st == STATE_SUSPENDED and job.domain is not None
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
            # (a job naming a flavor matches no kind: the flavor-jobs phase places it)
            self.engine.add_job(h, () if job.flavor else self._job_kinds(job), job.cores, job.memory_mb, cap,
                                rank, self._entity(job), job.submit_time)
        except EngineError as e:
            # One job's odd values must not stop the site's cycle: it waits, with the reason.
            self._never[job.id] = f"cannot be scheduled: {e}"
            return
        self._job_h[job.id], self._job_name[h] = h, job.id
        self._hshape[h] = self._shape_of(job, rank)
        if st != STATE_PENDING:
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
        self.flavor_jobs.discard(job_id)
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
            running = self.status[jid] != STATE_PENDING
            self.engine.remove_job(h)
            self._engine_add(job, STATE_RUNNING if running else STATE_PENDING, handle=h)

    # ------------------------------------------------------------------ what a cycle reads
    def _held_cores(self) -> Counter:
        """Cores each share VO's images hold in active or booting domains (cached until a
        domain changes; from the per-image totals kept as domains change, so never a walk
        of every domain). An image serving several share VOs counts for each in equal parts."""
        if self._held_at != self._rooms_version:
            held: Counter = Counter()
            share_vos = self._image_share_vos
            for image, cores in self._held_img.items():
                vos = share_vos.get(image)
                if vos and cores:
                    for vo in vos:
                        held[vo] += cores / len(vos)
            self._held, self._held_at = held, self._rooms_version
        return self._held

    def host_names(self) -> list[str]:
        """The hosts by name (cached until hosts come or go; callers must not modify it)."""
        if self._names_cache[0] != self._topology:
            self._names_cache = (self._topology, sorted(self.hosts))
        return self._names_cache[1]

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
        return len(self._by_state[DomainState.BOOTING])

    def _domain_add(self, domain: str, jid: str) -> None:
        # An idle domain turning busy only narrows what lifecycle can do: no new epoch.
        jobs = self.domain_jobs[domain]
        jobs.add(jid)
        if len(jobs) == 1:
            self._note_idle(domain, None)

    def _domain_discard(self, domain: str, jid: str) -> None:
        jobs = self.domain_jobs[domain]
        if jid in jobs:
            jobs.discard(jid)
            if not jobs:
                self._lifecycle_epoch += 1  # a busy domain became idle
                self._note_idle(domain, None)

    def _set_status(self, jid: str, st: str | None) -> None:
        """Every change of a job's status goes through here, so the per-entity sums of running
        work (for fair share) and per-VO cores (for the share between images) stay exact
        without a scan of all jobs each cycle."""
        old = self._contrib.pop(jid, None)
        if old is not None:
            path, w, ws, vo, cores, was, images = old
            if was == STATE_RUNNING:
                agg = self._run_agg[path]
                agg[0] -= w
                agg[1] -= ws
                agg[2] -= 1
                if agg[2] == 0:
                    del self._run_agg[path]
            self._vo_cores[(was, vo)] -= cores
            if was == STATE_PENDING:
                for img in images:
                    self._img_pending[img] -= 1
        was = self.status.get(jid)
        if was == STATE_SUSPENDED or st == STATE_SUSPENDED:
            self._frozen_version += 1
        if was in self._listed:
            self._listed[was].discard(jid)
        if jid in self._ranked_running:
            self._ranked_version += 1
        if st is None:
            self.status.pop(jid, None)
            self._vo_rank_pending.pop(jid, None)
            self._ranked_running.discard(jid)
            return
        self.status[jid] = st
        if st in self._listed:
            self._listed[st].add(jid)
        ranked = st in (STATE_PENDING, STATE_RUNNING) and self.rank_of(self.jobs[jid]) > 0
        if st == STATE_PENDING and ranked:
            self._vo_rank_pending[jid] = True
        else:
            self._vo_rank_pending.pop(jid, None)
        if st == STATE_RUNNING and ranked:
            self._ranked_running.add(jid)
            self._ranked_version += 1
        else:
            self._ranked_running.discard(jid)
        if st in (STATE_RUNNING, STATE_PENDING, STATE_SUSPENDED):
            j = self.jobs[jid]
            path = (j.vo, j.group, j.user)
            w = ws = 0.0
            if st == STATE_RUNNING and j.start_time is not None:
                w = self._rates.get((j.cores, j.memory_mb))
                if w is None:       # the same few sizes, thousands of starts a cycle
                    fs = self.policy.fairshare
                    w = self._rates[(j.cores, j.memory_mb)] = usage_amount(j.cores, j.memory_mb, 1.0, fs.usage,
                                                                           mb_per_core=fs.memory_mb_per_core)
                ws = w * j.start_time
                agg = self._run_agg.setdefault(path, [0.0, 0.0, 0])
                agg[0] += w
                agg[1] += ws
                agg[2] += 1
            self._vo_cores[(st, j.vo)] += j.cores
            images = self.images_for(j) if st == STATE_PENDING else ()
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

    # helpers the cycle uses to mirror its own plan into the state ------------------
    def _mark_domain(self, name: str, state: DomainState, now: float) -> None:
        d = self.domains[name]
        self.set_domain(_moved(d, state=state, since=now))

    def _mark_running(self, job_id: str, domain: str, now: float, via_engine: bool) -> None:
        old = self.jobs[job_id]
        job = _moved(old, state=JobState.RUNNING, domain=domain, start_time=now)
        self._swap(old, job)
        self._set_status(job_id, STATE_RUNNING)
        self._domain_add(domain, job_id)
        if not via_engine:
            h = self._job_h.get(job_id)
            if h is None:
                self._engine_add(job, STATE_RUNNING)
            else:
                self.engine.start_job(h, self._slot_h[domain], now)
