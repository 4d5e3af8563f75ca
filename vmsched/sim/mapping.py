"""From trace records to vmsched jobs, by the policy's ``[trace]`` mapping.

Traces were logged by batch systems without VMs, VOs or images, and often without what a
scheduler needs (METACENTRUM-2009-2 has no requested walltime at all). The mapping says
what stands in for each missing piece; :class:`Mapper` applies it and *counts* every
stand-in, so the report can list each assumption with the number of jobs it touched. A
record that cannot be replayed (no run time) is kept as :class:`Unrunnable` with its reason,
never dropped silently.

Host sets come from the policy's ``[[hosts]]``, or from ``--hosts`` / ``[trace] hosts``:
an Alea ``.machines`` file, ``bundled:wagap-2013``, or a list like ``96x8:16gb,3x32:64gb``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from vmsched import bounded
from vmsched.bounded import MAX_CORES, MAX_HOSTS
from vmsched.errors import show
from vmsched.model import Host, Job, QueueKind, parse_size_mb
from vmsched.policyfile import Policy, PolicyError, TraceMapping, TraceRule
from vmsched.sim.swf import TraceError, TraceJob, bundled_machines, read_machines

__all__ = ["SimJob", "Unrunnable", "Mapper", "resolve_hosts", "hosts_from_spec", "policy_with_hosts",
           "largest_domain", "DEFAULT_MAPPING", "Assumption"]

DEFAULT_MAPPING = TraceMapping()


@attrs.define(slots=True, eq=False)
class SimJob:
    """One trace job as the simulator replays it.

    ``job`` is the vmsched Job as first queued; ``arrival`` is seconds from the trace's
    first submit; ``work`` is how long it must run (the trace run time, cut at the
    walltime: a job that ran longer is killed at its walltime, ``killed``).
    """

    job: Job
    trace_id: int
    arrival: float
    run: float
    work: float
    killed: bool
    klass: str
    interactive: bool
    # -- filled in by the simulation
    state: str = "future"          # future, queued, running, suspended, done, never
    domain: str | None = None
    remaining: float = 0.0
    clock_from: float = 0.0        # when the current stretch of running began (after any resume delay)
    busy_from: float = 0.0         # when the job took its cores for the current stretch
    first_start: float | None = None
    end: float | None = None
    executed: float = 0.0
    preemptions: int = 0
    requeues: int = 0
    lost_work: float = 0.0
    token: int = 0
    load_at_arrival: float = 0.0
    rank: int = -1                 # place in the replay's arrival order


@attrs.frozen(slots=True)
class Unrunnable:
    """A trace job that never ran in the simulation, and why."""

    trace_id: int
    job_id: str
    vo: str
    klass: str
    reason: str
    stage: str      # "mapping" (could not be replayed), "scheduler" (verdict never), "end" (left waiting)


Assumption = tuple[str, int]


def _ceil_mb(kb: float) -> int:
    return max(0, int(math.ceil(kb / 1024.0)))


def largest_domain(policy: Policy, hosts: Sequence[Host], templates, images: Iterable[str]) -> tuple[int, int]:
    """The largest (cores, memory) domain any host could give a job of these images.

    With dynamic boot, that is what the policy's flavors yield on the biggest host;
    without, the biggest predefined domain of one of the images.
    """
    images = set(images)
    best_c = best_m = 0
    if policy.lifecycle.dynamic_boot:
        for h in hosts:
            for f in policy.flavors.values():
                c, m = f.size_on(h)
                if f.whole_node is None and (c > h.cores or m > h.memory_mb):
                    continue
                best_c, best_m = max(best_c, c), max(best_m, m)
    else:
        by_host = {h.name: h for h in hosts}
        for host, image, flavor, _count in templates:
            if image in images and host in by_host and flavor in policy.flavors:
                c, m = policy.flavors[flavor].size_on(by_host[host])
                best_c, best_m = max(best_c, c), max(best_m, m)
    return best_c, best_m


class _SeenIds:
    """Which trace job ids were seen, in about a bit per id: a replay must not hold a
    record per job of the trace (a million-job log would keep a million strings). Ids are
    SWF's whole numbers, nearly always 1..N; a bitmap covers ids up to ``_BITMAP_IDS`` and
    a set the rare larger ones. Only repeated ids get a dict entry (their count)."""

    _BITMAP_IDS = 1 << 26          # 8 MB of bitmap at the very most

    def __init__(self):
        self._bits = bytearray()
        self._big: set[int] = set()
        self._repeats: dict[int, int] = {}

    def add(self, job_id: int) -> int:
        """Record one more occurrence of ``job_id``; returns how many there have been."""
        if job_id < self._BITMAP_IDS:
            byte, bit = job_id >> 3, 1 << (job_id & 7)
            if byte >= len(self._bits):
                self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
            seen = self._bits[byte] & bit
            self._bits[byte] |= bit
        else:
            seen = job_id in self._big
            self._big.add(job_id)
        if not seen:
            return 1
        n = self._repeats[job_id] = self._repeats.get(job_id, 1) + 1
        return n


_CACHE_KEEP = 65_536
_JOB_FIELDS = tuple(a.name for a in Job.__attrs_attrs__)
_SUBMIT = attrs.fields(Job).submit_time


def _valid_submit_time(t: float) -> bool:
    """Whether Job's own validator takes ``t`` as a submit time (whatever bounds the model sets)."""
    try:
        _SUBMIT.validator(None, _SUBMIT, t)
    except (ValueError, TypeError):
        return False
    return True


