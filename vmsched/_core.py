"""The one Python face of the C matching core (``csrc/``, compiled by cffi).

:class:`CEngine` implements the interface of :class:`vmsched.matching.PyEngine` (the reference,
which is the specification) over the compiled module ``vmsched._vmsched_core``; C return codes
become :class:`~vmsched.matching.EngineError` with a message naming the call and its handles.
:func:`best_engine` returns a ``CEngine`` if the module loads, else a ``PyEngine`` with a
warning; :data:`ENGINE_NAME` says which one that is (``vmsched --version`` prints it).

``VMSCHED_CORE_LIB=/path/to/_vmsched_core.so`` loads the module from that file instead (CI
uses it to test the sanitizer build).
"""

from __future__ import annotations

import array
import importlib
import importlib.util
import os
import warnings
from collections.abc import Sequence

from vmsched.matching import SLOT_ACTIVE, SLOT_IDLE, EngineError, MatchResult, PyEngine, Victims

__all__ = ["CEngine", "CoreMemoryError", "best_engine", "load_error", "ENGINE_NAME", "AVAILABLE"]


def _load():
    path = os.environ.get("VMSCHED_CORE_LIB")
    if path:
        spec = importlib.util.spec_from_file_location("vmsched._vmsched_core", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"VMSCHED_CORE_LIB={path} is not a loadable module")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    return importlib.import_module("vmsched._vmsched_core")


try:
    _mod = _load()
    _ffi, _lib = _mod.ffi, _mod.lib
    _LOAD_ERROR: str | None = None
except ImportError as exc:  # not built: the Python reference takes over
    _mod = _ffi = _lib = None
    _LOAD_ERROR = f"{type(exc).__name__}: {exc}"

AVAILABLE = _lib is not None
ENGINE_NAME = "c" if AVAILABLE else "python"


def load_error() -> str | None:
    """Why the compiled core did not load (None if it did)."""
    return _LOAD_ERROR


_MESSAGES = {
    -1: "unknown handle",
    -2: "handle already exists",
    -3: "out of memory",
    -4: "argument out of range",
    -5: "job does not fit the slot",
    -6: "slot is full",
    -7: "slot still holds jobs, host still holds slots, or job already runs",
    -8: "job is not running",
    -9: "result array too small",
}


class CoreMemoryError(EngineError, MemoryError):
    """The C core could not allocate (its state is unchanged)."""


def _check(rc: int, what: str) -> None:
    if rc != 0:
        cls = CoreMemoryError if rc == -3 else EngineError
        raise cls(f"{what}: {_MESSAGES.get(rc, f'error {rc}')} (code {rc})")


def _call(fn, what, *args) -> None:
    """Call into the core; ``what`` names the call in an error, as a string or, on the hot
    paths, a function making the string (formatting it on every call cost more than the
    call itself)."""
    try:
        rc = fn(*args)
    except (OverflowError, TypeError) as exc:  # a value C cannot even hold
        raise EngineError(f"{what() if callable(what) else what}: {exc}") from None
    if rc != 0:
        _check(rc, what() if callable(what) else what)


def _ints(raw: bytes) -> list[int]:
    a = array.array("i")
    a.frombytes(raw)
    return a.tolist()


