"""The matcher: which pending job goes into which domain, and whom a preemptor may displace.

This is the pure-Python reference of the algorithm that ``csrc/`` implements in C. Both keep
the cluster's state *between* cycles (an in-memory core): callers feed changes (a job queued,
started, ended; a domain's state changed; a slot added or removed) and a cycle never rebuilds
the tables. Everything is addressed by small integer handles that the caller assigns; names
live one floor up, in :mod:`vmsched.cycle`.

The algorithm (the header ``csrc/vmsched_core.h`` documents the same, and property tests keep
both equal):

* A host has a size in cores and MB and at most ``max_active`` slots taking room at once.
  ``set_host`` adds a host or changes its size and max_active (only later searches see
  it); ``remove_host`` drops a host that holds no slots. ``add_host`` is ``set_host``.
* A slot (domain) has a *kind* (the caller's id for "image + host features"), a size in cores
  and MB, a *state* and the jobs it runs. The states (same numbers as CORE_SLOT_* in C):

  - ``SLOT_IDLE`` (0), inactive but activatable (Magrathea "occupied" or "suspended"):
    takes no host room, takes no jobs, may be the domain that domain-mode preemption
    activates (if it holds no jobs);
  - ``SLOT_ACTIVE`` (1), free or running: takes host room, takes jobs, may be suspended
    as a domain-mode victim;
  - ``SLOT_STARTING`` (2), booting or resuming: takes host room, takes no jobs, is never
    activated nor suspended by preemption;
  - ``SLOT_UNAVAILABLE`` (3), down or shutting down: takes no host room, takes no jobs,
    is never chosen.

  ``True``/``False`` stand for ACTIVE/IDLE (``set_slot_active`` maps them so); any other
  value is an error. A slot that is ACTIVE and not full is kept in a bucket keyed by
  (kind, jobs it runs, free cores); inside a bucket slots are sorted by (free memory,
  slot). A slot is *full* when it runs as many jobs as the smallest per-domain cap among
  them (a one-way job fills its domain).
* Jobs are taken in priority order: ``prio = w_fs*factor[entity] + w_class*rank + w_age*age_h``,
  ties by submit time then handle. A job may use slots of its allowed kinds that run fewer
  jobs than the job's queue allows. Among those it takes the *best fit*: least free cores,
  then least free memory, then lowest slot handle. Free cores are scanned upwards from the
  job's need, so the first bucket with a fitting slot wins: O(kinds x caps x log(slots)).
* A job shape (allowed kinds, cores, memory, cap) that found nothing this cycle finds nothing
  again (capacity only shrinks within a cycle), so identical pending jobs cost O(1).
* Pending jobs get reason counts from the final state: of all slots, how many are of a wrong
  kind, not active (any state but ACTIVE), full, short of cores, short of memory (each slot
  counted once, under the first of these that applies).
* Preemption: a job of class rank r may displace only jobs of rank < r. In ``jobs`` mode it
  picks, inside one ACTIVE slot of an allowed kind, the running jobs of lower rank with the
  least work lost (requeue: cores x elapsed seconds; suspend: cores) until it fits. In
  ``domain`` mode (Magrathea) it activates an IDLE slot of an allowed kind that holds no
  jobs: the host's room is taken by its ACTIVE and STARTING slots (count against
  max_active, cores, memory); ACTIVE slots whose jobs all rank lower are suspended, least
  loss first, until the host has room (a slot with room without preemption is no
  candidate). Candidates are compared by (highest victim rank, work lost, number of
  victims, slot) and the least wins.

Limits (both engines check them, so they agree on what is an error): handles, kinds and
entities in [0, HANDLE_LIMIT) (tables are indexed by handle: keep handles dense, recycle
them); cores in [0, CORES_LIMIT]; memory (MB) in [0, MEMORY_LIMIT]; caps in
[1, UNLIMITED_CAP]; ranks and max_active below RANK_LIMIT; slot states in [0, 3]; times
finite with |t| <= 2**40; weights and factors finite with |x| <= 1e150 (so no priority
overflows to inf or nan).
"""

from __future__ import annotations

import bisect
import enum
import math
import operator
from collections.abc import Sequence

import attrs

