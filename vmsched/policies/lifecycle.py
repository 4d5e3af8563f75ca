"""VM lifecycle: which domains to activate, boot, suspend or shut down this cycle.

The rules a site admin asked for, in the order they apply:

* a host holds at most ``max_active`` active domains (1 in Magrathea) and never more active
  cores or memory than it has; booting and resuming domains count as active;
* a job that found no free domain first tries an idle inactive domain of its image (activate
  it, switching out an idle active one if the host is at ``max_active``), then a new domain
  (CERN's dynamic instantiation) on a host with room, preferring the job's owner's hosts, then
  hosts with the image cached, then the tightest fit;
* the new domain's flavor: the smallest fixed one the job fits, else whole-node "hard" where
  the host can be emptied for it, else "soft" from what the host has left (WNoDeS); a job
  that named a flavor gets that one only, and is activated only into a domain of it;
* a flavor is booted only where its disk fits what the host's domains leave (hosts whose
  disk is known);
* at most ``max_concurrent_boots`` boots are under way at once;
* a domain idle past ``idle_shutdown`` is shut down, except those an image's warm pool keeps;
* a domain already booting for a job's image is waited for, not booted twice.

:class:`HostRoom` is the per-cycle ledger of what each host has left; every action planned
updates it, so two jobs never count on the same cores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from vmsched.model import Domain, DomainState, Flavor, Host, Job
from vmsched.plan import Action, BootDomain, ResumeDomain, ShutdownDomain, SuspendDomain
from vmsched.policyfile import LifecyclePolicy

__all__ = ["HostRoom", "flavor_choices", "choose_flavor", "Placement", "plan_placement", "plan_idle"]

_ACTIVE_LIKE = (DomainState.FREE, DomainState.RUNNING, DomainState.BOOTING)


@attrs.define(slots=True)
class HostRoom:
    """What one host has left this cycle, updated by every planned action."""

    host: Host
    domains: list[str]
    active: int = 0
    cores: int = 0
    memory: int = 0

    @classmethod
    def build(cls, host: Host, names: Iterable[str], domains: Mapping[str, Domain]) -> "HostRoom":
        room = cls(host, list(names))
        for n in room.domains:
            d = domains[n]
            if d.state in _ACTIVE_LIKE:
                room.active += 1
                room.cores += d.cores
                room.memory += d.memory_mb
        return room

    def fits(self, cores: int, memory: int, freed: Iterable[Domain] = ()) -> bool:
        freed = list(freed)
        active = self.active - len(freed)
        c = self.cores - sum(d.cores for d in freed)
        m = self.memory - sum(d.memory_mb for d in freed)
        return active < self.host.max_active and c + cores <= self.host.cores and m + memory <= self.host.memory_mb

    def take(self, cores: int, memory: int) -> None:
        self.active += 1
        self.cores += cores
        self.memory += memory

    def give(self, d: Domain) -> None:
        self.active -= 1
        self.cores -= d.cores
        self.memory -= d.memory_mb


def flavor_choices(job: Job, flavors: Mapping[str, Flavor], host: Host) -> tuple[Flavor, ...]:
    """The flavors worth trying for ``job`` on a host of this size, best first: the
    smallest fixed flavor the job fits; else every whole-node flavor that could hold it on
    the empty host, "hard" before "soft", each by name.

    Which whole-node flavor a host gets depends on what it is running, so the caller tries
    them in this order against the host's room: "hard" (the whole host, exclusive) where the
    host can be emptied for it, that is where no work runs in its active domains; else
    "soft" (what the host has left, at least ``min_cores``). On an empty host both would
    give the same cores, and hard wins: the admin reads an exclusive whole node, which it is.

    A job that names a flavor gets that one or none: it asked for that VM, not for any VM
    that would hold it.
    """
    if job.flavor is not None:
        f = flavors.get(job.flavor)
        return (f,) if f is not None and _holds(f, job, host) else ()
    fixed = sorted((f for f in flavors.values() if f.whole_node is None),
                   key=lambda f: (f.cores, f.memory_mb, f.name))
    for f in fixed:
        if _holds(f, job, host):
            return (f,)
    return tuple(f for f in sorted((f for f in flavors.values() if f.whole_node),
                                   key=lambda f: (f.whole_node != "hard", f.name)) if _holds(f, job, host))


def _holds(f: Flavor, job: Job, host: Host) -> bool:
    """A domain of flavor ``f`` on ``host``, when nothing else holds it, can hold ``job``."""
    c, m = f.size_on(host)
    return c >= job.cores and m >= job.memory_mb and c <= host.cores and m <= host.memory_mb and c >= f.min_cores


def choose_flavor(job: Job, flavors: Mapping[str, Flavor], host: Host) -> Flavor | None:
    """The flavor ``job`` gets on ``host`` when nothing else holds it (see :func:`flavor_choices`)."""
    choices = flavor_choices(job, flavors, host)
    return choices[0] if choices else None


@attrs.frozen(slots=True)
class Placement:
    """How lifecycle will make room for one job: the actions, and the domain it will run in."""

    actions: tuple[Action, ...]
    domain: str
    ready: bool      # True: the job can run in ``domain`` right after ``actions`` (activation)
    new: Domain | None = None


def plan_placement(job: Job, images: Iterable[str], rooms: Mapping[str, HostRoom], domains: Mapping[str, Domain],
                   busy: Callable[[str], bool], flavors: Mapping[str, Flavor],
                   policy: LifecyclePolicy, boots_left: int, now: float,
                   reclaimable: Callable[[Domain], bool] = lambda d: True,
                   inactive: Mapping[str, Iterable[str]] | None = None,
                   hosts: Sequence[str] | None = None,
                   host_domains: Mapping[str, Sequence[str]] | None = None) -> Placement | None:
    """Activation of an idle inactive domain, else a boot; None when neither is possible.

    ``hosts``, when given, are the only hosts worth a look (those with room for an active
    domain, or an idle one to switch out, and the job's features), in the order activation
    prefers them (the job's owner's, then nobody's, then others', each by name): activation
    takes the first that works, looking at each host's domains (``host_domains``) before
    building its room. ``inactive`` lists the idle inactive domains per image, for callers
    without ``hosts``."""
    look = _Look(job, tuple(images), rooms, domains, busy, reclaimable)
    placement = _activate(look, _activation_candidates(look, inactive, hosts, host_domains))
    if placement is not None:
        return placement
    if not policy.dynamic_boot or boots_left <= 0:
        return None
    best = _best_boot(look, flavors, policy, rooms.keys() if hosts is None else hosts)
    return None if best is None else _boot(look, best, now)


@attrs.frozen(slots=True)
class _Look:
    """What one placement looks at: the job, its images and the cycle's view of domains."""

    job: Job
    images: tuple[str, ...]
    rooms: Mapping[str, HostRoom]
    domains: Mapping[str, Domain]
    busy: Callable[[str], bool]
    reclaimable: Callable[[Domain], bool]

    def idle_active(self, r: HostRoom) -> list[Domain]:
        domains = self.domains
        return [domains[n] for n in r.domains if domains[n].state.active and not self.busy(n)
                and self.reclaimable(domains[n])]

    def room_with_switch(self, r: HostRoom, cores: int, memory: int) -> list[Domain] | None:
        """The idle active domains to switch out so that a domain of this size fits (none
        when it fits as it is), or None when even that is not enough."""
        if r.fits(cores, memory):
            return []
        freed: list[Domain] = []
        for d in sorted(self.idle_active(r), key=lambda d: (d.cores, d.name)):
            freed.append(d)
            if r.fits(cores, memory, freed):
                return freed
        return None

    def owned(self, h: Host) -> bool:
        return h.owner is not None and h.owner in (self.job.group, self.job.vo)

    def order(self, hname: str) -> tuple:
        h = self.rooms[hname].host
        owned = self.owned(h)
        return (not owned, h.owner is not None and not owned, hname)

    def could_activate(self, n: str) -> bool:
        d = self.domains.get(n)
        return d is not None and self.could_take(d)

    def could_take(self, d: Domain) -> bool:
        """An idle inactive domain of a usable image (and of the job's flavor, if it named
        one), big enough for the job."""
        job = self.job
        return d.image in self.images and d.state in (DomainState.OCCUPIED, DomainState.SUSPENDED) \
            and not self.busy(d.name) and d.cores >= job.cores and d.memory_mb >= job.memory_mb \
            and (job.flavor is None or d.flavor == job.flavor)


def _activation_candidates(look: _Look, inactive: Mapping[str, Iterable[str]] | None,
                           hosts: Sequence[str] | None,
                           host_domains: Mapping[str, Sequence[str]] | None) -> Iterable[str]:
    """The hosts where an idle inactive domain of a usable image could be activated, in
    the order activation prefers them (``inactive``, when given, lists such domains per
    image, so only their hosts are looked at)."""
    rooms, domains = look.rooms, look.domains
    if hosts is not None:
        # Lazily, in order: the first host that works is the answer, and a host whose
        # domains could not take the job costs no room.
        listed = host_domains if host_domains is not None else {}
        return (h for h in hosts if any(look.could_activate(n) for n in listed.get(h) or rooms[h].domains))
    if inactive is not None:
        # Only hosts with a domain that could take the job, checked before any room is built.
        return sorted({domains[n].host for img in look.images for n in inactive.get(img, ())
                       if look.could_activate(n) and domains[n].host in rooms}, key=look.order)
    return sorted(rooms, key=look.order)


def _activate(look: _Look, candidates: Iterable[str]) -> Placement | None:
    """Resume the first idle inactive domain of a usable image that fits, switching out
    idle active ones on its host when the host has no room for it otherwise."""
    for hname in candidates:
        r = look.rooms[hname]
        if not r.host.up:
            continue
        for n in r.domains:
            d = look.domains[n]
            if not look.could_take(d):
                continue
            freed = look.room_with_switch(r, d.cores, d.memory_mb)
            if freed is None:
                continue
            acts: list[Action] = []
            for f in freed:
                acts.append(SuspendDomain(f.name))
                r.give(f)
            r.take(d.cores, d.memory_mb)
            acts.append(ResumeDomain(d.name))
            return Placement(tuple(acts), d.name, True)
    return None


def _best_boot(look: _Look, flavors: Mapping[str, Flavor], policy: LifecyclePolicy,
               hosts: Iterable[str]) -> tuple | None:
    """The best host, image and flavor for a new domain: the job's owner's hosts, then
    nobody's, then hosts with the image cached, then the tightest fit."""
    job, domains, busy = look.job, look.domains, look.busy
    best = None
    # The flavors worth trying depend only on the job and the host's size: a site has few
    # host sizes and many hosts, and choosing (which sorts the flavors) once per host was
    # half a boot-heavy replay's time.
    choices_for: dict[tuple[int, int], tuple[Flavor, ...]] = {}
    for hname in hosts:
        r = look.rooms[hname]
        h = r.host
        if not h.up:
            continue
        size = (h.cores, h.memory_mb)
        choices = choices_for.get(size)
        if choices is None:
            choices = choices_for[size] = flavor_choices(job, flavors, h)
        if not choices:
            continue
        spare = [domains[n] for n in r.domains if domains[n].state in
                 (DomainState.DOWN, DomainState.OCCUPIED, DomainState.SUSPENDED) and not busy(n)
                 and look.reclaimable(domains[n])]
        need_slot = len(r.domains) >= h.max_domains
        if need_slot and not spare:
            continue
        disk = None if h.disk_gb is None else \
            h.disk_gb - _disk_held(r, look.domains, flavors, spare[0].name if need_slot else None)
        fit = _first_fit(look, r, choices, disk)
        if fit is None:
            continue
        flavor, cores, memory, freed = fit
        owned = look.owned(h)
        for image in look.images:       # the room a boot needs is the same whatever the image
            cached = image in h.cached_images
            key = (not owned, h.owner is not None and not owned, not (cached or not policy.prefer_cached),
                   h.cores - r.cores - cores + sum(f.cores for f in freed), len(freed), hname, image)
            if best is None or key < best[0]:
                best = (key, hname, image, flavor, cores, memory, freed, spare[0] if need_slot else None)
    return best


def _disk_held(r: HostRoom, domains: Mapping[str, Domain], flavors: Mapping[str, Flavor],
               evicted: str | None) -> int:
    """GB of disk the host's domains hold, whatever their state (a suspended or shut-off
    domain keeps its disk), but for the one the boot will shut down. A domain of a flavor
    the policy does not know holds none that vmsched can tell."""
    held = 0
    for n in r.domains:
        d = domains.get(n)
        f = flavors.get(d.flavor) if d is not None and n != evicted else None
        if f is not None:
            held += f.disk_for(d.cores)
    return held


def _first_fit(look: _Look, r: HostRoom, choices: tuple[Flavor, ...], disk: int | None) -> tuple | None:
    """The first of ``choices`` that holds the job on this host as its room stands (idle
    active domains switched out if need be) and whose disk fits what the host has left
    (``disk`` GB; None: unknown, unchecked): (flavor, cores, memory, domains to switch out)."""
    job = look.job
    for flavor in choices:
        cores, memory = flavor.size_in(r.host, r.cores, r.memory)
        if cores < job.cores or memory < job.memory_mb:
            continue
        if disk is not None and flavor.disk_for(cores) > disk:
            continue
        freed = look.room_with_switch(r, cores, memory)
        if freed is not None:
            return flavor, cores, memory, freed
    return None


def _boot(look: _Look, best: tuple, now: float) -> Placement:
    """The actions of the chosen boot, with the host's room updated for them: a spare
    domain shut down when the host has no slot left, idle ones switched out, the boot."""
    _, hname, image, flavor, cores, memory, freed, evict = best
    r = look.rooms[hname]
    acts: list[Action] = []
    if evict is not None:
        acts.append(ShutdownDomain(evict.name))
        r.domains.remove(evict.name)
    for f in freed:
        acts.append(SuspendDomain(f.name))
        r.give(f)
    name = _new_name(hname, image, look.domains, r.domains)
    r.take(cores, memory)
    r.domains.append(name)
    acts.append(BootDomain(name, hname, image, flavor.name, cores, memory))
    new = Domain(name, hname, image, flavor.name, DomainState.BOOTING, cores, memory, since=now)
    return Placement(tuple(acts), name, False, new)


def _new_name(host: str, image: str, domains: Mapping[str, Domain], local: list[str]) -> str:
    k = 1
    while f"{host}-{image}-{k}" in domains or f"{host}-{image}-{k}" in local:
        k += 1
    return f"{host}-{image}-{k}"


def plan_idle(rooms: Mapping[str, HostRoom], domains: Mapping[str, Domain], busy: Callable[[str], bool],
              policy: LifecyclePolicy, now: float, keep: set[str]) -> list[Action]:
    """Shut down domains idle past the timeout, keeping each image's warm pool."""
    warm = dict(policy.warm_pool)
    pool: dict[str, int] = {}
    for d in sorted(domains.values(), key=lambda d: d.name):
        if d.state in (DomainState.FREE, DomainState.BOOTING) and not busy(d.name):
            pool[d.image] = pool.get(d.image, 0) + 1
    acts: list[Action] = []
    for d in sorted(domains.values(), key=lambda d: (d.since, d.name)):
        if d.name in keep or busy(d.name) or d.state not in (DomainState.FREE, DomainState.OCCUPIED):
            continue
        if now - d.since < policy.idle_shutdown_s:
            continue
        if d.state is DomainState.FREE and pool.get(d.image, 0) <= warm.get(d.image, 0):
            continue
        if d.state is DomainState.FREE:
            pool[d.image] -= 1
            room = rooms.get(d.host)
            if room is not None:
                room.give(d)
        acts.append(ShutdownDomain(d.name))
    return acts
