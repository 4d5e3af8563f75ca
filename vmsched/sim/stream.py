"""A trace's jobs for a replay, read lazily, in arrival order.

A replay needs its jobs one at a time, in arrival order, and forgets each once it has
ended; holding every mapped job of a 100,000-job log cost 90 MB before the first cycle.
So :func:`index_trace` reads and maps the trace once and keeps in memory only what a
simulation must know before it starts: how many jobs, the first and last arrival, which
VOs take part, the mapping's counted assumptions, and, only for a trace not already in
arrival order, the order to replay it in. The mapped jobs themselves go to a *spool*: an
anonymous temporary file (deleted by the system when closed, or when the process ends),
in compressed batches of plain values, about 17 bytes a job. :meth:`JobStream.arrivals`
reads the spool back a batch at a time as the simulation asks for the next arrival, and
any number of simulations (``vmsched compare`` runs two) read the same spool.

Where no temporary file can be written, the spool is left out and each simulation maps
the trace again as it goes: the same jobs (mapping is deterministic), at the cost of
reading twice (on METACENTRUM-2009-2 the spool is read back in 0.45 s, mapping the trace
again takes 1.6 s). A trace that changed in between is then a TraceError.

Arrival order is ``(arrival, trace id, job id)``. SWF logs are written in submit order, so
jobs are usually handed on as they are read; where a trace is out of order, jobs read
early wait in a buffer until their turn, so memory grows with how far out of order the
trace is, not with its length.
"""

from __future__ import annotations

import itertools
import marshal
import struct
import tempfile
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO

import attrs

from vmsched.model import Job, JobState
from vmsched.policyfile import Policy
from vmsched.sim.mapping import Assumption, Mapper, SimJob, Unrunnable
from vmsched.sim.swf import TraceError, iter_trace

__all__ = ["JobStream", "JobList", "index_trace", "as_stream", "READ_AHEAD"]

READ_AHEAD = 512
"""Jobs read (from the spool or the trace) at a time: batches keep the reading code and
data hot between the simulation's cycles (job by job, the same reading took twice as
long), at the cost of holding a few hundred jobs before they arrive."""

_JOB_FIELDS = tuple(a.name for a in Job.__attrs_attrs__)
_ID, _SUBMIT, _STATE = (_JOB_FIELDS.index(n) for n in ("id", "submit_time", "state"))
_UNRUNNABLE_FIELDS = len(attrs.fields(Unrunnable))
_LEN = struct.Struct("<I")


def _key(sj: SimJob) -> tuple[float, int, str]:
    return sj.arrival, sj.trace_id, sj.job.id


# --------------------------------------------------------------------------- the spool

def _row(job: Job, job_id: str, submit_time: float, sj: SimJob) -> tuple:
    """A mapped job as plain values (``marshal`` takes nothing else): every Job field in
    order (its state by value), then the SimJob's own."""
    values = [getattr(job, name) for name in _JOB_FIELDS]
    values[_ID], values[_SUBMIT], values[_STATE] = job_id, submit_time, job.state.value
    return (*values, sj.trace_id, sj.arrival, sj.run, sj.work, sj.killed, sj.klass, sj.interactive)


def _from_row(row) -> SimJob | Unrunnable:
    if len(row) == _UNRUNNABLE_FIELDS:
        return Unrunnable(*row)
    job = object.__new__(Job)      # the values were validated when the job was first built
    for name, value in zip(_JOB_FIELDS, row):
        object.__setattr__(job, name, value)
    object.__setattr__(job, "state", JobState(row[_STATE]))
    n = len(_JOB_FIELDS)
    return SimJob(job, *row[n:])


