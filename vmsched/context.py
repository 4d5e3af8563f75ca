"""One cycle's working state (:class:`CycleContext`), shared by the phases of the cycle.

The phases (``vmsched/policies/``, listed in order in :mod:`vmsched.cycle`) each read the
cluster (``ctx.s``) and add to the plan; the helpers here are the few things several phases
do alike: test whether a job fits a domain, close a domain for a higher class, switch the
active domain on a host, carry out a lifecycle placement.
"""

from __future__ import annotations

import attrs

from vmsched.cluster import STATE_SUSPENDED, Cluster, Shape
from vmsched.matching import SLOT_ACTIVE, SLOT_STARTING
from vmsched.model import Domain, DomainState, Host, Job, JobState
from vmsched.plan import Action, BindJob, Pending, ResumeDomain, RunJob, SuspendDomain, Verdict
from vmsched.policies import lifecycle

__all__ = ["CycleContext", "Rooms"]


class Rooms(dict):
    """Each host's room, built the first time this cycle asks for it: most cycles touch few
    hosts, and building all of them each cycle was a tenth of a simulation's time."""

    def __init__(self, s: Cluster):
        super().__init__()
        self._s = s

    @property
    def _names(self) -> list[str]:
        return self._s.host_names()

    def __missing__(self, name: str) -> lifecycle.HostRoom:
        s = self._s
        used = s._room_used.get(name)       # kept as domains change: no walk of the host's domains
        room = self[name] = lifecycle.HostRoom(s.hosts[name], list(s.host_domains.get(name, ())),
                                               *(used if used is not None else (0, 0, 0)))
        return room

    def _all(self) -> None:
        for n in self._names:
            if not dict.__contains__(self, n):
                self[n]

    def __iter__(self):
        self._all()
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def __contains__(self, name) -> bool:
        return name in self._s.hosts

    def keys(self):
        self._all()
        return [n for n in self._names]

    def items(self):
        self._all()
        return [(n, dict.__getitem__(self, n)) for n in self._names]

    def values(self):
        self._all()
        return [dict.__getitem__(self, n) for n in self._names]

    def get(self, name, default=None):
        return self[name] if name in self._s.hosts else default


