"""Reasons phase: why every job left waiting waits, in words an admin reads.

Worked out from the state at the end of the cycle, once per job shape, and split as OpenPBS
does into *not now* (capacity, share, a boot under way) and *never* (nothing in this cluster
could ever run it as asked). The text becomes the PBS job comment.
"""

from __future__ import annotations

from vmsched.cluster import STATE_HELD, STATE_PENDING, Shape
from vmsched.context import CycleContext
from vmsched.matching import Reason
from vmsched.plan import Pending, Verdict

_REASON_WORDS = {Reason.NOT_ACTIVE: "not active", Reason.FULL: "full (per-domain job cap)",
                 Reason.CORES: "insufficient cores", Reason.MEMORY: "insufficient memory"}


class Reasons:
    name = "reasons"

    def run(self, ctx: CycleContext) -> None:
        s = ctx.s
        explain_waiting(ctx)
        late = ctx.pending_late
        for vid, why in ctx.requeued.items():
            if s.status.get(vid) == STATE_PENDING:
                late[vid] = Pending(Verdict.NOT_NOW, why)
        for jid, why in s._never.items():
            late[jid] = Pending(Verdict.NEVER, why)
        # (a held job is in no wait group: only jobs the matcher holds wait for capacity)
        for jid in sorted(s._listed[STATE_HELD]):
            if jid not in late and jid not in ctx.pending:
                late[jid] = Pending(Verdict.NOT_NOW, f"job is held (state {s.jobs[jid].state.value})")


def explain_waiting(ctx: CycleContext) -> None:
    """Reasons from the state at the end of the cycle, once per job shape: what an admin
    reads must match what the cluster looks like after this plan, not halfway through."""
    s = ctx.s
    total = len(s.domains)
    texts: dict[Shape, str] = {}
    late = ctx.started_late
    given: dict[int, Pending] = {}     # id of a wait group -> its reason
    held_for: dict[tuple, int] = {}    # (images, rank) -> domains held for higher classes
    made: dict[tuple, Pending] = {}
    for (sh, notes), jids in ctx.waits.items():
        if late:
            jids = [j for j in jids if j not in late]
            if not jids:
                continue
        base = texts.get(sh)
        if base is None:
            counts = s.engine.reasons(s._job_h[jids[0]])
            key = (sh, counts, total, s._domain_version)
            base = s._reason_texts.get(key)
            if base is None:
                if len(s._reason_texts) >= 4096:
                    s._reason_texts.clear()
                base = s._reason_texts[key] = _reason_text(ctx, sh, counts, total)
            texts[sh] = base
        hkey = (sh.images, sh.rank)
        held = held_for.get(hkey)
        if held is None:
            held = held_for[hkey] = _held_for_higher(ctx, sh)
        if held:
            notes = (f"{held} of them held for higher-class jobs while preempted work waits",) + notes
        pkey = (base, notes)
        p = made.get(pkey)      # groups that wait for the same words share one reason
        if p is None:
            p = made[pkey] = Pending(Verdict.NOT_NOW, "; ".join((base,) + notes))
        given[id(jids)] = p
        ctx.pending_groups.append((jids, p))
    for jids, shapes, groups in ctx.rest:
        ctx.pending_groups.append(_Rest(jids, shapes, {sh: given[id(g)] for sh, g in groups.items()}))


class _Rest:
    """The jobs of a part of the queue, each with its shape group's reason, listed when read."""

    __slots__ = ("jids", "shapes", "reasons")

    def __init__(self, jids: list, shapes: list, reasons: dict[Shape, Pending]):
        self.jids, self.shapes, self.reasons = jids, shapes, reasons

    def pairs(self):
        reasons = self.reasons
        return ((j, reasons[sh]) for j, sh in zip(self.jids, self.shapes) if j is not None)


def _held_for_higher(ctx: CycleContext, sh: Shape) -> int:
    """Domains of the shape's images that this cycle keeps for jobs of a higher class."""
    if not ctx.reserved:
        return 0
    images, rank, s = set(sh.images), sh.rank, ctx.s
    return sum(1 for n, need in ctx.reserved.items()
               if rank < need and n in s.domains and s.domains[n].image in images)

def _reason_text(ctx: CycleContext, sh: Shape, counts, total: int) -> str:
    s = ctx.s
    wrong = counts[Reason.WRONG_KIND]
    parts = []
    if wrong:
        images = set(sh.images)
        feat = sum(n for (img, f), k in s._kinds.items() for n in [s._kind_total[k]]
                   if img in images and not sh.features <= f)
        if wrong - feat:
            parts.append(f"{wrong - feat} wrong image")
        if feat:
            parts.append(f"{feat} missing feature {','.join(sorted(sh.features))}")
    for r in (Reason.NOT_ACTIVE, Reason.FULL, Reason.CORES, Reason.MEMORY):
        if counts[r]:
            parts.append(f"{counts[r]} {_REASON_WORDS[r]}")
    return f"0/{total} domains" + (": " + ", ".join(parts) if parts else "")
