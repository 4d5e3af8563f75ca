"""Carrying out a plan on a live server: each action through the IFL or the VM driver.

What an action does is ``vmsched.plan``'s (one definition, the simulator's too): the
executor mirrors the cluster in a :class:`~vmsched.plan.SnapshotState`, applies each
action there once the server has done it, and checks each action against it first. So an
action that depended on one that failed (a job to run in a domain whose resume failed) is
skipped with that reason instead of being sent to the server.

Rules of a live server on top of the plan's:

- A failed action is logged with the error's name and the server's message and does not
  stop the rest of the plan.
- A domain is never left half-switched: its running jobs are suspended (``pbs_sigjob``)
  before the domain is, and its node set offline after; a resumed domain's node is put
  back online before its jobs are resumed (and before anything is run there: the server
  refuses an offline node); when a step fails, the steps done are undone in reverse. A job that ended meanwhile (UNKJOBID, ALRDYEXIT) is no failure: there
  is nothing left to freeze or thaw.
- A host never gets more active domains than it may have: a resume or boot that would
  exceed ``max_active`` (because the suspend before it failed) is skipped.
- A lost connection (the server restarted) stops the plan: the rest was decided on a view
  that may no longer hold, and a request whose answer was lost may have been done. The
  :class:`~vmsched_pbs.ifl.IFLError` goes up to the caller, which reconnects and reads
  afresh; a domain switch under way is first undone on a new connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs

from vmsched.model import Domain, DomainState, JobState, Snapshot
from vmsched.plan import (Action, BindJob, BootDomain, Plan, PlanError, RequeueJob, ResumeDomain, ResumeJob,
                          RouteJob, RunJob, ShutdownDomain, SnapshotState, SuspendDomain, SuspendJob, apply_action,
                          check_action)
from vmsched_pbs.driver import DriverError, VMDriver
from vmsched_pbs.ifl import IFLBackend, IFLError

__all__ = ["Outcome", "Executor", "GONE"]

log = logging.getLogger("vmsched_pbs")

#: errors that mean the job is no longer there to act on (it ended between stat and action)
GONE = frozenset({"UNKJOBID", "ALRDYEXIT", "JOBNOTFOUND", "HISTJOBID"})
_HOLDS_HOST = (DomainState.FREE, DomainState.RUNNING, DomainState.BOOTING)


@attrs.frozen(slots=True)
class Outcome:
    """What became of one action: done, failed (with the error's name and message) or
    skipped (it depended on something that did not happen)."""

    action: Action
    result: str                      # "done", "failed", "skipped"
    error: str | None = None         # IFL error name, "DRIVER", or "PLAN"
    message: str = ""

    def __str__(self) -> str:
        tail = f": {self.error}: {self.message}" if self.error else ""
        return f"{self.action} {self.result}{tail}"


class _StepFailed(Exception):
    def __init__(self, error: str, message: str):
        self.error, self.message = error, message
        super().__init__(f"{error}: {message}")


class Executor:
    """Applies plans through one backend and one driver. ``publish(domain, state)`` puts a
    domain's state on its node (note, offline) or raises :class:`IFLError`; it is a step
    of every domain switch."""

    def __init__(self, backend: IFLBackend, driver: VMDriver,
                 publish: Callable[[str, DomainState], None] | None = None):
        self.backend, self.driver = backend, driver
        self.publish = publish or (lambda name, state: None)
        #: the cluster as the last plan left it, as far as it got (read it after a lost connection)
        self.state: SnapshotState | None = None

    def apply(self, plan: Plan, snapshot: Snapshot) -> tuple[list[Outcome], SnapshotState]:
        """Every action in order; returns what became of each, and the cluster after them
        (as far as they were done; ``.snapshot()`` makes a snapshot of it)."""
        state = self.state = SnapshotState(snapshot)
        out = []
        for i, action in enumerate(plan.actions):
            try:
                outcome = self._one(state, action, plan.time)
            except IFLError as e:
                log.error("%s: connection lost (%s); the rest of the plan, %d actions, is dropped: the next "
                          "cycle reads the server afresh", action, e, len(plan.actions) - i - 1)
                if type(action) is RunJob:
                    # the server may have started it before the answer was lost: counted as
                    # running, so that it is charged if it ends before the next read
                    try:
                        apply_action(state, action, plan.time)
                    except PlanError:
                        pass
                raise
            out.append(outcome)
            if outcome.result == "done":
                log.info("%s", outcome)
            else:
                log.warning("%s", outcome)
        return out, state

    # ------------------------------------------------------------------ one action
    def _one(self, state: SnapshotState, a: Action, now: float) -> Outcome:
        try:
            check_action(state, a)
            self._host_room(state, a)
        except PlanError as e:
            return Outcome(a, "skipped", "PLAN", e.why)
        try:
            self._do(state, a)
        except _StepFailed as e:
            return Outcome(a, "failed", e.error, e.message)
        apply_action(state, a, now)
        return Outcome(a, "done")

    def _host_room(self, state: SnapshotState, a: Action) -> None:
        if type(a) is ResumeDomain:
            host = state.domains[a.domain].host
        elif type(a) is BootDomain:
            host = a.host
        else:
            return
        active = sum(1 for d in state.domains.values() if d.host == host and d.state in _HOLDS_HOST)
        if active >= state.hosts[host].max_active:
            raise PlanError(a, f"host {host} already has {active} active domains (max_active "
                               f"{state.hosts[host].max_active}): an earlier switch did not happen")

    def _do(self, state: SnapshotState, a: Action) -> None:
        t = type(a)
        b = self.backend
        if t is RunJob:
            cores, memory = state.job_size(a.job)
            self._ifl(lambda: b.run_job(a.job, b.run_location(a.domain, cores, memory)))
        elif t is SuspendJob:
            self._ifl(lambda: b.sig_job(a.job, "suspend"))
        elif t is ResumeJob:
            self._ifl(lambda: b.sig_job(a.job, "resume"))
        elif t is RequeueJob:
            self._ifl(lambda: b.rerun_job(a.job))
        elif t is RouteJob:
            self._ifl(lambda: b.move_job(a.job, a.queue))
        elif t is SuspendDomain or t is ResumeDomain or t is ShutdownDomain:
            self._switch(self._steps(state, a))
        elif t is BootDomain:
            self._drv(lambda: self.driver.boot(Domain(a.domain, a.host, a.image, a.flavor, DomainState.BOOTING,
                                                      a.cores, a.memory_mb)))
        elif t is BindJob:
            raise _StepFailed("UNSUPPORTED", "bind (WNoDeS) is not carried out by vmsched-pbs yet")
        else:
            raise _StepFailed("UNSUPPORTED", f"unknown action {a.verb}")

    # ------------------------------------------------------------------ steps
    def _steps(self, state: SnapshotState, a: Action) -> list[tuple[Callable[[], None], Callable[[], None]]]:
        """A domain switch as (do, undo) steps, in the order that keeps jobs off an
        inactive domain: jobs first when freezing, jobs last when thawing."""
        name = a.domain
        before = state.domains[name].state
        inside = sorted(state.domain_jobs(name))

        def node(st):
            return lambda: self._ifl(lambda: self.publish(name, st))

        if type(a) is SuspendDomain:
            running = [j for j in inside if state.jobs[j].state is JobState.RUNNING]
            after = DomainState.SUSPENDED if inside else DomainState.OCCUPIED
            return ([(lambda j=j: self._sig(j, "suspend"), lambda j=j: self._sig(j, "resume")) for j in running]
                    + [(lambda: self.driver.suspend(name), lambda: self.driver.resume(name)),
                       (node(after), node(before))])
        if type(a) is ResumeDomain:
            frozen = [j for j in inside if state.jobs[j].state is JobState.SUSPENDED]
            after = DomainState.RUNNING if inside else DomainState.FREE
            return ([(lambda: self.driver.resume(name), lambda: self.driver.suspend(name)),
                     (node(after), node(before))]
                    + [(lambda j=j: self._sig(j, "resume"), lambda j=j: self._sig(j, "suspend")) for j in frozen])
        undo_shutdown = self.driver.resume if before.active else self.driver.suspend
        return [(lambda: self.driver.shutdown(name), lambda: undo_shutdown(name)),
                (node(DomainState.SHUTTING_DOWN), node(before))]

    @staticmethod
    def _ifl(call: Callable[[], None]) -> None:
        try:
            call()
        except IFLError as e:
            if e.lost:
                raise
            raise _StepFailed(e.name, f"{e.call}: {e.text}") from None

    @staticmethod
    def _drv(call: Callable[[], None]) -> None:
        try:
            call()
        except DriverError as e:
            raise _StepFailed("DRIVER", str(e)) from None

    def _sig(self, job: str, signal: str) -> None:
        """Suspend or resume one job of a domain being switched; a job that is gone is done."""
        try:
            self.backend.sig_job(job, signal)
        except IFLError as e:
            if e.name in GONE:
                return
            if e.lost:
                raise
            raise _StepFailed(e.name, f"{e.call}: {e.text}") from None

    def _switch(self, steps: list[tuple[Callable[[], None], Callable[[], None]]]) -> None:
        """Do the steps in order; if one fails, undo the ones done, last first. When the
        connection was lost, the undoing happens on a new one, and the loss goes up."""
        done = []
        for do, undo in steps:
            try:
                try:
                    do()
                except DriverError as e:
                    raise _StepFailed("DRIVER", str(e)) from None
            except (_StepFailed, IFLError) as failed:
                if isinstance(failed, IFLError):
                    try:
                        self.backend.reconnect()
                    except IFLError as e:
                        log.error("domain switch cut by a lost connection and no new one (%s): "
                                  "the domain may need an admin", e)
                        raise failed from None
                    try:        # the step whose answer was lost may have been done: undo it too
                        undo()
                    except (_StepFailed, DriverError, IFLError) as e:
                        log.info("undoing the step cut by the lost connection: %s (it was not done)", e)
                for undo_step in reversed(done):
                    try:
                        undo_step()
                    except (_StepFailed, DriverError, IFLError) as e:
                        log.error("rolling back a domain switch: %s (the domain may need an admin)", e)
                raise failed
            done.append(undo)