class _Spool:
    """Mapped jobs in a temporary file, in compressed batches, read back in file order."""

    def __init__(self, file: IO[bytes]):
        self.file = file
        self.offsets = array("q")
        self._batch: list[tuple] = []

    @classmethod
    def open(cls) -> _Spool | None:
        try:
            return cls(tempfile.TemporaryFile(prefix="vmsched-replay-"))
        except OSError:
            return None

    def add(self, row: tuple) -> None:
        self._batch.append(row)
        if len(self._batch) >= READ_AHEAD:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            data = zlib.compress(marshal.dumps(self._batch), 1)
            self.offsets.append(self.file.seek(0, 2))
            self.file.write(_LEN.pack(len(data)) + data)
            self._batch = []

    def close_writing(self) -> None:
        self._flush()
        self.file.flush()

    def __iter__(self) -> Iterator[SimJob | Unrunnable]:
        f = self.file
        for off in self.offsets:
            f.seek(off)             # (a seek before each read: several readers may take turns)
            size = _LEN.unpack(f.read(_LEN.size))[0]
            rows = marshal.loads(zlib.decompress(f.read(size)))
            yield from [_from_row(r) for r in rows]


# --------------------------------------------------------------------------- the stream

@attrs.frozen(slots=True)
class JobStream:
    """What :func:`index_trace` learnt of a trace, and its jobs again on demand.

    ``total``: jobs to replay (mapped to a :class:`SimJob`); ``unrunnable``: jobs the
    mapping refused; ``first``/``last``: the earliest and latest arrival; ``vos``: the VOs
    of the jobs to replay; ``order``: None when the trace is in arrival order, else the
    file positions (among replayed jobs) in arrival order; ``spool``: the mapped jobs, or
    None to map the trace again."""

    policy: Policy
    path: str
    skip_bad: bool
    limit: int | None
    total: int
    unrunnable: int
    first: float
    last: float
    vos: tuple[str, ...]
    order: array | None
    assumptions: tuple[Assumption, ...]
    trace_info: dict
    spool: _Spool | None = attrs.field(default=None, repr=False)

    def mapped(self) -> Iterator[SimJob | Unrunnable]:
        """Every job of the trace, mapped, in file order (fresh objects each time)."""
        if self.spool is not None:
            return iter(self.spool)
        return _ahead(_mapped(self.policy, self.path, self.skip_bad, self.limit)[0])

    def arrivals(self, on_unrunnable: Callable[[Unrunnable], None],
                 job_map: Callable | None = None) -> Iterator[SimJob]:
        """The jobs to replay in arrival order; each job the mapping refused goes to
        ``on_unrunnable`` as the read passes it. ``job_map`` changes each job first."""
        return _arrivals(self, on_unrunnable, job_map)


def _arrivals(stream: JobStream, on_unrunnable, job_map) -> Iterator[SimJob]:
    order = stream.order
    pending: dict[int, SimJob] = {}   # read before their turn (only for a trace out of order)
    want = 0
    pos = 0
    for r in stream.mapped():
        if r.__class__ is not SimJob:
            on_unrunnable(r)
            continue
        if pos >= stream.total:
            raise TraceError(stream.path, None, f"the trace changed during the replay: more than the "
                             f"{stream.total} jobs counted before it started")
        if job_map is not None:
            r.job = job_map(r.job)
        if order is None:
            pos += 1
            yield r
            continue
        pending[pos] = r
        pos += 1
        while want < stream.total and order[want] in pending:
            yield pending.pop(order[want])
            want += 1
    if pos != stream.total or pending:
        raise TraceError(stream.path, None, f"the trace changed during the replay: {pos} jobs read, "
                         f"{stream.total} counted before it started")


def _ahead(items: Iterator) -> Iterator:
    while True:
        batch = list(itertools.islice(items, READ_AHEAD))
        if not batch:
            return
        yield from batch


def _mapped(policy: Policy, path, skip_bad: bool, limit: int | None, build: bool = True):
    """(generator of mapped jobs in file order, the reader, a holder for the Mapper);
    ``build=False``: see :meth:`Mapper.map`."""
    reader = iter_trace(path, skip_bad=skip_bad)
    holder: list[Mapper] = []

    def gen():
        with reader:
            for n, tj in enumerate(reader):
                if limit is not None and n >= limit:
                    break
                if not holder:
                    holder.append(Mapper(policy, policy.hosts, policy.domains_per_host, bool(reader.extended)))
                yield holder[0].map(tj, build)
    return gen(), reader, holder