def _job_like(proto: Job, job_id: str, submit_time: float) -> Job:
    """``proto`` with another id and submit time, without running its validators again:
    the rest was validated when ``proto`` was built, and the mapper builds ids and times
    that are valid (checked by the caller). Mapping is a third of a replay's reading."""
    new = object.__new__(Job)
    for name in _JOB_FIELDS:
        object.__setattr__(new, name, getattr(proto, name))
    object.__setattr__(new, "id", job_id)
    object.__setattr__(new, "submit_time", submit_time)
    return new


class Mapper:
    """Maps trace jobs to :class:`SimJob` (or :class:`Unrunnable`) and counts assumptions.

    Mapping runs twice per replay (a streaming replay reads the trace twice, see
    :mod:`vmsched.sim.stream`), so what repeats across jobs is worked out once: the map
    rules' targets per distinct (user, group, partition, executable, queue) and a
    validated job, with its class, per distinct job shape."""

    def __init__(self, policy: Policy, hosts: Sequence[Host], templates=(), extended: bool = False):
        self.policy = policy
        self.m = policy.trace or DEFAULT_MAPPING
        self.hosts = tuple(hosts)
        self.templates = tuple(templates)
        self.extended = extended
        self.counts: Counter = Counter()
        self._largest: dict[tuple, tuple[int, int]] = {}
        self._seen = _SeenIds()
        self._targets_cache: dict[tuple, dict] = {}
        self._shapes: dict[tuple, tuple[Job, str]] = {}   # job shape -> (a validated job of it, its class)
        self.origin: float | None = None
        self.last_id: str | None = None
        self.default_queue = self.m.default_queue or policy.default_queue or \
            (sorted(policy.queues)[0] if policy.queues else None)
        m = self.m
        whose = "[trace] default_queue" if m.default_queue else "the policy's default queue"
        self._default_queue_note = f"queue: no map rule gave exec_queue, {whose} {self.default_queue!r} used"
        self._per_core_note = f"memory: {m.memory_mb_per_core} MB per core"

    def note(self, what: str, n: int = 1) -> None:
        self.counts[what] += n

    def _targets(self, tj: TraceJob) -> dict:
        """What the map rules give a job (first matching rule per target); read-only."""
        key = (tj.uid, tj.gid, tj.partition, tj.app, tj.queue, tj.queue_name)
        out = self._targets_cache.get(key)
        if out is not None:
            return out
        out = {}
        for rule in self.m.rules:
            if rule.matches(*key):
                for k in TraceRule.TARGETS:
                    v = getattr(rule, k)
                    if v is not None and k not in out:
                        out[k] = v
        if len(self._targets_cache) >= _CACHE_KEEP:
            self._targets_cache.clear()
        self._targets_cache[key] = out
        return out

    def _largest_for(self, image: str | None, vo: str, group: str) -> tuple[int, int]:
        """The largest domain for a job of this image (or, with none named, its VO's)."""
        key = (image, vo, group)
        got = self._largest.get(key)
        if got is None:
            images = (image,) if image else self.policy.images_for(vo, group)
            if len(self._largest) >= _CACHE_KEEP:
                self._largest.clear()
            got = self._largest[key] = largest_domain(self.policy, self.hosts, self.templates, images)
        return got

    def map(self, tj: TraceJob, build: bool = True) -> SimJob | Unrunnable:
        """The job as replayed, or why it cannot be. ``build=False`` is for counting (the
        index pass): a job of a shape seen before is then that shape's first job, with
        another id and submit time (``last_id`` is always the job's own id)."""
        pol, m = self.policy, self.m
        t = self._targets(tj)
        vo = t.get("vo")
        if vo is None:
            vo = m.default_vo
            self.note(f"VO: no map rule gave one, default_vo {m.default_vo!r} used")
        jid = f"j{tj.job_id}"
        k = self._seen.add(tj.job_id)
        if k > 1:
            jid = f"{jid}.{k}"
            self.note("job id repeated in the trace: renamed with a .N suffix")
        self.last_id = jid
        klass_pre = t.get("klass")
        if tj.submit is None:
            return Unrunnable(tj.job_id, jid, vo, klass_pre or pol.preemption.default_class,
                              "trace has no submit time (-1)", "mapping")
        if tj.run is None:
            return Unrunnable(tj.job_id, jid, vo, klass_pre or pol.preemption.default_class,
                              "trace has no run time (-1)", "mapping")
        if self.origin is None:
            self.origin = float(tj.submit)
        arrival = float(tj.submit) - self.origin
        if arrival < 0:
            self.note("submit time earlier than the first job's: arrival moved to time 0")
            arrival = 0.0
        user = f"u{tj.uid}" if tj.uid is not None else "u-unknown"
        if tj.uid is None:
            self.note("user id unknown (-1): user 'u-unknown'")
        group = f"g{tj.gid}" if tj.gid is not None else vo
        queue = t.get("exec_queue") or self.default_queue
        if queue is None:
            return Unrunnable(tj.job_id, jid, vo, klass_pre or pol.preemption.default_class,
                              "no execution queue: no map rule gives exec_queue and the policy has no queues",
                              "mapping")
        if t.get("exec_queue") is None:
            self.note(self._default_queue_note)
        image = t.get("image") or m.default_image

        # -- cores
        multi = False
        if tj.allocated_procs:
            cores = tj.allocated_procs
        elif tj.requested_procs:
            cores = tj.requested_procs
            self.note("cores: allocated processors unknown, requested processors used")
        elif tj.nodespec is not None:
            cores = tj.nodespec.procs
            self.note("cores: processor counts unknown, the nodespec's used")
        else:
            cores = 1
            self.note("cores: no processor count in the trace, 1 assumed")
        if tj.nodespec is not None and tj.nodespec.nodes > 1:
            multi = True
        elif tj.allocated_nodes and len(set(tj.allocated_nodes)) > 1:
            multi = True
        if multi:
            self.note("multi-node job run in one domain with all its processors as cores")
        if tj.extended and tj.nodespec is None:
            self.note("nodespec not parseable (e.g. ppn=1.5): ignored, allocated processors used")
        flavor = t.get("flavor")
        memory = None
        if flavor is not None:
            f = pol.flavors[flavor]
            self.note(f"flavor: map rule asks for flavor {flavor!r} (the job runs only in domains of it)")
            if f.whole_node is None:
                cores, memory = max(f.cores, 1), f.memory_mb
                self.note(f"size: map rule flavor {flavor!r} gives {f.cores} cores, {f.memory_mb} MB")
        # -- memory
        if memory is None:
            memory = self._memory(tj, cores)
        # -- features
        feats = frozenset()
        if m.features and tj.nodespec is not None:
            feats = frozenset(p for p in tj.nodespec.properties if p in m.features)
            if feats:
                # (the Job is built without them, as it always was: said so, not claimed kept)
                self.note("features: the nodespec asks for host properties; not enforced, the job may run on "
                          "any host")
        # -- oversize
        big_c, big_m = self._largest_for(image, vo, group)
        klass_default = klass_pre or pol.preemption.default_class
        if big_c and (cores > big_c or memory > big_m):
            if m.oversize == "refuse":
                return Unrunnable(tj.job_id, jid, vo, klass_default,
                                  f"asks for {cores} cores / {memory} MB, the largest domain is {big_c} cores / "
                                  f"{big_m} MB (oversize = \"refuse\")", "mapping")
            if cores > big_c:
                self.note(f"cores capped to the largest domain ({big_c})")
                self.counts["_capped_core_seconds"] += (cores - big_c) * tj.run
                cores = big_c
            if memory > big_m:
                self.note("memory capped to the largest domain")
                memory = big_m
        # -- walltime
        self.note("arrival: the trace's submit time, shifted to start at 0; run time: the trace's")
        run = float(tj.run)
        wall = self._walltime(tj, t, queue, run)
        work = min(run, wall)
        killed = run > wall
        if killed:
            self.note("ran longer than its stand-in walltime: killed at the walltime")
        interactive = False
        below = t.get("interactive_below_s")
        if below is not None and run < below:
            interactive = True
            self.note("interactive: run time below the map rule's interactive_below")
        cores, memory, wall_s = max(1, int(cores)), int(memory), max(1, int(math.ceil(wall)))
        shape = (user, group, vo, queue, cores, memory, wall_s, image, klass_pre, interactive, flavor)
        known = self._shapes.get(shape)
        if known is not None and _valid_submit_time(arrival):
            job, klass = _job_like(known[0], jid, arrival) if build else known[0], known[1]
        else:
            try:
                job = Job(jid, user, group, vo, queue, cores, memory, wall_s, arrival, image=image, klass=klass_pre,
                          interactive=interactive, flavor=flavor)
            except (ValueError, TypeError) as e:
                return Unrunnable(tj.job_id, jid, vo, klass_default, f"cannot be a vmsched job: {e}", "mapping")
            klass = pol.preemption.class_of(job)
            if len(self._shapes) >= _CACHE_KEEP:
                self._shapes.clear()
            self._shapes[shape] = (job, klass)
        return SimJob(job, tj.job_id, arrival, run, work, killed, klass, interactive)

    def _memory(self, tj: TraceJob, cores: int) -> int:
        m = self.m
        per_core = cores * m.memory_mb_per_core
        if m.memory == "used":
            if tj.used_mem is not None and tj.used_mem > 0:
                self.note("memory: the trace's used memory (field 7) as the request")
                return _ceil_mb(tj.used_mem * cores)
            self.note(f"memory: used memory unknown, {m.memory_mb_per_core} MB per core")
            return per_core
        if m.memory == "requested":
            if tj.requested_mem is not None and tj.requested_mem > 0:
                self.note("memory: the trace's requested memory (field 10)")
                if tj.extended:
                    return max(1, int(math.ceil(tj.requested_mem / 1048576.0)))
                return _ceil_mb(tj.requested_mem * cores)
            self.note(f"memory: requested memory unknown, {m.memory_mb_per_core} MB per core")
            return per_core
        self.note(self._per_core_note)
        return per_core

    def _walltime(self, tj: TraceJob, t: dict, queue: str, run: float) -> float:
        """The stand-in walltime; notes exactly one walltime assumption for the job."""
        m = self.m
        if m.walltime == "oracle":
            self.note("walltime: the job's real run time (oracle estimate)")
            return max(1.0, run)
        why = "walltime: "
        if m.walltime == "requested":
            if tj.requested_time:
                self.note("walltime: the trace's requested time")
                return float(tj.requested_time)
            why = "walltime: requested time unknown (-1), "
        if t.get("walltime_s") is not None:
            self.note(why + "the map rule's walltime")
            return float(t["walltime_s"])
        q = self.policy.queues.get(queue)
        if q is not None and q.kind is QueueKind.EXECUTION and q.resources_max.walltime_s:
            self.note(why + "the queue's limit (resources_max.walltime)")
            return float(q.resources_max.walltime_s)
        self.note(why + f"no rule or queue limit, default_walltime {m.default_walltime_s:.0f} s")
        return float(m.default_walltime_s)

    def assumptions(self) -> list[Assumption]:
        return sorted(((k, v) for k, v in self.counts.items() if not k.startswith("_")), key=lambda kv: (-kv[1], kv[0]))


