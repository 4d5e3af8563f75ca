"""Bound-job phase (WNoDeS): a job bound to the domain booted for it runs there once it is up.
"""

from __future__ import annotations

from vmsched.cluster import STATE_BOUND
from vmsched.context import CycleContext
from vmsched.model import DomainState
from vmsched.plan import Pending, RunJob, Verdict


class BoundJobs:
    name = "bound jobs"

    def run(self, ctx: CycleContext) -> None:
        run_bound(ctx)


def run_bound(ctx: CycleContext) -> None:
    s = ctx.s
    for jid in sorted(s._listed[STATE_BOUND], key=lambda j: (s.jobs[j].submit_time, j)):
        job = s.jobs[jid]
        d = s.domains.get(job.domain)
        if d is None:
            ctx.pending[jid] = Pending(Verdict.NOT_NOW, f"bound to domain {job.domain}, which is gone; "
                                                         "waiting for the server to unbind it")
        elif d.state.active and not s.domain_jobs.get(d.name) and d.cores >= job.cores \
                and d.memory_mb >= job.memory_mb:
            ctx.actions.append(RunJob(jid, d.name))
            s._mark_running(jid, d.name, ctx.now, via_engine=False)
            ctx.claimed.add(d.name)
        else:
            ctx.pending[jid] = Pending(Verdict.NOT_NOW, f"waiting for domain {d.name} (bound) to "
                                                         f"{'boot' if d.state is DomainState.BOOTING else 'free'}")
