"""The jobs vmsched-pbs last saw running, kept on disk beside the usage store.

A job that ends while vmsched-pbs is down, on a server that keeps no end record (Torque's
``keep_completed = 0``, OpenPBS without job history), is gone when vmsched-pbs comes back:
without a record of what was running, its usage would be forgotten. So after every cycle
the running jobs are written (atomically: a temporary file renamed over the old one) to
``<usage store>.running.json``, and read back at start. A store in memory keeps nothing.
"""

from __future__ import annotations

import enum
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from vmsched.model import Job

__all__ = ["RunningFile"]

log = logging.getLogger("vmsched_pbs")


def _encode(job: Job) -> dict:
    out = {}
    for a in attrs.fields(Job):
        v = getattr(job, a.name)
        out[a.name] = v.value if isinstance(v, enum.Enum) else sorted(v) if isinstance(v, frozenset) else v
    return out


class RunningFile:
    """``<store>.running.json``, or nothing for a store in memory."""

    def __init__(self, store_path: str | os.PathLike[str] | None):
        p = None if store_path is None or str(store_path) == ":memory:" else Path(str(store_path) + ".running.json")
        self.path = p
        self._saved: frozenset[str] | None = None

    def load(self) -> dict[str, Job]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            jobs = {}
            for d in data:
                d = {k: frozenset(v) if isinstance(v, list) else v for k, v in d.items()}
                jobs[d["id"]] = Job(**d)
        except (OSError, ValueError, TypeError, KeyError) as e:
            log.error("%s: cannot read the jobs that were running (%s); jobs that ended meanwhile without "
                      "an end record will not be charged", self.path, e)
            return {}
        self._saved = frozenset(jobs)
        return jobs

    def save(self, jobs: Mapping[str, Job]) -> None:
        """Write the running jobs if they changed since the last write."""
        if self.path is None or self._saved == frozenset(jobs):
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps([_encode(j) for j in jobs.values()]), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as e:
            log.error("%s: cannot write the jobs running (%s)", self.path, e)
            return
        self._saved = frozenset(jobs)
