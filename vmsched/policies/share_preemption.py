"""Share-preemption phase: whole hosts move from VOs over their share to a VO starved of it.

The idle-domain holdback (:mod:`vmsched.policies.image_share`) only moves hosts that empty;
when an over-share VO keeps every host busy with long jobs, the VO under its share would wait
for days. Here a host whose active domain runs only default-class work of over-share VOs has
that domain frozen and the waiting VO's domain there resumed, when a job of that VO still
waiting in this cycle after ``share_after`` fits it, or when the VO's own work has been frozen
there that long. Hosts with the VO's frozen work go first, so its work comes back before
anybody else's is frozen. A host moves only while it brings both VOs nearer their targets and
the waiting VO has waiting jobs that fit it, so the shares settle instead of swinging. The
trigger is the jobs' own wait and the domains' own state, so a restarted scheduler decides the
same; the only memory is the pace (once per cycle interval) and the last fruitless search, and
a restart merely looks again.
"""

from __future__ import annotations

from collections import Counter

from vmsched.cluster import STATE_RUNNING, Shape
from vmsched.context import CycleContext
from vmsched.matching import MODE_SUSPEND_DOMAIN
from vmsched.model import DomainState


class SharePreemption:
    name = "share preemption"

    def run(self, ctx: CycleContext) -> None:
        share_preempt(ctx, ctx.unplaced)


def share_preempt(ctx: CycleContext, unplaced: list[int]) -> None:
    """Move hosts to under-share VOs whose jobs (or frozen work) waited ``share_after``."""
    s, now = ctx.s, ctx.now
    after = ctx.policy.preemption.share_after_s
    if after is None or s.mode != MODE_SUSPEND_DOMAIN or ctx.balance is None or now < s._share_next:
        return
    # A slow correction: looked at once per cycle interval, not at every event a burst
    # of submissions triggers a cycle for (again at once after a move, to go on).
    s._share_looked, s._share_next = now, now + ctx.policy.cycle_interval_s
    held, target, waiting, frozen_cores = ctx.balance
    under = {vo for vo in target if (waiting[vo] > 0 or frozen_cores[vo] > 0)
             and held.get(vo, 0.0) < target[vo] - 1e-9}
    over = {vo for vo, c in held.items() if c > target.get(vo, 0.0) + 1e-9}
    if not under or not over:
        return
    held = Counter(held)
    shapes, supply = _waiting_shapes(ctx, unplaced, under, after)
    share_vos = s._image_share_vos
    # Work of an under-share VO frozen for share_after calls for its host back as well.
    overdue: set[str] = set()
    for n in s._by_state[DomainState.SUSPENDED]:
        vos = share_vos.get(s.domains[n].image)
        if vos and set(vos) & under and s.domain_jobs.get(n) and now - s.domains[n].since >= after:
            overdue.add(n)
    if not shapes and not overdue:
        return
    due = {sh.vo for sh in shapes} | {vo for n in overdue for vo in share_vos[s.domains[n].image] if vo in under}
    # A search that moved nothing moves nothing again until a domain, the waiting shapes
    # or a VO's distance from its target changes.
    memo = (s._rooms_version, s._topology, frozenset(shapes), frozenset(overdue), frozenset(due), frozenset(over),
            tuple(sorted((vo, round(target[vo] - held[vo])) for vo in due | over)))
    if s._share_idle_search == memo:
        return
    candidates = _candidates(ctx, shapes, overdue, due, over)
    moved = _move(ctx, candidates, held, target, due, supply)
    s._share_idle_search = None if moved else memo
    if moved:
        s._share_next = now


def _waiting_shapes(ctx: CycleContext, unplaced: list[int], under: set[str],
                    after: float) -> tuple[set[Shape], Counter]:
    """The under-share VOs' jobs this cycle left waiting: the shapes of those that waited
    ``after`` (they call for a move), and the cores all of them ask per VO (what fills a
    moved host). Only the smallest hosts move (see ``_candidates``), so only jobs that fit
    one count."""
    s, now = ctx.s, ctx.now
    smallest = s._smallest_host()
    shapes: set[Shape] = set()
    supply: Counter = Counter()
    names, jobs, hshape = s._job_name, s.jobs, s._hshape
    for h in unplaced:
        sh = hshape.get(h)
        if sh is None or sh.cores > smallest or sh.vo not in under:
            continue
        jid = names.get(h)
        if jid is None:
            continue
        supply[sh.vo] += sh.cores
        if sh not in shapes and now - jobs[jid].submit_time >= after:
            shapes.add(sh)
    return shapes, supply


