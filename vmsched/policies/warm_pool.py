"""Warm-pool phase: keep a few idle domains of an image booted, so its jobs start at once.
"""

from __future__ import annotations

from vmsched.context import CycleContext
from vmsched.model import DomainState, Job
from vmsched.policies import lifecycle


class WarmPool:
    name = "warm pool"

    def run(self, ctx: CycleContext) -> None:
        warm_pool(ctx)


def warm_pool(ctx: CycleContext) -> None:
    s, lc = ctx.s, ctx.policy.lifecycle
    for image, want in lc.warm_pool:
        have = sum(1 for d in s.domains.values() if d.image == image and
                   d.state in (DomainState.FREE, DomainState.BOOTING) and not s.domain_jobs.get(d.name))
        vo = sorted(ctx.policy.images[image].vos)[0] if ctx.policy.images[image].vos else "warm"
        probe = Job("warm-pool", "vmsched", vo, vo, next(iter(sorted(ctx.policy.queues))), 1, 0, 1, ctx.now,
                    image=image)
        while have < want and ctx.boots_left > 0:
            p = lifecycle.plan_placement(probe, (image,), ctx.rooms, s.domains, ctx.busy, ctx.policy.flavors,
                                         lc, ctx.boots_left, ctx.now,
                                         reclaimable=lambda d: False)
            if p is None or p.new is None:
                break
            ctx.actions.extend(p.actions)
            ctx.boots_left -= 1
            s.set_domain(p.new)
            ctx.claimed.add(p.domain)
            have += 1
