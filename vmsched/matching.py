"""The matcher: which pending job goes into which domain, and whom a preemptor may displace.

This is the pure-Python reference of the algorithm that ``csrc/`` implements in C. Both keep
the cluster's state *between* cycles (an in-memory core): callers feed changes (a job queued,
started, ended; a domain's state changed; a slot added or removed) and a cycle never rebuilds
the tables. Everything is addressed by small integer handles that the caller assigns; names
live one floor up, in :mod:`vmsched.cycle`.

The algorithm (the header ``csrc/vmsched_core.h`` documents the same, and property tests keep
both equal):

* A slot (domain) has a *kind* (the caller's id for "image + host features"), a size in cores
  and MB, a state (active or not) and the jobs it runs. A slot that is active and not full is
  kept in a bucket keyed by (kind, jobs it runs, free cores); inside a bucket slots are sorted
  by (free memory, slot). A slot is *full* when it runs as many jobs as the smallest
  per-domain cap among them (a one-way job fills its domain).
* Jobs are taken in priority order: ``prio = w_fs*factor[entity] + w_class*rank + w_age*age_h``,
  ties by submit time then handle. A job may use slots of its allowed kinds that run fewer
  jobs than the job's queue allows. Among those it takes the *best fit*: least free cores,
  then least free memory, then lowest slot handle. Free cores are scanned upwards from the
  job's need, so the first bucket with a fitting slot wins: O(kinds x caps x log(slots)).
* A job shape (allowed kinds, cores, memory, cap) that found nothing this cycle finds nothing
  again (capacity only shrinks within a cycle), so identical pending jobs cost O(1).
* Pending jobs get reason counts from the final state: of all slots, how many are of a wrong
  kind, not active, full, short of cores, short of memory (each slot counted once, under the
  first of these that applies).
* Preemption: a job of class rank r may displace only jobs of rank < r. In ``jobs`` mode it
  picks, inside one slot of an allowed kind, the running jobs of lower rank with the least
  work lost (requeue: cores x elapsed seconds; suspend: cores) until it fits. In ``domain``
  mode (Magrathea) it activates an inactive slot of an allowed kind on a host whose active
  slots run only lower-rank jobs, suspending as few of them as needed. Candidates are
  compared by (highest victim rank, work lost, number of victims, slot) and the least wins.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Sequence

import attrs

__all__ = ["Reason", "Engine", "PyEngine", "MatchResult", "Victims", "EngineError",
           "MODE_SUSPEND_JOBS", "MODE_REQUEUE", "MODE_SUSPEND_DOMAIN", "UNLIMITED_CAP"]

UNLIMITED_CAP = 1 << 30
MODE_SUSPEND_JOBS, MODE_REQUEUE, MODE_SUSPEND_DOMAIN = 0, 1, 2


class EngineError(ValueError):
    """A caller handed the engine something inconsistent (unknown handle, double start)."""


class Reason(enum.IntEnum):
    """Why slots did not take a job; the order is the order slots are tested in."""

    WRONG_KIND = 0
    NOT_ACTIVE = 1
    FULL = 2
    CORES = 3
    MEMORY = 4


@attrs.frozen(slots=True)
class MatchResult:
    """One cycle's matching: placements in order, then each unplaced job's reason counts."""

    placed: tuple[tuple[int, int], ...]
    pending: tuple[tuple[int, tuple[int, int, int, int, int]], ...]
    order: tuple[int, ...]


@attrs.frozen(slots=True)
class Victims:
    slot: int
    jobs: tuple[int, ...]
    suspend_slots: tuple[int, ...]
    cost: tuple[int, int, int, int]


@attrs.define(slots=True)
class _Slot:
    host: int
    kind: int
    cores: int
    memory: int
    active: bool
    jobs: list = attrs.Factory(list)
    used_cores: int = 0
    used_memory: int = 0

    def cap(self, engine: "PyEngine") -> int:
        return min((engine._jobs[j].cap for j in self.jobs), default=UNLIMITED_CAP)


@attrs.define(slots=True)
class _Job:
    kinds: tuple[int, ...]
    cores: int
    memory: int
    cap: int
    rank: int
    entity: int
    submit: float
    slot: int = -1
    start: float = 0.0
    suspended: bool = False


class Engine:
    """The interface both engines implement (documented here once)."""

    name = "abstract"

    def add_slot(self, slot: int, host: int, kind: int, cores: int, memory: int, active: bool) -> None: ...
    def set_slot_active(self, slot: int, active: bool) -> None: ...
    def remove_slot(self, slot: int) -> None: ...
    def add_job(self, job: int, kinds: Sequence[int], cores: int, memory: int, cap: int,
                rank: int, entity: int, submit: float) -> None: ...
    def remove_job(self, job: int) -> None: ...
    def start_job(self, job: int, slot: int, now: float) -> None: ...
    def suspend_job(self, job: int) -> None: ...
    def set_factors(self, factors: Sequence[float]) -> None: ...
    def match(self, now: float, w_fs: float, w_class: float, w_age: float, limit: int = -1) -> MatchResult: ...
    def find_victims(self, job: int, mode: int, now: float) -> Victims | None: ...


class PyEngine(Engine):
    """Reference engine: the specification in executable form, simple rather than fast."""

    name = "python"

    def __init__(self) -> None:
        self._slots: dict[int, _Slot] = {}
        self._jobs: dict[int, _Job] = {}
        self._hosts: dict[int, tuple[int, int, int]] = {}
        self._host_slots: dict[int, list[int]] = {}
        self._pending: set[int] = set()
        # (kind, jobs in slot) -> {free cores: sorted [(free memory, slot)]}, and the sorted
        # list of free-core values present, so a search starts at the job's need.
        self._buckets: dict[tuple[int, int], dict[int, list[tuple[int, int]]]] = {}
        self._levels: dict[tuple[int, int], list[int]] = {}
        self._kind_total: dict[int, int] = {}
        self._factors: list[float] = []

    # ----------------------------------------------------------------- slot bookkeeping
    def _cap(self, s: _Slot) -> int:
        return min((self._jobs[h].cap for h in s.jobs), default=UNLIMITED_CAP)

    def _indexed(self, s: _Slot) -> bool:
        return s.active and len(s.jobs) < self._cap(s)

    def _unindex(self, handle: int) -> None:
        s = self._slots[handle]
        if not self._indexed(s):
            return
        key, fc = (s.kind, len(s.jobs)), s.cores - s.used_cores
        bucket = self._buckets[key][fc]
        bucket.pop(bisect.bisect_left(bucket, (s.memory - s.used_memory, handle)))
        if not bucket:
            del self._buckets[key][fc]
            levels = self._levels[key]
            levels.pop(bisect.bisect_left(levels, fc))

    def _index(self, handle: int) -> None:
        s = self._slots[handle]
        if not self._indexed(s):
            return
        key, fc = (s.kind, len(s.jobs)), s.cores - s.used_cores
        by_fc = self._buckets.setdefault(key, {})
        if fc not in by_fc:
            by_fc[fc] = []
            bisect.insort(self._levels.setdefault(key, []), fc)
        bisect.insort(by_fc[fc], (s.memory - s.used_memory, handle))

    def add_host(self, host: int, cores: int, memory: int, max_active: int) -> None:
        if host < 0 or cores < 0 or memory < 0 or max_active < 1:
            raise EngineError(f"host {host}: bad size or max_active")
        self._hosts[host] = (cores, memory, max_active)
        self._host_slots.setdefault(host, [])

    def add_slot(self, slot, host, kind, cores, memory, active):
        if slot in self._slots or slot < 0:
            raise EngineError(f"slot {slot} already exists or is negative")
        if host not in self._hosts:
            raise EngineError(f"slot {slot}: unknown host {host}")
        if cores < 0 or memory < 0 or kind < 0:
            raise EngineError(f"slot {slot}: negative size or kind")
        self._slots[slot] = _Slot(host, kind, cores, memory, bool(active))
        self._kind_total[kind] = self._kind_total.get(kind, 0) + 1
        bisect.insort(self._host_slots[host], slot)
        self._index(slot)

    def set_slot_active(self, slot, active):
        s = self._slot(slot)
        if s.active == bool(active):
            return
        self._unindex(slot)
        s.active = bool(active)
        self._index(slot)

    def remove_slot(self, slot):
        s = self._slot(slot)
        if s.jobs:
            raise EngineError(f"slot {slot} still holds jobs {s.jobs}")
        self._unindex(slot)
        self._kind_total[s.kind] -= 1
        self._host_slots[s.host].remove(slot)
        del self._slots[slot]

    def _slot(self, slot) -> _Slot:
        try:
            return self._slots[slot]
        except KeyError:
            raise EngineError(f"unknown slot {slot}") from None

    def _job(self, job) -> _Job:
        try:
            return self._jobs[job]
        except KeyError:
            raise EngineError(f"unknown job {job}") from None

    # ----------------------------------------------------------------- job bookkeeping
    def add_job(self, job, kinds, cores, memory, cap, rank, entity, submit):
        if job in self._jobs or job < 0:
            raise EngineError(f"job {job} already exists or is negative")
        if cores < 0 or memory < 0 or cap < 1 or entity < 0 or rank < 0:
            raise EngineError(f"job {job}: bad size, cap, rank or entity")
        self._jobs[job] = _Job(tuple(sorted(set(kinds))), cores, memory, cap, rank, entity, float(submit))
        self._pending.add(job)

    def remove_job(self, job):
        j = self._job(job)
        if j.slot >= 0:
            self._detach(job, j)
        self._pending.discard(job)
        del self._jobs[job]

    def _detach(self, job: int, j: _Job) -> None:
        s = self._slots[j.slot]
        self._unindex(j.slot)
        s.jobs.remove(job)
        s.used_cores -= j.cores
        s.used_memory -= j.memory
        self._index(j.slot)
        j.slot, j.suspended = -1, False

    def start_job(self, job, slot, now):
        j, s = self._job(job), self._slot(slot)
        if j.slot >= 0:
            raise EngineError(f"job {job} already holds slot {j.slot}")
        if s.used_cores + j.cores > s.cores or s.used_memory + j.memory > s.memory:
            raise EngineError(f"job {job} does not fit slot {slot}")
        if len(s.jobs) >= min(self._cap(s), j.cap):
            raise EngineError(f"slot {slot} is full")
        self._unindex(slot)
        s.jobs.append(job)
        s.jobs.sort()
        s.used_cores += j.cores
        s.used_memory += j.memory
        self._index(slot)
        j.slot, j.start, j.suspended = slot, float(now), False
        self._pending.discard(job)

    def suspend_job(self, job):
        """A suspended job keeps its place in its slot (its memory stays taken) but is no
        preemption victim again: it resumes in place."""
        j = self._job(job)
        if j.slot < 0:
            raise EngineError(f"job {job} is not running")
        j.suspended = True

    def resume_job(self, job):
        j = self._job(job)
        if j.slot < 0:
            raise EngineError(f"job {job} is not running")
        j.suspended = False

    def requeue_job(self, job):
        j = self._job(job)
        if j.slot >= 0:
            self._detach(job, j)
        self._pending.add(job)

    def set_factors(self, factors):
        self._factors = [float(f) for f in factors]

    # ----------------------------------------------------------------- the cycle
    def priority(self, h: int, now: float, w_fs: float, w_class: float, w_age: float) -> float:
        j = self._jobs[h]
        f = self._factors[j.entity] if j.entity < len(self._factors) else 0.0
        age_h = (now - j.submit) / 3600.0
        if age_h < 0.0:
            age_h = 0.0
        return w_fs * f + w_class * j.rank + w_age * age_h

    def order(self, now, w_fs, w_class, w_age) -> list[int]:
        keyed = sorted((-self.priority(h, now, w_fs, w_class, w_age), self._jobs[h].submit, h)
                       for h in self._pending)
        return [k[2] for k in keyed]

    def best_slot(self, job: int) -> int | None:
        j = self._job(job)
        best = None
        for kind in j.kinds:
            for n in range(j.cap):
                levels = self._levels.get((kind, n))
                if not levels:
                    continue
                by_fc = self._buckets[(kind, n)]
                for fc in levels[bisect.bisect_left(levels, j.cores):]:
                    if best is not None and fc > best[0]:
                        break
                    bucket = by_fc[fc]
                    i = bisect.bisect_left(bucket, (j.memory, -1))
                    if i < len(bucket):
                        cand = (fc, bucket[i][0], bucket[i][1])
                        if best is None or cand < best:
                            best = cand
                        break
        return None if best is None else best[2]

    def match(self, now, w_fs, w_class, w_age, limit=-1):
        order = self.order(now, w_fs, w_class, w_age)
        placed, unplaced, failed = [], [], set()
        for h in order:
            j = self._jobs[h]
            shape = (j.kinds, j.cores, j.memory, j.cap)
            if shape in failed or 0 <= limit <= len(placed):
                unplaced.append(h)
                continue
            slot = self.best_slot(h)
            if slot is None:
                failed.add(shape)
                unplaced.append(h)
                continue
            self.start_job(h, slot, now)
            placed.append((h, slot))
        cache: dict = {}
        pending = []
        for h in unplaced:
            j = self._jobs[h]
            shape = (j.kinds, j.cores, j.memory, j.cap)
            if shape not in cache:
                cache[shape] = self.reasons(h)
            pending.append((h, cache[shape]))
        return MatchResult(tuple(placed), tuple(pending), tuple(order))

    def reasons(self, job: int) -> tuple[int, int, int, int, int]:
        j = self._job(job)
        counts = [0, 0, 0, 0, 0]
        kinds = set(j.kinds)
        for s in self._slots.values():
            if s.kind not in kinds:
                counts[Reason.WRONG_KIND] += 1
            elif not s.active:
                counts[Reason.NOT_ACTIVE] += 1
            elif len(s.jobs) >= min(self._cap(s), j.cap):
                counts[Reason.FULL] += 1
            elif s.cores - s.used_cores < j.cores:
                counts[Reason.CORES] += 1
            elif s.memory - s.used_memory < j.memory:
                counts[Reason.MEMORY] += 1
        return tuple(counts)

    # ----------------------------------------------------------------- preemption
    def _loss(self, h: int, mode: int, now: float) -> int:
        v = self._jobs[h]
        if mode != MODE_REQUEUE:
            return v.cores
        e = now - v.start
        return v.cores * (int(e) if e > 0 else 0)

    def find_victims(self, job, mode, now):
        j = self._job(job)
        if mode not in (MODE_SUSPEND_JOBS, MODE_REQUEUE, MODE_SUSPEND_DOMAIN):
            raise EngineError(f"unknown preemption mode {mode}")
        search = self._domain_candidate if mode == MODE_SUSPEND_DOMAIN else self._job_candidate
        best = None
        kinds = set(j.kinds)
        for handle in sorted(self._slots):
            s = self._slots[handle]
            if s.kind not in kinds or s.cores < j.cores or s.memory < j.memory:
                continue
            cand = search(j, handle, s, mode, now)
            if cand is not None and (best is None or cand.cost < best.cost):
                best = cand
        return best

    def _job_candidate(self, j: _Job, handle: int, s: _Slot, mode: int, now: float):
        """Inside one active slot: displace lower-rank jobs, least loss first, until it fits."""
        if not s.active:
            return None
        lower = sorted((h for h in s.jobs if self._jobs[h].rank < j.rank and not self._jobs[h].suspended),
                       key=lambda h: (self._loss(h, mode, now), h))
        fc, fm = s.cores - s.used_cores, s.memory - s.used_memory
        left = list(s.jobs)
        taken: list[int] = []
        for h in lower:
            v = self._jobs[h]
            taken.append(h)
            left.remove(h)
            fc += v.cores
            fm += v.memory
            cap = min([self._jobs[x].cap for x in left] + [j.cap])
            if fc >= j.cores and fm >= j.memory and len(left) < cap:
                cost = (max(self._jobs[x].rank for x in taken),
                        sum(self._loss(x, mode, now) for x in taken), len(taken), handle)
                return Victims(handle, tuple(sorted(taken)), (), cost)
        return None

    def _domain_candidate(self, j: _Job, handle: int, s: _Slot, mode: int, now: float):
        """Magrathea: activate an idle inactive slot by suspending active slots on its host
        whose jobs all rank lower, least loss first, until the host has room for it."""
        if s.active or s.jobs:
            return None
        host_cores, host_memory, max_active = self._hosts[s.host]
        active = [o for o in self._host_slots[s.host] if o != handle and self._slots[o].active]
        used_c = sum(self._slots[o].cores for o in active)
        used_m = sum(self._slots[o].memory for o in active)
        n_active = len(active)

        def slot_loss(o):
            return sum(self._loss(h, MODE_SUSPEND_JOBS, now) for h in self._slots[o].jobs)

        movable = sorted((o for o in active
                          if all(self._jobs[h].rank < j.rank for h in self._slots[o].jobs)),
                         key=lambda o: (slot_loss(o), o))
        taken: list[int] = []
        for o in [None] + movable:
            if o is not None:
                taken.append(o)
                n_active -= 1
                used_c -= self._slots[o].cores
                used_m -= self._slots[o].memory
            if n_active < max_active and used_c + s.cores <= host_cores and used_m + s.memory <= host_memory:
                if not taken:
                    return None  # room without preemption: activation, not preemption
                jobs = tuple(sorted(h for o2 in taken for h in self._slots[o2].jobs))
                rank = max((self._jobs[h].rank for h in jobs), default=-1)
                cost = (rank, sum(slot_loss(o2) for o2 in taken), len(jobs), handle)
                return Victims(handle, jobs, tuple(sorted(taken)), cost)
        return None
