"""Routing: the first destination that accepts the job wins; otherwise it stays, with reasons."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vmsched.model import Job, Limits, Queue, QueueKind
from vmsched.policies.routing import route

GROUPS = ["atlas", "cms", "lhcb"]


@st.composite
def queue_sets(draw):
    n = draw(st.integers(1, 5))
    queues = {}
    for i in range(n):
        lo = draw(st.one_of(st.none(), st.integers(1, 20)))
        hi = draw(st.one_of(st.none(), st.integers(1, 40)))
        queues[f"e{i}"] = Queue(f"e{i}", QueueKind.EXECUTION, draw(st.integers(1, 2)),
                                Limits(walltime_s=lo and lo * 3600, cores=draw(st.one_of(st.none(), st.integers(1, 4)))),
                                Limits(walltime_s=hi and hi * 3600, memory_mb=draw(st.one_of(st.none(), st.integers(500, 4000)))),
                                frozenset(draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True))))
    names = list(queues)
    queues["inner"] = Queue("inner", QueueKind.ROUTING, destinations=tuple(draw(st.permutations(names))[:2]))
    queues["grid"] = Queue("grid", QueueKind.ROUTING,
                           destinations=tuple(draw(st.permutations(names + ["inner"]))))
    return queues


def first_accepting(job, queues, name):
    for d in queues[name].destinations:
        q = queues[d]
        if q.kind is QueueKind.ROUTING:
            r = first_accepting(job, queues, d)
            if r:
                return r
            continue
        ok = (not q.groups or job.group in q.groups)
        for lim, lower in ((q.resources_min, True), (q.resources_max, False)):
            for val, bound in ((job.walltime_s, lim.walltime_s), (job.cores, lim.cores), (job.memory_mb, lim.memory_mb)):
                if bound is not None and ((val < bound) if lower else (val > bound)):
                    ok = False
        if ok:
            return d
    return None


@settings(max_examples=300, deadline=None)
@given(queue_sets(), st.sampled_from(GROUPS), st.integers(1, 8), st.integers(0, 8000), st.integers(1, 50))
def test_first_accepting_destination_wins(queues, group, cores, mem, hours):
    job = Job("1", "u", group, group, "grid", cores, mem, hours * 3600, 0.0)
    r = route(job, queues)
    assert r.queue == first_accepting(job, queues, "grid")
    if r.queue is None:
        assert r.reason.startswith("no destination of grid accepts it (") and "\n" not in r.reason


def test_refusals_are_named():
    queues = {"short": Queue("short", resources_max=Limits(walltime_s=3600)),
              "cms": Queue("cms", groups=frozenset({"cms"})),
              "grid": Queue("grid", QueueKind.ROUTING, destinations=("short", "cms"))}
    r = route(Job("1", "u", "atlas", "atlas", "grid", 1, 100, 7200, 0.0), queues)
    assert r.queue is None
    assert r.reason == ("no destination of grid accepts it (short: walltime 7200s above resources_max 3600s; "
                        "cms: group atlas not in acl)")
