"""Idle-shutdown phase: domains idle past ``idle_shutdown`` are shut down, keeping warm pools.
"""

from __future__ import annotations

from vmsched.context import CycleContext
from vmsched.model import DomainState
from vmsched.policies import lifecycle


class IdleShutdown:
    name = "idle shutdown"

    def run(self, ctx: CycleContext) -> None:
        s, now = ctx.s, ctx.now
        if ctx.policy.lifecycle.dynamic_boot:
            # Domains a site defines statically (Magrathea) are never shut down: nothing
            # would boot them again.
            ctx.actions.extend(lifecycle.plan_idle(ctx.rooms, s.domains, ctx.busy, ctx.policy.lifecycle, now,
                                                   ctx.claimed))
        for a in ctx.actions:
            if a.verb == "shutdown" and a.domain in s.domains:
                s._mark_domain(a.domain, DomainState.SHUTTING_DOWN, now)


