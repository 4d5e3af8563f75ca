"""Preemption: who may displace whom, and how.

Classes are ordered, lowest first (e.g. opportunistic < normal < privileged < interactive). A
job may displace only jobs of *strictly* lower class, so preemption can never escalate into a
chain of equals throwing each other out. The victim search itself lives in the matcher
(C or Python); this module turns the site's words into the matcher's numbers and finds owner
reclaims, which are rare and few (a Tier-3's own hosts), in plain Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from vmsched.matching import MODE_REQUEUE, MODE_SUSPEND_DOMAIN, MODE_SUSPEND_JOBS
from vmsched.model import Domain, Host, Job
from vmsched.policyfile import PreemptionPolicy

if TYPE_CHECKING:
    from vmsched.policies.lifecycle import HostRoom

__all__ = ["engine_mode", "Reclaim", "find_owner_reclaim"]

_MODES = {"suspend-domain": MODE_SUSPEND_DOMAIN, "suspend-jobs": MODE_SUSPEND_JOBS, "requeue": MODE_REQUEUE}


def engine_mode(policy: PreemptionPolicy) -> int | None:
    """The matcher's mode number, or None when the site switched preemption off."""
    return _MODES.get(policy.mode)


@attrs.frozen(slots=True)
class Reclaim:
    """An owner takes back room on ``host``: the borrower domains in ``domains`` go (their
    jobs, ``jobs``, are displaced) so that a domain of the owner's image fits there."""

    host: str
    domains: tuple[str, ...]
    jobs: tuple[str, ...]
    lost_work: float


def find_owner_reclaim(job: Job, rank: Callable[[Job], int], rooms: Mapping[str, "HostRoom"],
                       domains: Mapping[str, Domain], domain_jobs: Mapping[str, Iterable[str]],
                       jobs: Mapping[str, Job], need: Callable[[Host], tuple[int, int] | None],
                       now: float) -> Reclaim | None:
    """The cheapest set of borrower domains to evict from a host owned by the job's group.

    Only domains whose every job is a borrower's of strictly lower class than the owner's job
    may go: an owner reclaims by the same rule as any preemptor, never by escalation.
    Cheapest = least work lost (cores x seconds run), then fewest jobs, then host name.
    """
    r_job = rank(job)
    best = None
    for hname in sorted(rooms):
        room = rooms[hname]
        host = room.host
        if not host.up or host.owner is None or host.owner not in (job.group, job.vo) \
                or not job.features <= host.features:
            continue
        size = need(host)
        if size is None:
            continue
        candidates = []
        for dname in room.domains:
            d = domains[dname]
            if not d.state.active:
                continue
            inside = domain_jobs.get(dname, ())
            running = [jobs[j] for j in sorted(inside) if j in jobs]
            # An idle domain is lifecycle's to switch, not a reclaim: nobody is displaced. A
            # domain holding suspended work already made room for a preemptor once; freezing
            # it whole would later thaw those jobs together with the ones that took their place.
            if not running or len(running) != len(inside) or any(r.group == host.owner or r.vo == host.owner or rank(r) >= r_job for r in running):
                continue
            lost = sum(r.cores * max(0.0, now - (r.start_time if r.start_time is not None else now))
                       for r in running)
            candidates.append((lost, len(running), dname, d, running))
        candidates.sort(key=lambda c: c[:3])
        freed, victims, lost = [], [], 0.0
        for c in candidates:
            if room.fits(size[0], size[1], [x[3] for x in freed]):
                break
            freed.append(c)
            victims.extend(r.id for r in c[4])
            lost += c[0]
        if not freed or not room.fits(size[0], size[1], [x[3] for x in freed]):
            continue
        key = (lost, len(victims), hname)
        if best is None or key < best[0]:
            best = (key, Reclaim(hname, tuple(c[2] for c in freed), tuple(sorted(victims)), lost))
    return None if best is None else best[1]