# --------------------------------------------------------------------------- hosts

_SPEC_RE = re.compile(r"\s*([0-9]+)\s*[xX*]\s*([0-9]+)\s*(?::\s*([0-9]+\s*[kKmMgGtT]?[bB]?))?\s*")


def hosts_from_spec(spec: str, template: Host | None = None, where: str = "--hosts") -> tuple[Host, ...]:
    """``96x8:16gb,3x32:64gb``: COUNTxCORES[:MEMORY] groups (memory default 2 GB per core)."""
    hosts = []
    for gi, part in enumerate(spec.split(","), 1):
        mm = _SPEC_RE.fullmatch(part)
        if not mm:
            raise PolicyError([f"{where}: {show(part.strip())}: expected COUNTxCORES[:MEMORY] like 96x8:16gb, "
                               "an Alea .machines file, or bundled:wagap-2013"])
        try:
            count = bounded.whole(mm.group(1), 1, MAX_HOSTS - len(hosts), "a count of hosts")
            cores = bounded.whole(mm.group(2), 1, MAX_CORES, "cores")
            memory = parse_size_mb(mm.group(3)) if mm.group(3) else cores * 2048
        except ValueError as e:
            raise PolicyError([f"{where}: {show(part.strip())}: {e}"]) from None
        for k in range(1, count + 1):
            hosts.append(_host_like(template, f"h{gi}-{k:03d}", cores, memory, frozenset()))
    return tuple(hosts)


