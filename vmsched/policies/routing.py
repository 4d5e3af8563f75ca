"""Routing: a routing queue forwards a job to the first destination that accepts it.

This is PBS's ``route_destinations`` with ``resources_min``/``resources_max`` and group ACLs,
plus the image a queue serves — CERN's routing queue in front of one-way and two-way
execution queues by VO and walltime. A job that no destination accepts stays where it is,
with every destination's refusal in its reason, so the admin sees which bound to widen.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from vmsched.model import Job, Queue, QueueKind

__all__ = ["Route", "route"]


@attrs.frozen(slots=True)
class Route:
    """Where a job goes: ``queue`` is the execution queue, or None with ``reason``."""

    queue: str | None
    reason: str = ""
    path: tuple[str, ...] = ()


def route(job: Job, queues: Mapping[str, Queue], start: str | None = None) -> Route:
    """Follow routing queues from ``start`` (default: the job's queue) to an execution queue."""
    name = start or job.queue
    q = queues.get(name)
    if q is None:
        return Route(None, f"queue {name} is not defined in the policy")
    if q.kind is QueueKind.EXECUTION:
        why = q.refuses(job)
        return Route(name, "", (name,)) if why is None else Route(None, f"queue {name}: {why}", (name,))
    return _route_from(job, q, queues, (name,))


def _route_from(job: Job, q: Queue, queues: Mapping[str, Queue], trail: tuple[str, ...]) -> Route:
    refusals = []
    why = q.refuses(job)
    if why is not None:
        return Route(None, f"routing queue {q.name}: {why}", trail)
    for dest in q.destinations:
        d = queues.get(dest)
        if d is None or dest in trail:
            refusals.append(f"{dest}: not a usable destination")
            continue
        if d.kind is QueueKind.ROUTING:
            r = _route_from(job, d, queues, trail + (dest,))
            if r.queue is not None:
                return r
            refusals.append(r.reason)
            continue
        why = d.refuses(job)
        if why is None:
            return Route(dest, "", trail + (dest,))
        refusals.append(f"{dest}: {why}")
    return Route(None, f"no destination of {q.name} accepts it (" + "; ".join(refusals) + ")", trail)