__all__ = ["Reason", "Engine", "PyEngine", "MatchResult", "Victims", "EngineError",
           "MODE_SUSPEND_JOBS", "MODE_REQUEUE", "MODE_SUSPEND_DOMAIN", "UNLIMITED_CAP",
           "HANDLE_LIMIT", "CORES_LIMIT", "MEMORY_LIMIT", "RANK_LIMIT",
           "SLOT_IDLE", "SLOT_ACTIVE", "SLOT_STARTING", "SLOT_UNAVAILABLE", "SLOT_STATES"]

UNLIMITED_CAP = 1 << 30
HANDLE_LIMIT = 1 << 26
CORES_LIMIT = 1 << 20
MEMORY_LIMIT = 1 << 40
RANK_LIMIT = (1 << 31) - 1
_TIME_LIMIT = 2.0 ** 40
_FLOAT_LIMIT = 1e150
MODE_SUSPEND_JOBS, MODE_REQUEUE, MODE_SUSPEND_DOMAIN = 0, 1, 2
# slot states (the C header's CORE_SLOT_*, same numbers)
SLOT_IDLE, SLOT_ACTIVE, SLOT_STARTING, SLOT_UNAVAILABLE = 0, 1, 2, 3
SLOT_STATES = (SLOT_IDLE, SLOT_ACTIVE, SLOT_STARTING, SLOT_UNAVAILABLE)
# states whose slots take room on their host (count toward max_active, cores, memory)
_HOST_ROOM = (SLOT_ACTIVE, SLOT_STARTING)


class EngineError(ValueError):
    """A caller handed the engine something inconsistent (unknown handle, double start)."""


def _int_in(v, lo: int, hi: int) -> bool:
    try:
        return lo <= operator.index(v) <= hi
    except TypeError:
        return False


def _state(v, what: str) -> int:
    """A slot state: one of SLOT_STATES (True/False are 1/0, i.e. ACTIVE/IDLE)."""
    if not _int_in(v, SLOT_IDLE, SLOT_UNAVAILABLE):
        raise EngineError(f"{what}: bad slot state {v!r} (0..3)")
    return operator.index(v)


def _time(t, what: str) -> float:
    t = float(t)
    if not (math.isfinite(t) and abs(t) <= _TIME_LIMIT):
        raise EngineError(f"{what} {t} is not a finite time within 2**40 s")
    return t


def _weight(w, what: str) -> float:
    w = float(w)
    if not (math.isfinite(w) and abs(w) <= _FLOAT_LIMIT):
        raise EngineError(f"{what} {w} is not finite within 1e150")
    return w


class Reason(enum.IntEnum):
    """Why slots did not take a job; the order is the order slots are tested in."""

    WRONG_KIND = 0
    NOT_ACTIVE = 1   # any state but SLOT_ACTIVE
    FULL = 2
    CORES = 3
    MEMORY = 4


