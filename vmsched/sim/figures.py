"""The report's per-job figures, folded in as each job leaves a replay.

A streaming replay forgets a job once it has ended (or will never run), so whatever the
report needs of it is taken then: its wait and bounded slowdown into compact arrays (8
bytes a job, so quantiles stay exact: the report sorts them at the end), its preemptions
into counters, and its never-ran reason into a count per reason. Two sums over all jobs
(executed and lost core-seconds) are kept per arrival rank and added in that order at the
end, so that they are the very numbers a replay holding every job would add up.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter

from vmsched.sim.mapping import SimJob, Unrunnable

__all__ = ["JobFigures", "BSLD_TAU", "FULL_LOAD", "generic_reason"]

BSLD_TAU = 10.0
#: The cluster counts as full (for share under saturation and interactive latency under
#: full load) while at least this fraction of its cores run jobs.
FULL_LOAD = 0.9

_NUMBERS = re.compile(r"\d+\.\d+|\d{3,}")


def generic_reason(reason: str) -> str:
    """A reason with its large numbers (times, sizes, ids) taken out, so that reasons group."""
    return _NUMBERS.sub("N", reason)


class JobFigures:
    """Running figures over the jobs that left a replay (see the module text).

    ``total``: how many jobs the replay has (their arrival ranks are 0..total-1)."""

    def __init__(self, total: int):
        self.wait_by_vo: dict[str, array] = {}
        self.wait_by_class: dict[str, array] = {}
        self.bsld = array("d")
        self.interactive = array("d")
        self.interactive_full = array("d")     # interactive jobs that arrived under full load
        self.done = 0
        self.last_end: float | None = None
        self.preemptions = 0
        self.jobs_preempted = 0
        self.requeues = 0
        self._executed = array("d", bytes(8 * total))   # per arrival rank: cores x (executed + lost)
        self._lost = array("d", bytes(8 * total))       # per arrival rank: cores x lost work
        self.never_reasons: Counter = Counter()          # (stage, generic reason) -> jobs
        self.never_by_stage: Counter = Counter()
        self.never = 0

    def ended(self, sj: SimJob) -> None:
        """A job ran to its end."""
        w = sj.first_start - sj.arrival
        vo, klass = sj.job.vo, sj.klass
        lst = self.wait_by_vo.get(vo)
        if lst is None:
            lst = self.wait_by_vo[vo] = array("d")
        lst.append(w)
        lst = self.wait_by_class.get(klass)
        if lst is None:
            lst = self.wait_by_class[klass] = array("d")
        lst.append(w)
        self.bsld.append(max(1.0, (sj.end - sj.arrival) / max(sj.executed, BSLD_TAU)))
        if sj.interactive:
            self.interactive.append(w)
            if sj.load_at_arrival >= FULL_LOAD:
                self.interactive_full.append(w)
        self.done += 1
        if self.last_end is None or sj.end > self.last_end:
            self.last_end = sj.end
        self.left(sj)

    def left(self, sj: SimJob) -> None:
        """A replayed job leaves for good (ended, or will never run): what every job adds."""
        self.preemptions += sj.preemptions
        self.jobs_preempted += 1 if sj.preemptions else 0
        self.requeues += sj.requeues
        if sj.executed or sj.lost_work:
            self._executed[sj.rank] = sj.job.cores * (sj.executed + sj.lost_work)
            self._lost[sj.rank] = sj.lost_work * sj.job.cores

    def never_ran(self, u: Unrunnable) -> None:
        self.never += 1
        self.never_by_stage[u.stage] += 1
        self.never_reasons[(u.stage, generic_reason(u.reason))] += 1

    # -- at the end
    def waits(self) -> list[float]:
        """Every ended job's wait, sorted."""
        return sorted(w for lst in self.wait_by_vo.values() for w in lst)

    @property
    def executed_core_s(self) -> float:
        return sum(self._executed)

    @property
    def lost_work_core_s(self) -> float:
        return sum(self._lost)
