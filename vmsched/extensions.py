"""Extension points of the cycle: one small interface each, named in the policy's
``[plugins]`` section, Kubernetes-style.

``pre_filter`` (may a job be considered at all this cycle), ``filter`` (may it run in this
domain), ``queue_sort`` and ``score`` (order jobs, rank domains: these take the Python path,
since a site plugin is Python), ``preempt`` (may these victims be displaced). A plugin answers
with a :class:`Status` whose code tells *not now* from *never*, as OpenPBS does for pending
reasons; the reason becomes the job's comment.
"""

from __future__ import annotations

import enum
import importlib
from typing import Any, Protocol

import attrs

from vmsched.model import Domain, Host, Job

__all__ = ["Code", "Status", "PreFilterPlugin", "FilterPlugin", "QueueSortPlugin", "ScorePlugin", "PreemptPlugin",
           "load_plugin"]


class Code(enum.Enum):
    SUCCESS = "success"
    UNSCHEDULABLE = "unschedulable"            # not now
    UNSCHEDULABLE_NEVER = "unschedulable-never"  # never, as asked


@attrs.frozen(slots=True)
class Status:
    code: Code = Code.SUCCESS
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS


class PreFilterPlugin(Protocol):
    def pre_filter(self, job: Job, now: float) -> Status: ...


class FilterPlugin(Protocol):
    def filter(self, job: Job, domain: Domain, host: Host) -> Status: ...


class QueueSortPlugin(Protocol):
    def sort_key(self, job: Job, priority: float) -> Any: ...


class ScorePlugin(Protocol):
    def score(self, job: Job, domain: Domain, host: Host) -> float: ...


class PreemptPlugin(Protocol):
    def allow(self, preemptor: Job, victims: list[Job]) -> Status: ...


def load_plugin(spec: str):
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)()
    except Exception as e:  # a site plugin can fail in any way; name it, don't crash the server
        raise ValueError(f"plugin {spec}: cannot load: {type(e).__name__}: {e}") from None