@attrs.frozen(slots=True)
class MatchResult:
    """One cycle's matching: placements in order, then each unplaced job's reason counts."""

    placed: tuple[tuple[int, int], ...]
    pending: tuple[tuple[int, tuple[int, int, int, int, int]], ...]
    order: tuple[int, ...]

    def pending_head(self, n: int) -> tuple[tuple[int, tuple[int, int, int, int, int]], ...]:
        """The first n pending entries: the C engine's result decodes only these."""
        return self.pending[:n]

    def pending_jobs(self) -> list[int]:
        """The unplaced jobs in queue order, without their reason counts (which a cycle that
        explains from its end state never reads)."""
        return [h for h, _ in self.pending]


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
    state: int
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

    def set_host(self, host: int, cores: int, memory: int, max_active: int) -> None: ...
    def add_host(self, host: int, cores: int, memory: int, max_active: int) -> None: ...
    def remove_host(self, host: int) -> None: ...
    def add_slot(self, slot: int, host: int, kind: int, cores: int, memory: int, state: int) -> None: ...
    def set_slot_state(self, slot: int, state: int) -> None: ...
    def set_slot_states(self, slots: Sequence[int], state: int) -> None: ...
    def set_slot_active(self, slot: int, active: bool) -> None: ...
    def remove_slot(self, slot: int) -> None: ...
    def add_job(self, job: int, kinds: Sequence[int], cores: int, memory: int, cap: int,
                rank: int, entity: int, submit: float) -> None: ...
    def remove_job(self, job: int) -> None: ...
    def start_job(self, job: int, slot: int, now: float) -> None: ...
    def suspend_job(self, job: int) -> None: ...
    def set_factors(self, factors: Sequence[float]) -> None: ...
    def match(self, now: float, w_fs: float, w_class: float, w_age: float, limit: int = -1,
              *, dry_run: bool = False) -> MatchResult: ...
    def find_victims(self, job: int, mode: int, now: float) -> Victims | None: ...
    def stats(self) -> dict[str, int]: ...


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
        # 1 + the most jobs a slot has run: best_slot need not look at more job counts
        self._nmax = 1
        self._cycles = 0

    # ----------------------------------------------------------------- slot bookkeeping
    def _cap(self, s: _Slot) -> int:
        return min((self._jobs[h].cap for h in s.jobs), default=UNLIMITED_CAP)

    def _indexed(self, s: _Slot) -> bool:
        return s.state == SLOT_ACTIVE and len(s.jobs) < self._cap(s)

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

    def set_host(self, host: int, cores: int, memory: int, max_active: int) -> None:
        """Add the host, or give an existing one a new size and max_active (its slots stay;
        only later searches see the change)."""
        if not (_int_in(host, 0, HANDLE_LIMIT - 1) and _int_in(cores, 0, CORES_LIMIT)
                and _int_in(memory, 0, MEMORY_LIMIT) and _int_in(max_active, 1, RANK_LIMIT - 1)):
            raise EngineError(f"host {host}: bad handle, size or max_active")
        self._hosts[host] = (cores, memory, max_active)
        self._host_slots.setdefault(host, [])

    add_host = set_host  # the older name: the same upsert in both engines

    def remove_host(self, host: int) -> None:
        if host not in self._hosts:
            raise EngineError(f"unknown host {host}")
        if self._host_slots[host]:
            raise EngineError(f"host {host} still holds slots {self._host_slots[host]}")
        del self._hosts[host]
        del self._host_slots[host]

    def add_slot(self, slot, host, kind, cores, memory, state):
        if slot in self._slots or not _int_in(slot, 0, HANDLE_LIMIT - 1):
            raise EngineError(f"slot {slot} already exists or is out of range")
        if host not in self._hosts:
            raise EngineError(f"slot {slot}: unknown host {host}")
        if not (_int_in(cores, 0, CORES_LIMIT) and _int_in(memory, 0, MEMORY_LIMIT)
                and _int_in(kind, 0, HANDLE_LIMIT - 1)):
            raise EngineError(f"slot {slot}: size or kind out of range")
        state = _state(state, f"slot {slot}")
        self._slots[slot] = _Slot(host, kind, cores, memory, state)
        self._kind_total[kind] = self._kind_total.get(kind, 0) + 1
        bisect.insort(self._host_slots[host], slot)
        self._index(slot)

    def set_slot_state(self, slot, state):
        s = self._slot(slot)
        state = _state(state, f"slot {slot}")
        if s.state == state:
            return
        self._unindex(slot)
        s.state = state
        self._index(slot)

    def set_slot_states(self, slots, state):
        """Many slots to one state; all or none (an unknown slot changes nothing)."""
        slots = list(slots)
        state = _state(state, f"slots {slots[:3]}")
        for slot in slots:
            self._slot(slot)
        for slot in slots:
            self.set_slot_state(slot, state)

    def set_slot_active(self, slot, active):
        """The two-state form: True -> SLOT_ACTIVE, False -> SLOT_IDLE."""
        self.set_slot_state(slot, SLOT_ACTIVE if active else SLOT_IDLE)

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
        if job in self._jobs or not _int_in(job, 0, HANDLE_LIMIT - 1):
            raise EngineError(f"job {job} already exists or is out of range")
        kinds = tuple(kinds)
        if not (_int_in(cores, 0, CORES_LIMIT) and _int_in(memory, 0, MEMORY_LIMIT)
                and _int_in(cap, 1, UNLIMITED_CAP) and _int_in(entity, 0, HANDLE_LIMIT - 1)
                and _int_in(rank, 0, RANK_LIMIT - 1)
                and all(_int_in(k, 0, HANDLE_LIMIT - 1) for k in kinds)):
            raise EngineError(f"job {job}: bad size, cap, rank, entity or kind")
        submit = _time(submit, f"job {job}: submit time")
        kinds = tuple(sorted(set(kinds)))
        self._jobs[job] = _Job(kinds, cores, memory, cap, rank, entity, submit)
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
        now = _time(now, "start time")
        if j.slot >= 0:
            raise EngineError(f"job {job} already holds slot {j.slot}")
        if s.used_cores + j.cores > s.cores or s.used_memory + j.memory > s.memory:
            raise EngineError(f"job {job} does not fit slot {slot}")
        if len(s.jobs) >= min(self._cap(s), j.cap):
            raise EngineError(f"slot {slot} is full")
        self._unindex(slot)
        s.jobs.append(job)
        s.jobs.sort()
        self._nmax = max(self._nmax, len(s.jobs) + 1)
        s.used_cores += j.cores
        s.used_memory += j.memory
        self._index(slot)
        j.slot, j.start, j.suspended = slot, now, False
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
        self._factors = [_weight(f, "fair-share factor") for f in factors]

    def stats(self) -> dict[str, int]:
        """Counters, the same keys in both engines."""
        return {"hosts": len(self._hosts), "slots": len(self._slots), "jobs": len(self._jobs),
                "pending": len(self._pending), "running": len(self._jobs) - len(self._pending),
                "cycles": self._cycles}

    # ----------------------------------------------------------------- the cycle
    @staticmethod
    def _policy(now, w_fs, w_class, w_age) -> tuple[float, float, float, float]:
        # floats up front: an int weight times an int rank would otherwise be exact
        return (_time(now, "now"), _weight(w_fs, "w_fs"), _weight(w_class, "w_class"),
                _weight(w_age, "w_age"))

    def priority(self, h: int, now: float, w_fs: float, w_class: float, w_age: float) -> float:
        self._job(h)
        return self._priority(h, *self._policy(now, w_fs, w_class, w_age))

    def _priority(self, h: int, now: float, w_fs: float, w_class: float, w_age: float) -> float:
        j = self._jobs[h]
        f = self._factors[j.entity] if j.entity < len(self._factors) else 0.0
        age_h = (now - j.submit) / 3600.0
        if age_h < 0.0:
            age_h = 0.0
        return w_fs * f + w_class * j.rank + w_age * age_h

    def order(self, now, w_fs, w_class, w_age) -> list[int]:
        now, w_fs, w_class, w_age = self._policy(now, w_fs, w_class, w_age)
        keyed = sorted((-self._priority(h, now, w_fs, w_class, w_age), self._jobs[h].submit, h)
                       for h in self._pending)
        return [k[2] for k in keyed]

    def best_slot(self, job: int) -> int | None:
        j = self._job(job)
        best = None
        for kind in j.kinds:
            for n in range(min(j.cap, self._nmax)):
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

    def match(self, now, w_fs, w_class, w_age, limit=-1, *, dry_run=False):
        """One cycle. With ``dry_run`` the result is the same but the placements are undone
        before returning, so the state is as it was (explain, benchmarks)."""
        now, w_fs, w_class, w_age = self._policy(now, w_fs, w_class, w_age)
        order = self.order(now, w_fs, w_class, w_age)
        self._cycles += 1
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
        if dry_run:
            for h, _slot in reversed(placed):
                self.requeue_job(h)
        return MatchResult(tuple(placed), tuple(pending), tuple(order))

    def reasons(self, job: int) -> tuple[int, int, int, int, int]:
        j = self._job(job)
        counts = [0, 0, 0, 0, 0]
        kinds = set(j.kinds)
        for s in self._slots.values():
            if s.kind not in kinds:
                counts[Reason.WRONG_KIND] += 1
            elif s.state != SLOT_ACTIVE:
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
        now = _time(now, "now")
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
        """Inside one ACTIVE slot: displace lower-rank jobs, least loss first, until it fits."""
        if s.state != SLOT_ACTIVE:
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
        """Magrathea: activate an IDLE slot that holds no jobs by suspending ACTIVE slots on
        its host whose jobs all rank lower, least loss first, until the host has room for it.
        ACTIVE and STARTING slots take the host's room; only ACTIVE ones can be suspended."""
        if s.state != SLOT_IDLE or s.jobs:
            return None
        host_cores, host_memory, max_active = self._hosts[s.host]
        busy = [o for o in self._host_slots[s.host]
                if o != handle and self._slots[o].state in _HOST_ROOM]
        used_c = sum(self._slots[o].cores for o in busy)
        used_m = sum(self._slots[o].memory for o in busy)
        n_active = len(busy)

        def slot_loss(o):
            return sum(self._loss(h, MODE_SUSPEND_JOBS, now) for h in self._slots[o].jobs)

        movable = sorted((o for o in busy if self._slots[o].state == SLOT_ACTIVE
                          and all(self._jobs[h].rank < j.rank for h in self._slots[o].jobs)),
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