class _LazyMatchResult(MatchResult):
    """A MatchResult whose fields are decoded from the C arrays on first read.

    A cycle with 100k pending jobs would otherwise spend more time building 100k Python
    tuples than matching. It compares and hashes equal to the MatchResult with the same
    fields; ``materialize()`` gives that plain MatchResult."""

    __slots__ = ("_raw", "_memo")

    def __init__(self, placed_jobs, placed_slots, pending_jobs, reason_ids, reasons, order):
        object.__setattr__(self, "_raw", (placed_jobs, placed_slots, pending_jobs, reason_ids,
                                          reasons, order))
        object.__setattr__(self, "_memo", {})

    def _rows(self) -> list:
        flat = self._raw[4]
        return [tuple(flat[i:i + 5]) for i in range(0, len(flat), 5)]

    @property
    def placed(self):
        m = self._memo
        if "placed" not in m:
            m["placed"] = tuple(zip(_ints(self._raw[0]), _ints(self._raw[1])))
        return m["placed"]

    @property
    def pending(self):
        m = self._memo
        if "pending" not in m:
            rows = self._rows()
            m["pending"] = tuple(zip(_ints(self._raw[2]),
                                     map(rows.__getitem__, _ints(self._raw[3]))))
        return m["pending"]

    @property
    def order(self):
        m = self._memo
        if "order" not in m:
            m["order"] = tuple(_ints(self._raw[5]))
        return m["order"]

    def pending_head(self, n: int):
        if "pending" in self._memo or n < 0:
            return self.pending[:n]
        rows = self._rows()
        return tuple(zip(_ints(self._raw[2][:4 * n]),
                         map(rows.__getitem__, _ints(self._raw[3][:4 * n]))))

    def pending_jobs(self) -> list[int]:
        if "pending" in self._memo:
            return [h for h, _ in self._memo["pending"]]
        return _ints(self._raw[2])

    def materialize(self) -> MatchResult:
        return MatchResult(self.placed, self.pending, self.order)

    def __eq__(self, other):
        if not isinstance(other, MatchResult):
            return NotImplemented
        return (self.placed, self.pending, self.order) == (other.placed, other.pending, other.order)

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(self.materialize())

    def __repr__(self):
        return repr(self.materialize())

    def __reduce__(self):
        return (MatchResult, (self.placed, self.pending, self.order))


