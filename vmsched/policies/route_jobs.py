"""Routing phase: jobs waiting in a routing queue move to the execution queue that accepts them.

The rules are :func:`vmsched.policies.routing.route` (PBS's ``route_destinations`` with
resource limits and group lists), the same that ``Scheduler.on_submit`` applies at submission.
"""

from __future__ import annotations

import attrs

from vmsched.cluster import STATE_ROUTING
from vmsched.context import CycleContext
from vmsched.plan import Pending, RouteJob, Verdict
from vmsched.policies.routing import route


class RouteJobs:
    """Routed first, so that a routed job is matched in the same cycle."""

    name = "route"

    def run(self, ctx: CycleContext) -> None:
        route_waiting(ctx)


def route_waiting(ctx: CycleContext) -> None:
    s = ctx.s
    for jid in sorted(s._listed[STATE_ROUTING], key=lambda j: (s.jobs[j].submit_time, j)):
        job = s.jobs[jid]
        r = route(job, ctx.policy.queues)
        if r.queue is None:
            ctx.pending[jid] = Pending(Verdict.NEVER, r.reason)
            continue
        ctx.actions.append(RouteJob(jid, r.queue))
        s.set_job(attrs.evolve(job, queue=r.queue))