class CycleContext:
    """The working state of one cycle, handed to every phase in turn and thrown away when
    the plan is made: the plan so far (``actions``, ``pending``), what this cycle has already
    given away (``claimed``, ``reserved``, ``held_back``), each host's room, and the queue of
    jobs the matcher left waiting (``unplaced``), which the later phases work through."""

    def __init__(self, s: Cluster, now: float):
        self.s, self.now = s, now
        self.policy = s.policy
        self.actions: list[Action] = []
        self.pending: dict[str, Pending] = {}        # reasons of single jobs, given before the groups
        self.pending_groups: list[tuple[list[str], Pending]] = []   # jobs waiting for one reason
        self.pending_late: dict[str, Pending] = {}   # reasons given after the groups (they win)
        self.notes: dict[str, str] = {}
        self.rooms = Rooms(s)
        self.claimed: set[str] = set()   # domains this cycle already gave to a job or action
        # capacity waits, explained at the end: (shape, notes) -> the jobs, in queue order
        self.waits: dict[tuple[Shape, tuple[str, ...]], list[str]] = {}
        self.started_late: set[str] = set()  # waiting jobs that the second chance started
        self.requeued: dict[str, str] = {}  # jobs this cycle displaced, and by whom
        self.reserved: dict[str, int] = {}  # domain -> least class rank that may use it now
        self._reserved_order: tuple[int, list[str]] | None = None   # (least rank any takes, names sorted)
        self.held_back: set[str] = set()    # idle domains kept from over-share VOs this cycle
        self.opened = 0                     # domains opened by lifecycle so far in this cycle
        self.over_share: dict[str, str] = {}  # VO -> why its idle domains go to others this cycle
        self.owners = s._owners()               # owner group -> its hosts
        self.shared_notes: dict[tuple, tuple[str, ...]] = {}  # (VO, boot-limited) -> notes of its waits
        self.reclaim_failed: set = set()    # job shapes that found nothing to reclaim
        self.thaw_failed: set = set()       # job shapes that found no share-frozen domain to take back
        self.balance = None                 # (held, target, waiting, frozen) per share VO, as the cycle began
        self.default_rank = s.policy.preemption.rank(s.policy.preemption.default_class)
        self.boots_left = s.policy.lifecycle.max_concurrent_boots - s.booting_count()
        self.unplaced: list[int] = []       # matcher handles the match left waiting, in queue order
        # parts of the queue left waiting as a whole: (job ids, their shapes, shape -> its
        # wait group), see wait_rest
        self.rest: list[tuple[list, list, dict[Shape, list[str]]]] = []
        self._top: tuple[tuple[int, int] | None, dict[str, int]] = (None, {})   # see ranked_running_top

    def busy(self, name: str) -> bool:
        return bool(self.s.domain_jobs.get(name)) or name in self.claimed

    def vetoed(self, jid: str, dname: str) -> bool:
        """The site's filter plugin refuses this domain for this job (its reason is kept)."""
        flt = self.s.plugins.get("filter")
        if flt is None:
            return False
        s = self.s
        st = flt.filter(s.jobs[jid], s.domains[dname], s.hosts[s.domains[dname].host])
        if not st.ok:
            self.notes[jid] = st.reason
        return not st.ok

    def could_run_in(self, sh: Shape, d: Domain, host: Host, beside: list[Job]) -> bool:
        """A job of shape ``sh`` may use domain ``d`` (its image, the host's features) and
        has room there beside ``beside``."""
        return d.image in sh.images and sh.features <= host.features and self.fits_with(sh, d, beside)

    def fits_with(self, job: Job | Shape, d: Domain, running: list[Job]) -> bool:
        """Room for ``job`` (or any job of a shape) in ``d`` beside ``running``: cores, memory
        and every per-domain cap."""
        queues = self.policy.queues
        caps = [queues[o.queue].per_domain_jobs for o in running + [job] if o.queue in queues]
        return len(running) < min(caps, default=1) and \
            sum(o.cores for o in running) + job.cores <= d.cores and \
            sum(o.memory_mb for o in running) + job.memory_mb <= d.memory_mb

    def switch(self, hname: str, aname: str, bname: str, by: str | None, share_for: str | None) -> None:
        """Freeze active domain ``aname`` (its jobs with it) and resume ``bname`` on host
        ``hname``, thawing any work frozen in it."""
        s, now = self.s, self.now
        room = self.rooms[hname]
        a, b = s.domains[aname], s.domains[bname]
        inside = sorted(s.domain_jobs.get(aname, ()))
        self.actions.append(SuspendDomain(aname, by=by if inside else None, share_for=share_for))
        room.give(a)
        for vid in inside:
            s.jobs[vid] = attrs.evolve(s.jobs[vid], state=JobState.SUSPENDED)
            s._set_status(vid, STATE_SUSPENDED)
        s._mark_domain(aname, DomainState.SUSPENDED if inside else DomainState.OCCUPIED, now)
        room.take(b.cores, b.memory_mb)
        self.actions.append(ResumeDomain(bname))
        frozen = sorted(s.domain_jobs.get(bname, ()))
        s._mark_domain(bname, DomainState.RUNNING if frozen else DomainState.FREE, now)
        for jid in frozen:
            if s.status.get(jid) == STATE_SUSPENDED:
                s.set_job(attrs.evolve(s.jobs[jid], state=JobState.RUNNING))
        self.claimed.update((aname, bname))

    def rank(self, job: Job) -> int:
        return self.s.rank_of(job)

    def ranked_running_top(self) -> dict[str, int]:
        """Host -> the highest class rank running in its active domains, for the hosts where
        it is above the lowest class (the rest run only lowest-class work, if any). Kept
        until a domain or a job above the lowest class changes: share preemption asks it for
        every candidate host, and working it out each time was seconds at 10,000 hosts."""
        s = self.s
        key = (s._rooms_version, s._ranked_version)
        if self._top[0] != key:
            self._top = (key, self._ranked_running_top())
        return self._top[1]

    def _ranked_running_top(self) -> dict[str, int]:
        s = self.s
        top: dict[str, int] = {}
        for j in s._ranked_running:
            d = s.domains.get(s.jobs[j].domain)
            if d is not None and d.state.active:
                r = self.rank(s.jobs[j])
                if r > top.get(d.host, 0):
                    top[d.host] = r
        return top

    def host_frozen(self, hname: str, top: dict[str, int] | None = None) -> tuple[int, bool]:
        """The highest class rank of the work frozen on host ``hname`` (-1: none), and whether
        it sits in suspended domains while no job running there outranks all of it. A
        preemptor outranks everything it froze, so such work was frozen for fair share (or
        its preemptor has ended). Worked out from the state alone, so it survives a
        scheduler restart. ``top``: ``ranked_running_top()``, when the caller has it."""
        s = self.s
        f = s._frozen_hosts().get(hname)
        if f is None:
            return -1, False
        high, doms = f
        if top is None:
            top = self.ranked_running_top()
        return high, all(s.domains[n].state is DomainState.SUSPENDED for n in doms) and top.get(hname, 0) <= high

    def frozen_for_share(self, hname: str) -> bool:
        return self.host_frozen(hname)[1]

    def reserve(self, name: str, need: int) -> None:
        self.reserve_many(((name, need),))

    def reserve_many(self, needs) -> None:
        """Keep domains (name, least rank) for the classes that may use them; closed to the
        matcher in one call (thousands at a time on a grid with much suspended work)."""
        reserved, slot_h = self.reserved, self.s._slot_h
        slots = []
        for name, need in needs:
            reserved[name] = max(need, reserved.get(name, 0))
            slots.append(slot_h[name])
        self._reserved_order = None
        self.s.engine.set_slot_states(slots, SLOT_STARTING)

    def open_slot(self, h: int, job: Job, rank: int, held_back: bool = True) -> int | None:
        """Room already open to job ``h``: a domain the matcher would give it now (opened
        by an earlier phase or action), one kept for its class, or, with ``held_back`` and
        above the default class, an idle one held back by share (a job above the default
        class is never kept waiting by the share between images). None when it must
        wait, preempt or boot."""
        slot = self.s.engine.best_slot(h)
        if slot is None and self.reserved:
            slot = self.reserved_slot(h, job)
        if slot is None and held_back and self.held_back and rank > self.default_rank:
            slot = self.held_back_slot(h)
        return slot

    def reserved_slot(self, h: int, job: Job) -> int | None:
        s, rank = self.s, self.rank(job)
        order = self._reserved_order
        if order is None:
            order = self._reserved_order = (min(self.reserved.values()), sorted(self.reserved))
        if rank < order[0]:
            return None        # thousands of reserved domains, none for this class
        for name in order[1]:
            if rank < self.reserved[name] or name not in s.domains or not s.domains[name].state.active:
                continue
            if self.closed_fits(h, name):
                return s._slot_h[name]
        return None

    def held_back_slot(self, h: int) -> int | None:
        s = self.s
        for name in sorted(self.held_back):
            if name in self.claimed or name not in s.domains or s.domains[name].state is not DomainState.FREE:
                continue
            if self.closed_fits(h, name):
                self.held_back.discard(name)       # open again for good: this job takes it
                s.engine.set_slot_state(s._slot_h[name], SLOT_ACTIVE)
                return s._slot_h[name]
        return None

    def start(self, h: int, jid: str, slot: int) -> None:
        """Run job ``h`` in ``slot`` now: the action, the matcher and the state."""
        s = self.s
        dname = s._slot_name[slot]
        self.actions.append(RunJob(jid, dname))
        s.engine.start_job(h, slot, self.now)
        s._mark_running(jid, dname, self.now, via_engine=True)
        self.claimed.add(dname)

    def hosts_in_order(self, job: Job) -> list[str]:
        """The hosts where a domain could open for ``job``, in the order lifecycle prefers
        them: its owner's, then nobody's, then other owners', each by name."""
        s = self.s
        hosts = s.openable_hosts()         # by name
        if job.features:
            hosts = [n for n in hosts if job.features <= s.hosts[n].features]
        if self.owners:
            def order(n: str) -> tuple:
                owner = s.hosts[n].owner
                owned = owner is not None and owner in (job.group, job.vo)
                return (not owned, owner is not None and not owned)
            hosts = sorted(hosts, key=order)     # stable: by name within each
        return hosts

    def closed_fits(self, h: int, name: str) -> bool:
        """Whether job ``h`` would take domain ``name``, closed for this cycle, were it open:
        the matcher's own best fit decides, and the domain stays closed."""
        slot = self.s._slot_h[name]
        self.s.engine.set_slot_state(slot, SLOT_ACTIVE)
        found = self.s.engine.best_slot(h)
        self.s.engine.set_slot_state(slot, SLOT_STARTING)
        return found == slot

    def apply_placement(self, h: int, jid: str, job: Job, placement: lifecycle.Placement) -> None:
        s, now = self.s, self.now
        for a in placement.actions:
            self.actions.append(a)
            if hasattr(a, "domain"):
                self.claimed.add(a.domain)
            if a.verb == "suspend-domain":
                s._mark_domain(a.domain, DomainState.OCCUPIED, now)
            elif a.verb == "shutdown":
                s._mark_domain(a.domain, DomainState.SHUTTING_DOWN, now)
                self.claimed.add(a.domain)
            elif a.verb == "resume-domain":
                s._mark_domain(a.domain, DomainState.FREE, now)
        if placement.new is not None:
            self.boots_left -= 1
            s.set_domain(placement.new)
        self.claimed.add(placement.domain)
        if placement.ready:
            self.actions.append(RunJob(jid, placement.domain))
            s._mark_running(jid, placement.domain, now, via_engine=False)
        elif self.policy.lifecycle.bind_on_boot:
            self.actions.append(BindJob(jid, placement.domain))
            s.remove_job(jid)
            s.set_job(attrs.evolve(job, domain=placement.domain))
            self.pending[jid] = Pending(Verdict.NOT_NOW, f"bound to domain {placement.domain}, booting for it")
        else:
            self.pending[jid] = Pending(Verdict.NOT_NOW, f"booting domain {placement.domain} for it")

    def wait_rest(self, handles: list[int], shapes: list[Shape], groups: dict[Shape, list[str]]) -> None:
        """A part of the queue (matcher handles, in order, and their shapes) waits, each job
        in its shape's group (``groups``; every shape in ``shapes`` has one). Kept as the
        job ids the handles name now (one C-speed map) instead of a look at each job; the
        reasons phase turns them into reasons only when something reads them. Every job in
        the queue placement works through is pending: the phases before it take a job out
        of that queue when they start, bind or requeue it."""
        self.rest.append((list(map(self.s._job_name.get, handles)), shapes, groups))

    def wait(self, jid: str, sh: Shape, notes: tuple[str, ...]) -> list[str]:
        group = self.waits.get((sh, notes))
        if group is None:
            group = self.waits[(sh, notes)] = []
        group.append(jid)
        return group