def _host_like(template: Host | None, name: str, cores: int, memory: int, features: frozenset) -> Host:
    if template is None:
        return Host(name, cores, memory, features=features)
    return attrs.evolve(template, name=name, cores=cores, memory_mb=memory,
                        features=template.features | features, owner=None)


def resolve_hosts(policy: Policy, spec: str | None, base_dir: str | None = None) -> tuple[tuple[Host, ...], str]:
    """The simulation's hosts: ``spec`` (``--hosts``), else ``[trace] hosts``, else the policy's.

    Hosts built from a spec copy every attribute but size and name (max_active, max_domains,
    cached images, per-host domains) from the policy's first host, so the policy's layout
    holds on the new sizes. Returns (hosts, a description for the report).
    """
    where = "--hosts"
    if spec is None and policy.trace is not None and policy.trace.hosts:
        spec = policy.trace.hosts
        base_dir = policy.trace.source_dir
        where = f"{policy.source}: trace.hosts"
    if spec is None:
        if not policy.hosts:
            raise PolicyError([f"{policy.source}: no [[hosts]] in the policy and no --hosts given "
                               "(expected a machines file or a spec like 96x8:16gb)"])
        return policy.hosts, f"{len(policy.hosts)} hosts from the policy"
    template = policy.hosts[0] if policy.hosts else None
    if spec.startswith("bundled:"):
        try:
            path = bundled_machines(spec[len("bundled:"):])
        except KeyError as e:
            raise PolicyError([f"{where}: {e.args[0]}"]) from None
        return _machines_hosts(path, template), f"hosts from {spec}"
    if _SPEC_RE.match(spec.split(",")[0]) and not Path(spec).exists():
        hosts = hosts_from_spec(spec, template, where)
        return hosts, f"{len(hosts)} hosts from {spec!r}"
    path = Path(spec)
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = Path(base_dir) / path
    if not path.exists():
        raise PolicyError([f"{where}: {spec}: no such file (expected an Alea .machines file or a spec like "
                           "96x8:16gb)"])
    hosts = _machines_hosts(path, template)
    return hosts, f"{len(hosts)} hosts from {path.name}"


