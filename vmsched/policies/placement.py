"""Placement phase: room for the jobs still waiting, by activating an idle domain or booting one.

For each waiting job in priority order: a domain this cycle already opened, a domain kept
for its class, an idle domain held back from its over-share VO (jobs above the default class
only), a domain booting for its image; else lifecycle's placement
(:func:`vmsched.policies.lifecycle.plan_placement`): activate an idle inactive domain of its
image, switching out an idle active one, or boot a new one. A job that gets nothing waits,
grouped with the jobs of its shape for the reasons phase.
"""

from __future__ import annotations

import bisect
from collections import Counter

from vmsched.cluster import STATE_BOUND, STATE_PENDING, Shape
from vmsched.context import CycleContext
from vmsched.model import Domain, DomainState, Job
from vmsched.policies import lifecycle


class Place:
    name = "place (boot/activate)"

    def run(self, ctx: CycleContext) -> None:
        place(ctx, ctx.unplaced, ctx.held_back)


def place(ctx: CycleContext, unplaced: list[int], held_back: set[str]) -> None:
    s = ctx.s
    booting_for: dict[str, list[Domain]] = {}
    for name in sorted(s._by_state[DomainState.BOOTING]):
        if not s.domain_jobs.get(name):
            booting_for.setdefault(s.domains[name].image, []).append(s.domains[name])
    promised: Counter = Counter()
    bound = {s.jobs[j].domain for j in s._listed[STATE_BOUND]}
    failed: set = set()
    # A job shape that found nothing finds nothing again until a domain opens in this
    # phase: with thousands of queued jobs, most of them are the same few shapes.
    # shape -> (domains opened when it found nothing, the wait its jobs join)
    dead: dict[Shape, tuple[int, list[str]]] = {}
    can_skip = "filter" not in s.plugins
    names, status, shapes, notes = s._job_name, s.status, s._hshape, ctx.notes
    # While every shape seen so far has found nothing since a domain last opened, the jobs
    # up to the next new shape's first place in the queue find nothing either: they wait in
    # their shapes' groups without a look at each (the reasons phase lists them), and the
    # loop jumps there. Not with job notes (a job with one waits in a group of its own) or
    # held-back domains (the second chance walks the groups).
    lazy = can_skip and not notes and not held_back
    if lazy:
        queue_shapes = list(map(shapes.get, unplaced))
        first = dict(zip(reversed(queue_shapes), range(len(unplaced) - 1, -1, -1)))   # shape -> first place
        first.pop(None, None)
        starts = sorted(first.values())
    skipped: list[tuple[int, int, dict]] = []   # [start, end) of the queue left waiting as a whole,
    #                                              and the wait group of each shape then
    dead_now = 0      # shapes dead since the last domain opened
    i, n = 0, len(unplaced)
    while i < n:
        h = unplaced[i]
        i += 1
        jid = names.get(h)
        if jid is None or status.get(jid) != STATE_PENDING:
            continue
        sh = shapes[h]
        if can_skip:
            gone = dead.get(sh)
            if gone is not None and gone[0] == ctx.opened and jid not in notes:
                gone[1].append(jid)
                continue
        job = s.jobs[jid]
        if _start_in_open_room(ctx, h, jid, job, sh):
            continue
        wait = _booting_domain(ctx, job, sh.images, booting_for, promised, bound)
        if wait is not None:
            promised[wait.name] += 1
            ctx.wait(jid, sh, (f"waiting for domain {wait.name} to boot",))
            continue
        placement = _lifecycle_placement(ctx, job, sh, failed)
        if placement is None:
            group = ctx.wait(jid, sh, _capacity_notes(ctx, jid, sh))
            if jid not in notes:      # a job with its own note waits in a group of its own
                before = dead.get(sh)
                if before is None or before[0] != ctx.opened:
                    dead_now += 1
                dead[sh] = (ctx.opened, group)
                if lazy:
                    seen = bisect.bisect_left(starts, i)      # shapes whose first place is before i
                    if dead_now == seen:
                        nxt = starts[seen] if seen < len(starts) else n
                        if nxt > i:
                            # the groups as they are now: a later boot may change the notes
                            skipped.append((i, nxt, {shape: g for shape, (_, g) in dead.items()}))
                            i = nxt
            continue
        boots_left = ctx.boots_left
        ctx.apply_placement(h, jid, job, placement)
        if placement.ready:
            ctx.opened += 1
            dead_now = 0
        elif ctx.boots_left != boots_left:
            dead.clear()      # the notes of later waits may now say the boot limit is reached
            dead_now = 0
    for a, b, groups in skipped:
        ctx.wait_rest(unplaced[a:b], queue_shapes[a:b], groups)


def _start_in_open_room(ctx: CycleContext, h: int, jid: str, job: Job, sh: Shape) -> bool:
    """Start the job in a domain already open to it, if any: one activated earlier in this
    phase, one kept for its class, or (above the default class) one held back by share."""
    slot = ctx.open_slot(h, job, sh.rank)
    if slot is None or ctx.vetoed(jid, ctx.s._slot_name[slot]):
        return False
    ctx.start(h, jid, slot)
    return True


def _booting_domain(ctx: CycleContext, job: Job, images: tuple[str, ...], booting_for: dict[str, list[Domain]],
                    promised: Counter, bound: set[str]) -> Domain | None:
    """An idle domain of the job's image already booting, that nobody else was promised."""
    for img in images:
        for d in booting_for.get(img, ()):
            if d.cores >= job.cores and d.memory_mb >= job.memory_mb and promised[d.name] < 1 \
                    and job.features <= ctx.s.hosts[d.host].features and d.name not in bound:
                return d
    return None


def _lifecycle_placement(ctx: CycleContext, job: Job, sh: Shape, failed: set) -> lifecycle.Placement | None:
    """Lifecycle's placement for the job, unless its shape already failed since anything
    lifecycle looks at last opened up (claims made in this cycle only narrow it; the epoch
    moves at the end of the cycle if they are given back)."""
    s = ctx.s
    shape = sh.lifecycle_key
    if s._placement_failed.get(shape) == s._lifecycle_epoch:
        failed.add(shape)
    if shape in failed or not sh.images:
        return None
    placement = lifecycle.plan_placement(job, sh.images, ctx.rooms, s.domains, ctx.busy, ctx.policy.flavors,
                                         ctx.policy.lifecycle, ctx.boots_left, ctx.now,
                                         hosts=ctx.hosts_in_order(job), host_domains=s.host_domains)
    if placement is None:
        failed.add(shape)
        s._placement_failed[shape] = s._lifecycle_epoch
    return placement


def _capacity_notes(ctx: CycleContext, jid: str, sh: Shape) -> tuple[str, ...]:
    """What to add to a capacity wait's reason; the same tuple for every job that shares
    it, so that reasons group by identity."""
    lc = ctx.policy.lifecycle
    limited = lc.dynamic_boot and ctx.boots_left <= 0
    key = (sh.vo, limited)
    notes = ctx.shared_notes.get(key)
    if notes is None:
        share = ctx.over_share.get(sh.vo) if ctx.over_share else None
        notes = ctx.shared_notes[key] = ((share,) if share else ()) + \
            ((f"boot limit reached ({lc.max_concurrent_boots} under way)",) if limited else
             ("no host has room to resume or boot a domain for it",) if lc.dynamic_boot else ())
    if jid in ctx.notes:
        notes = (ctx.notes[jid],) + notes
    return notes
