"""Example site plugins, as an admin would write them (used by tests/test_plugins.py)."""

from vmsched.cycle import Code, Status


class MaxTwoRunningPerUser:
    """pre_filter: a user may have at most two jobs running (a Maui MAXJOB-style limit)."""

    def __init__(self):
        self.running = {}

    def pre_filter(self, job, now):
        if self.running.get(job.user, 0) >= 2:
            return Status(Code.UNSCHEDULABLE, f"user {job.user} already runs 2 jobs (site limit)")
        return Status()


class NoBlackHole:
    """filter: keep jobs off a host the site has seen eat jobs."""

    def filter(self, job, domain, host):
        if host.name == "lxb001":
            return Status(Code.UNSCHEDULABLE, "host lxb001 is draining (black hole)")
        return Status()


class OldestFirst:
    """queue_sort: plain FIFO, whatever the priority says."""

    def sort_key(self, job, priority):
        return (job.submit_time, job.id)


class PreferHighNumbers:
    """score: prefer domains whose name sorts last."""

    def score(self, job, domain, host):
        return float(int("".join(c for c in domain.name if c.isdigit()) or 0))


class NeverPreempt:
    def allow(self, preemptor, victims):
        return Status(Code.UNSCHEDULABLE, "preemption is frozen during the maintenance window")


class Broken:
    """A filter whose constructor fails (it cannot reach what it checks against)."""

    def __init__(self):
        raise RuntimeError("cannot reach the site database")

    def filter(self, job, domain, host):
        return Status()