class CEngine:
    """The C core, with :class:`vmsched.matching.PyEngine`'s interface and results."""

    name = "c"

    def __init__(self) -> None:
        if _lib is None:
            raise ImportError(f"the C core is not built ({_LOAD_ERROR})")
        out = _ffi.new("core_t **")
        _check(_lib.core_new(out), "core_new")
        self._core = _ffi.gc(out[0], _lib.core_free)
        self._prio = _ffi.new("double *")
        self._slot = _ffi.new("int64_t *")
        self._counts = _ffi.new("int64_t[5]")
        self._stats = _ffi.new("core_stats_t *")
        self._params = _ffi.new("match_params_t *")
        self._res = _ffi.new("match_result_t *")
        self._pres = _ffi.new("preempt_result_t *")
        self._bufs: list = []      # keeps the match result arrays alive
        self._jobs_cap = -1
        self._reasons_cap = -1
        self._vbuf_cap = 0
        self._grow_victims(64)

    # ----------------------------------------------------------------- state changes
    def set_host(self, host: int, cores: int, memory: int, max_active: int) -> None:
        _call(_lib.core_set_host, f"set_host({host})", self._core, host, cores, memory, max_active)

    def add_host(self, host: int, cores: int, memory: int, max_active: int) -> None:
        """The older name of set_host (the same upsert, as in PyEngine)."""
        _call(_lib.core_set_host, f"add_host({host})", self._core, host, cores, memory, max_active)

    def remove_host(self, host: int) -> None:
        _call(_lib.core_remove_host, f"remove_host({host})", self._core, host)

    def add_slot(self, slot, host, kind, cores, memory, state) -> None:
        # state: SLOT_IDLE..SLOT_UNAVAILABLE (True/False are ints 1/0 to cffi); C checks it
        _call(_lib.core_add_slot, f"add_slot({slot}, host {host})", self._core, slot, host,
              kind, cores, memory, state)

    def set_slot_state(self, slot, state) -> None:
        _call(_lib.core_set_slot_state, lambda: f"set_slot_state({slot}, {state!r})", self._core, slot,
              state)

    def set_slot_states(self, slots, state) -> None:
        """Many slots to one state in one call into C (a cycle holds back and opens again
        dozens of domains at a time); all or none."""
        slots = list(slots)
        try:
            buf = _ffi.new("int64_t[]", slots) if slots else _ffi.NULL
        except (OverflowError, TypeError) as exc:
            raise EngineError(f"set_slot_states({len(slots)} slots): {exc}") from None
        _call(_lib.core_set_slot_states, lambda: f"set_slot_states({len(slots)} slots, {state!r})", self._core,
              buf, len(slots), state)

    def set_slot_active(self, slot, active) -> None:
        """The two-state form: True -> SLOT_ACTIVE, False -> SLOT_IDLE."""
        _call(_lib.core_set_slot_state, f"set_slot_active({slot})", self._core, slot,
              SLOT_ACTIVE if active else SLOT_IDLE)

    def remove_slot(self, slot) -> None:
        _call(_lib.core_remove_slot, f"remove_slot({slot})", self._core, slot)

    def add_job(self, job, kinds: Sequence[int], cores, memory, cap, rank, entity, submit) -> None:
        kinds = list(kinds)
        def what():
            return f"add_job({job})"
        try:
            buf = _ffi.new("int64_t[]", kinds) if kinds else _ffi.NULL
        except (OverflowError, TypeError) as exc:
            raise EngineError(f"{what()}: kinds: {exc}") from None
        _call(_lib.core_add_job, what, self._core, job, buf, len(kinds), cores, memory, cap,
              rank, entity, submit)

    def remove_job(self, job) -> None:
        _call(_lib.core_remove_job, lambda: f"remove_job({job})", self._core, job)

    def start_job(self, job, slot, now) -> None:
        _call(_lib.core_start_job, lambda: f"start_job({job}, slot {slot})", self._core, job, slot, now)

    def suspend_job(self, job) -> None:
        _call(_lib.core_suspend_job, f"suspend_job({job})", self._core, job)

    def resume_job(self, job) -> None:
        _call(_lib.core_resume_job, f"resume_job({job})", self._core, job)

    def requeue_job(self, job) -> None:
        _call(_lib.core_requeue_job, f"requeue_job({job})", self._core, job)

    def set_factors(self, factors: Sequence[float]) -> None:
        fs = list(factors)
        try:
            buf = _ffi.new("double[]", fs) if fs else _ffi.NULL
        except (OverflowError, TypeError) as exc:
            raise EngineError(f"set_factors: {exc}") from None
        _call(_lib.core_set_factors, "set_factors", self._core, buf, len(fs))

    def stats(self) -> dict[str, int]:
        """Counters: the keys of PyEngine.stats(), plus ``shapes`` and ``bytes``."""
        st = self._stats
        _check(_lib.core_stats(self._core, st), "stats")
        return {"hosts": st.hosts, "slots": st.slots, "jobs": st.jobs, "pending": st.pending,
                "running": st.running, "cycles": st.cycles, "shapes": st.shapes,
                "bytes": st.bytes}

    # ----------------------------------------------------------------- the cycle
    def priority(self, h: int, now: float, w_fs: float, w_class: float, w_age: float) -> float:
        _call(_lib.match_priority, lambda: f"priority({h})", self._core, h, now, w_fs, w_class, w_age,
              self._prio)
        return self._prio[0]

    def order(self, now, w_fs, w_class, w_age) -> list[int]:
        n = self._pending_count()
        buf = _ffi.new("int32_t[]", max(n, 1))
        got = _ffi.new("int64_t *")
        _call(_lib.match_order, "order", self._core, now, w_fs, w_class, w_age, buf, n, got)
        return _ffi.unpack(buf, got[0])

    def best_slot(self, job: int) -> int | None:
        _call(_lib.match_best_slot, lambda: f"best_slot({job})", self._core, job, self._slot)
        s = self._slot[0]
        return None if s < 0 else s

    def reasons(self, job: int) -> tuple[int, int, int, int, int]:
        _call(_lib.reasons_for_job, lambda: f"reasons({job})", self._core, job, self._counts)
        return tuple(_ffi.unpack(self._counts, 5))

    def _pending_count(self) -> int:
        _check(_lib.core_stats(self._core, self._stats), "stats")
        return self._stats.pending

    def _reserve(self) -> None:
        st = self._stats
        _check(_lib.core_stats(self._core, st), "stats")
        r = self._res
        if st.pending > self._jobs_cap:
            n = max(st.pending, 2 * self._jobs_cap, 1024)
            bufs = [_ffi.new("int32_t[]", n) for _ in range(5)]
            r.order, r.placed_jobs, r.placed_slots, r.pending_jobs, r.pending_reason_ids = bufs
            r.jobs_capacity = n
            self._bufs[0:5] = bufs
            self._jobs_cap = n
        if st.shapes > self._reasons_cap:
            n = max(st.shapes, 2 * self._reasons_cap, 256)
            buf = _ffi.new("int64_t[]", 5 * n)
            r.reasons = buf
            r.reasons_capacity = n
            self._bufs[5:6] = [buf]
            self._reasons_cap = n

    def match(self, now, w_fs, w_class, w_age, limit=-1, *, dry_run=False) -> MatchResult:
        self._reserve()
        p, r = self._params, self._res
        try:
            p.now, p.w_fs, p.w_class, p.w_age = now, w_fs, w_class, w_age
        except (OverflowError, TypeError) as exc:
            raise EngineError(f"match: {exc}") from None
        limit = int(limit)
        p.limit = -1 if limit < 0 else min(limit, 1 << 62)
        p.dry_run = 1 if dry_run else 0
        _check(_lib.match_run(self._core, p, r), "match")
        buf = _ffi.buffer
        n_placed, n_pending = r.n_placed, r.n_pending
        # copies of the raw arrays (memcpy); decoded into tuples only when read
        return _LazyMatchResult(
            buf(r.placed_jobs, 4 * n_placed)[:], buf(r.placed_slots, 4 * n_placed)[:],
            buf(r.pending_jobs, 4 * n_pending)[:], buf(r.pending_reason_ids, 4 * n_pending)[:],
            _ffi.unpack(r.reasons, 5 * r.n_reasons), buf(r.order, 4 * r.n_order)[:])

    # ----------------------------------------------------------------- preemption
    def _grow_victims(self, n: int) -> None:
        self._vjobs = _ffi.new("int32_t[]", n)
        self._vslots = _ffi.new("int32_t[]", n)
        pr = self._pres
        pr.jobs, pr.suspend_slots = self._vjobs, self._vslots
        pr.jobs_capacity = pr.slots_capacity = n
        self._vbuf_cap = n

    def find_victims(self, job, mode, now) -> Victims | None:
        pr = self._pres
        what = f"find_victims({job}, mode {mode})"
        try:
            rc = _lib.preempt_find(self._core, job, mode, now, pr)
            if rc == -9:  # more victims than room: grow and ask again
                self._grow_victims(max(pr.n_jobs, pr.n_slots, 2 * self._vbuf_cap))
                rc = _lib.preempt_find(self._core, job, mode, now, pr)
        except (OverflowError, TypeError) as exc:
            raise EngineError(f"{what}: {exc}") from None
        _check(rc, what)
        if not pr.found:
            return None
        return Victims(pr.slot, tuple(_ffi.unpack(pr.jobs, pr.n_jobs)),
                       tuple(_ffi.unpack(pr.suspend_slots, pr.n_slots)), tuple(pr.cost))


def best_engine():
    """The C engine if the compiled core loads, else the Python reference (with a warning)."""
    if AVAILABLE:
        return CEngine()
    warnings.warn(f"vmsched: the C matching core is not available ({_LOAD_ERROR}); "
                  "using the Python reference engine, which is much slower", RuntimeWarning,
                  stacklevel=2)
    return PyEngine()