def index_trace(policy: Policy, path, *, skip_bad: bool = False, limit: int | None = None,
                spool: bool = True) -> JobStream:
    """Read and map the whole trace once, keeping only the few numbers a replay needs
    before it starts, and the mapped jobs in a spool (see the module text; ``spool=False``
    or no temporary file: none, each replay maps the trace again). Raises TraceError on
    bad input."""
    gen, reader, holder = _mapped(policy, path, skip_bad, limit, build=False)
    out = _Spool.open() if spool else None
    total = unrunnable = 0
    first = last = None
    vos: set[str] = set()
    # arrival order is checked as the jobs pass; the keys are kept compactly in case it is not
    arrivals, ids = array("d"), array("q")
    renamed: dict[int, str] = {}      # position -> job id, for the rare ids the Mapper suffixed
    in_order, prev = True, None
    for r in gen:
        if r.__class__ is not SimJob:
            unrunnable += 1
            if out is not None:
                out.add(attrs.astuple(r, recurse=False))
            continue
        a, tid, jid = r.arrival, r.trace_id, holder[0].last_id
        if out is not None:
            out.add(_row(r.job, jid, a, r))     # (r.job is its shape's first job: see Mapper.map)
        if first is None:
            first = last = a
        elif a < first:
            first = a
        elif a > last:
            last = a
        vos.add(r.job.vo)
        if in_order and prev is not None and (a, tid, jid) < prev:
            in_order = False
        prev = (a, tid, jid)
        arrivals.append(a)
        ids.append(tid)
        if "." in jid:
            renamed[total] = jid
        total += 1
    if out is not None:
        out.close_writing()
    order = None
    if not in_order:
        order = array("q", sorted(range(total), key=lambda i: (arrivals[i], ids[i],
                                                              renamed.get(i) or f"j{ids[i]}")))
    info = {"name": reader.name, "path": str(path), "jobs": total + unrunnable, "skipped": reader.skipped,
            "problems": list(reader.problems), "extended": bool(reader.extended),
            "header": {k: v for k, v in reader.header.items() if k != "Note"}}
    return JobStream(policy, str(path), skip_bad, limit, total, unrunnable, first or 0.0, last or 0.0,
                     tuple(sorted(vos)), order, tuple(holder[0].assumptions() if holder else ()), info, out)


@attrs.frozen(slots=True)
class JobList:
    """Jobs already in memory (tests, callers that build their own), as a stream."""

    jobs: tuple[SimJob, ...] = attrs.field(converter=lambda js: tuple(sorted(js, key=_key)))
    never: tuple[Unrunnable, ...] = attrs.field(default=(), converter=tuple)

    @property
    def total(self) -> int:
        return len(self.jobs)

    @property
    def first(self) -> float:
        return self.jobs[0].arrival if self.jobs else 0.0

    @property
    def last(self) -> float:
        return self.jobs[-1].arrival if self.jobs else 0.0

    @property
    def vos(self) -> tuple[str, ...]:
        return tuple(sorted({sj.job.vo for sj in self.jobs}))

    def arrivals(self, on_unrunnable: Callable[[Unrunnable], None], job_map: Callable | None = None
                 ) -> Iterator[SimJob]:
        for u in self.never:
            on_unrunnable(u)
        for sj in self.jobs:
            if job_map is not None:
                sj.job = job_map(sj.job)
            yield sj


def as_stream(jobs: Sequence[SimJob] | Iterable[SimJob] | JobStream | JobList, unrunnable=()):
    """A stream for what :class:`~vmsched.sim.engine.Simulation` was given."""
    if isinstance(jobs, (JobStream, JobList)):
        return jobs
    return JobList(jobs, unrunnable)
