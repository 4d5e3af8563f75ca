"""A trace's jobs for a replay, read lazily, in arrival order.

A replay needs its jobs one at a time, in arrival order, and forgets each once it has
ended; holding every mapped job of a 100,000-job log cost 90 MB before the first cycle.
So the trace is read twice: :func:`index_trace` maps every job once and keeps only what a
simulation must know before it starts (how many jobs, the first and last arrival, which
VOs take part, the mapping's counted assumptions, and, only for a trace not already in
arrival order, the order to replay it in), and :meth:`JobStream.arrivals` maps the trace
again, job by job, as the simulation asks for the next arrival. Mapping is deterministic,
so both passes see the same jobs; a trace that changed between them is a TraceError.

Arrival order is ``(arrival, trace id, job id)``. SWF logs are written in submit order, so
the second pass usually hands jobs on as it reads them; where a trace is out of order, jobs
read early wait in a buffer until their turn, so memory grows with how far out of order
the trace is, not with its length.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence

import attrs

from vmsched.policyfile import Policy
from vmsched.sim.mapping import Assumption, Mapper, SimJob, Unrunnable
from vmsched.sim.swf import TraceError, iter_trace

__all__ = ["JobStream", "JobList", "index_trace"]


def _key(sj: SimJob) -> tuple[float, int, str]:
    return sj.arrival, sj.trace_id, sj.job.id


@attrs.frozen(slots=True)
class JobStream:
    """What :func:`index_trace` learnt of a trace, and its jobs again on demand.

    ``total``: jobs to replay (mapped to a :class:`SimJob`); ``unrunnable``: jobs the
    mapping refused; ``first``/``last``: the earliest and latest arrival; ``vos``: the VOs
    of the jobs to replay; ``order``: None when the trace is in arrival order, else the
    file positions (among replayed jobs) in arrival order."""

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

    def mapped(self) -> Iterator[SimJob | Unrunnable]:
        """Every job of the trace, mapped, in file order (a fresh read and Mapper)."""
        return _mapped(self.policy, self.path, self.skip_bad, self.limit)[0]

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
    for r in _ahead(stream.mapped()):
        if not isinstance(r, SimJob):
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


READ_AHEAD = 512
"""Jobs read and mapped at a time: reading in batches keeps the reader's and the mapper's
code and data hot between the simulation's cycles (job by job, the same reading took
twice as long), at the cost of holding a few hundred jobs before they arrive."""


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


def index_trace(policy: Policy, path, *, skip_bad: bool = False, limit: int | None = None) -> JobStream:
    """Read and map the whole trace once, keeping only the few numbers a replay needs
    before it starts (see the module text). Raises TraceError on bad input."""
    gen, reader, holder = _mapped(policy, path, skip_bad, limit, build=False)
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
            continue
        a, tid, jid = r.arrival, r.trace_id, holder[0].last_id
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
    order = None
    if not in_order:
        order = array("q", sorted(range(total), key=lambda i: (arrivals[i], ids[i],
                                                              renamed.get(i) or f"j{ids[i]}")))
    info = {"name": reader.name, "path": str(path), "jobs": total + unrunnable, "skipped": reader.skipped,
            "problems": list(reader.problems), "extended": bool(reader.extended),
            "header": {k: v for k, v in reader.header.items() if k != "Note"}}
    return JobStream(policy, str(path), skip_bad, limit, total, unrunnable, first or 0.0, last or 0.0,
                     tuple(sorted(vos)), order, tuple(holder[0].assumptions() if holder else ()), info)


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


__all__ += ["as_stream"]