def _machines_hosts(path, template: Host | None) -> tuple[Host, ...]:
    clusters = read_machines(path)
    if sum(c.nodes for c in clusters) > MAX_HOSTS:
        raise TraceError(path, None, f"{sum(c.nodes for c in clusters)} nodes in all, expected at most {MAX_HOSTS} "
                                     "(the most hosts a simulation takes, as a policy file)")
    hosts = []
    for c in clusters:
        memory = max(1, c.ram_kb // 1024)
        for k in range(1, c.nodes + 1):
            try:
                hosts.append(_host_like(template, f"{c.name}{k}", c.cpus_per_node, memory,
                                        frozenset({c.name, f"cl_{c.name}"})))
            except (ValueError, TypeError) as e:
                raise TraceError(path, None, f"cluster {c.name}: {e}") from None
    return tuple(hosts)


def policy_with_hosts(policy: Policy, hosts: Sequence[Host]) -> Policy:
    """The policy with ``hosts`` instead of its own; per-host domains follow the first
    policy host's layout (``[[hosts]] domains``) on every new host."""
    if tuple(hosts) == tuple(policy.hosts):
        return policy
    first = policy.hosts[0].name if policy.hosts else None
    layout = [(im, fl, n) for h, im, fl, n in policy.domains_per_host if h == first]
    templates = tuple((h.name, im, fl, n) for h in hosts for im, fl, n in layout)
    return attrs.evolve(policy, hosts=tuple(hosts), domains_per_host=templates)


def check_domains_fit(policy: Policy) -> None:
    """Per-host domains that cannot exist on their host (a flavor bigger than it)."""
    by = {h.name: h for h in policy.hosts}
    problems = []
    for host, image, flavor, _n in policy.domains_per_host:
        c, m = policy.flavors[flavor].size_on(by[host])
        if c > by[host].cores or m > by[host].memory_mb:
            problems.append(f"{policy.source}: host {host}: domain flavor {flavor} ({c} cores, {m} MB) is larger "
                            f"than the host ({by[host].cores} cores, {by[host].memory_mb} MB)")
            break
    if problems:
        raise PolicyError(problems)


__all__ += ["check_domains_fit"]