def _candidates(ctx: CycleContext, shapes: set[Shape], overdue: set[str], due: set[str],
                over: set[str]) -> list[tuple]:
    """Possible moves, best first once sorted: (the waiting VO's own frozen work first, host
    size, cores frozen, host, the domain to freeze, the domain to resume)."""
    s = ctx.s
    share_vos = s._image_share_vos
    smallest = s._smallest_host()
    default = ctx.default_rank
    usable: dict[tuple, bool] = {}      # (image, features, cores, memory) of an empty domain -> a shape fits
    candidates = []
    images = sorted(img for img, vos in share_vos.items() if vos and set(vos) & due and not set(vos) & over)
    for bname in sorted(n for img in images for n in s._inactive_img.get(img, ())):
        b = s.domains[bname]
        host = s.hosts[b.host]
        # Only the smallest hosts move to a VO: the bigger ones are what wide jobs wait
        # for, by share or by class preemption, and work frozen there would leave them
        # nowhere. (A VO's own frozen work may still come back to any host.)
        if not host.up or bname in ctx.claimed:
            continue
        frozen = [s.jobs[j] for j in s.domain_jobs.get(bname, ())]
        if not frozen and host.cores > smallest:
            continue          # only work of its own comes back to a bigger host
        if b.state is DomainState.SUSPENDED and frozen:
            fits = bname in overdue or any(ctx.could_run_in(sh, b, host, frozen) for sh in shapes)
        elif b.state is DomainState.OCCUPIED and not frozen:
            key = (b.image, host.features, b.cores, b.memory_mb)
            fits = usable.get(key)
            if fits is None:
                fits = usable[key] = any(ctx.could_run_in(sh, b, host, []) for sh in shapes)
        else:
            continue
        if not fits:
            continue
        for aname in s.host_domains[b.host]:
            a = s.domains[aname]
            a_vos = share_vos.get(a.image)
            if a.state is not DomainState.RUNNING or not a_vos or not set(a_vos) <= over \
                    or aname in ctx.claimed or aname in ctx.reserved \
                    or not ctx.rooms[b.host].fits(b.cores, b.memory_mb, [a]):
                continue
            inside = s.domain_jobs.get(aname, ())
            if any(s.status.get(j) != STATE_RUNNING or ctx.rank(s.jobs[j]) > default for j in inside):
                continue          # only default-class work is frozen for share
            if frozen and not ctx.frozen_for_share(b.host):
                break
            # the waiting VO's own work back first, then the least work frozen
            candidates.append((0 if frozen else 1, b.cores, sum(s.jobs[j].cores for j in inside), b.host,
                               aname, bname))
            break
    return candidates


def _move(ctx: CycleContext, candidates: list[tuple], held: Counter, target: dict[str, float], due: set[str],
          supply: Counter) -> bool:
    """Make the moves that bring both VOs nearer their targets; whether any was made."""
    s = ctx.s
    share_vos = s._image_share_vos
    moved = False
    for *_, hname, aname, bname in sorted(candidates):
        a, b = s.domains[aname], s.domains[bname]
        if aname in ctx.claimed or bname in ctx.claimed or a.state is not DomainState.RUNNING \
                or not ctx.rooms[hname].fits(b.cores, b.memory_mb, [a]):
            continue          # an earlier move on the same host changed its room
        a_vos, b_vos = share_vos[a.image], share_vos[b.image]
        thaw = bool(s.domain_jobs.get(bname))    # its own frozen work fills it
        gain = [vo for vo in b_vos if vo in due and (thaw or supply[vo] > 0)
                and held[vo] + b.cores / len(b_vos) <= target[vo] + b.cores / (2 * len(b_vos))]
        if not gain or any(held[vo] - a.cores / len(a_vos) < target.get(vo, 0.0) - a.cores / (2 * len(a_vos))
                           for vo in a_vos):
            continue      # past the middle of the host, or nothing left to run there: it would overshoot
        ctx.switch(hname, aname, bname, by=None, share_for=gain[0])
        for vo in a_vos:
            held[vo] -= a.cores / len(a_vos)
        for vo in b_vos:
            held[vo] += b.cores / len(b_vos)
        supply[gain[0]] -= b.cores - sum(s.jobs[j].cores for j in s.domain_jobs.get(bname, ()))
        moved = True
    return moved
