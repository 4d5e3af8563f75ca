"""What one cycle decides: an ordered list of actions and a reason for every job left waiting.

The batch-system adapters and the simulator carry out the same actions in the same order;
an action that depends on an earlier one (run a job in a domain being resumed) simply
follows it, and the executor waits for the earlier one to finish.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = ["Action", "RouteJob", "RunJob", "BootDomain", "ResumeDomain", "SuspendDomain",
           "ShutdownDomain", "SuspendJob", "ResumeJob", "RequeueJob", "BindJob", "Pending",
           "Verdict", "Plan"]


@attrs.frozen(slots=True)
class Action:
    verb = "action"

    def to_json(self) -> dict[str, Any]:
        out = {"action": self.verb}
        out.update(attrs.asdict(self))
        return out

    def __str__(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in attrs.asdict(self).items())
        return f"{self.verb} {args}"


@attrs.frozen(slots=True)
class RouteJob(Action):
    """``pbs_movejob`` from a routing queue to the execution queue that accepted the job."""

    verb = "route"
    job: str
    queue: str


@attrs.frozen(slots=True)
class RunJob(Action):
    """``pbs_runjob`` on the node that is this domain."""

    verb = "run"
    job: str
    domain: str


@attrs.frozen(slots=True)
class BootDomain(Action):
    """Create and start a VM of ``image`` and ``flavor`` on ``host`` (dynamic instantiation)."""

    verb = "boot"
    domain: str
    host: str
    image: str
    flavor: str
    cores: int
    memory_mb: int


@attrs.frozen(slots=True)
class ResumeDomain(Action):
    """Make a domain active: thaw a suspended one, or activate an occupied one."""

    verb = "resume-domain"
    domain: str


@attrs.frozen(slots=True)
class SuspendDomain(Action):
    """Freeze a domain (and the jobs in it) so another on the host can take its place."""

    verb = "suspend-domain"
    domain: str
    by: str | None = None  # the preemptor's job id; None when the domain is idle
    share_for: str | None = None  # frozen for fair share: the VO under its share that takes the host


@attrs.frozen(slots=True)
class ShutdownDomain(Action):
    verb = "shutdown"
    domain: str


@attrs.frozen(slots=True)
class SuspendJob(Action):
    """``pbs_sigjob(job, "suspend")``."""

    verb = "suspend-job"
    job: str
    by: str | None = None  # the preemptor's job id


@attrs.frozen(slots=True)
class ResumeJob(Action):
    """``pbs_sigjob(job, "resume")``."""

    verb = "resume-job"
    job: str


@attrs.frozen(slots=True)
class RequeueJob(Action):
    """``pbs_rerunjob``: the job loses its work so far and waits again."""

    verb = "requeue"
    job: str
    by: str | None = None  # the preemptor's job id


@attrs.frozen(slots=True)
class BindJob(Action):
    """WNoDeS: the job waits, bound to the domain being prepared for it (same job id)."""

    verb = "bind"
    job: str
    domain: str


class Verdict(enum.Enum):
    """OpenPBS's distinction: *not now* (capacity, share, a boot under way) versus *never*
    (nothing in this cluster could ever run it as asked)."""

    NOT_NOW = "not now"
    NEVER = "never"


@attrs.frozen(slots=True)
class Pending:
    """Why a job is still waiting; ``text`` becomes the PBS job comment."""

    verdict: Verdict
    text: str

    def __str__(self) -> str:
        return f"{self.verdict.value}: {self.text}"


@attrs.frozen(slots=True)
class Plan:
    time: float
    actions: tuple[Action, ...]
    pending: tuple[tuple[str, Pending], ...]
    engine: str = "python"

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "engine": self.engine, "actions": [a.to_json() for a in self.actions],
                "pending": {j: {"verdict": p.verdict.value, "reason": p.text} for j, p in self.pending}}

    def reason(self, job_id: str) -> Pending | None:
        for j, p in self.pending:
            if j == job_id:
                return p
        return None
