"""Image-share phase: fair share across images, by holding back idle domains.

Each top-level VO with a share should hold about its water-filled target of the cluster's
cores in domains of its images (:mod:`vmsched.policies.partition`). While a VO holds more
than its target and another with waiting work holds less, the over-share VO's idle domains
are closed to its own jobs for this cycle, so that placement can switch those hosts to the
VO under its share. Running work is never touched here (that is share preemption's).
"""

from __future__ import annotations

from collections import Counter

from vmsched.cluster import STATE_PENDING, STATE_SUSPENDED
from vmsched.context import CycleContext
from vmsched.matching import SLOT_STARTING
from vmsched.model import DomainState
from vmsched.policies import partition


class ImageShare:
    """Works out each share VO's balance (held, target, waiting, frozen) for this and the
    later phases, then holds back the idle domains of VOs over their share."""

    name = "image-share hold-back"

    def run(self, ctx: CycleContext) -> None:
        p = ctx.policy
        ctx.balance = share_balance(ctx) if p.fairshare.image_shares or p.preemption.share_after_s is not None \
            else None
        ctx.held_back = image_share_holdback(ctx)


def share_balance(ctx: CycleContext):
    """(held, target, waiting, frozen) cores per top-level share VO, or None when fewer
    than two VOs have a share. Held: what the VO's images hold in active or booting
    domains; target: its water-filled share of the cores up, for what it asks (running,
    waiting and frozen work); waiting: its queued cores that some capacity could serve;
    frozen: its suspended jobs' cores."""
    s = ctx.s
    if not ctx.policy.fairshare.shares:
        return None
    vo_share = {p[0]: sh for p, sh in ctx.policy.fairshare.shares if len(p) == 1}
    if len(vo_share) < 2:
        return None
    held = s._held_cores()
    waiting: Counter = Counter()
    running: Counter = Counter()
    frozen: Counter = Counter()   # frozen work wants its cores back
    for (st, vo), cores in s._vo_cores.items():
        (waiting if st == STATE_PENDING else frozen if st == STATE_SUSPENDED else running)[vo] += cores
    for jid in s._never:      # waiting that no capacity would help is no demand
        if s.status.get(jid) == STATE_PENDING:
            waiting[s.jobs[jid].vo] -= s.jobs[jid].cores
    demand = {vo: waiting[vo] + running[vo] + frozen[vo] for vo in vo_share}
    return held, partition.targets(s._capacity(), vo_share, demand), waiting, frozen

def image_share_holdback(ctx: CycleContext) -> set[str]:
    """Idle domains of VOs over their share are kept from their own VO's jobs this cycle,
    so that lifecycle can hand their hosts to a VO under its share."""
    s = ctx.s
    if not ctx.policy.fairshare.image_shares:
        return set()
    balance = ctx.balance
    if balance is None:
        return set()
    held, target, waiting, _ = balance
    vo_share = {p[0] for p, _ in ctx.policy.fairshare.shares if len(p) == 1}
    over = partition.over_share(held, target, waiting)
    out = set()
    if not over:
        return out
    # images serving only over-share VOs, that some waiting job could use (holding back a
    # domain no waiting job could take would change nothing)
    images = {name for name, img in ctx.policy.images.items()
              if img.vos & vo_share and img.vos & vo_share <= over and s._img_pending[name]}
    if images:
        for image in images:
            for name in s._idle_img.get(image, ()):
                if s.domains[name].state is DomainState.FREE:
                    out.add(name)
        slot_h = s._slot_h
        s.engine.set_slot_states([slot_h[name] for name in out], SLOT_STARTING)
    ctx.over_share = {vo: f"VO {vo} over its share ({held[vo]:.0f} cores held, target {target.get(vo, 0):.0f})"
                       for vo in over}
    return out
