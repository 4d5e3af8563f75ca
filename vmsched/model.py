"""The cluster as vmsched sees it at one instant: hosts, images, flavors, domains, jobs, queues.

Floor 1 of the house: nothing here knows about policies, the simulator or PBS servers.
Parsing lives in named constructors (``Job.from_pbs``, ``Snapshot.from_json``) because the
inputs are typed by people (``qsub -l mem=1700mb``) or produced by servers we do not control;
every problem is collected as data and raised once, as a :class:`ModelError`, so an admin
sees all that is wrong with a snapshot in one go instead of fixing it line by line.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from vmsched import bounded
from vmsched.bounded import MAX_ACTIVE, MAX_CORES, MAX_DISK_GB, MAX_DOMAINS_PER_HOST, MAX_MEMORY_MB, MAX_TIME
from vmsched.errors import describe, line, show, where_in_text

__all__ = [
    "DomainState", "JobState", "QueueKind", "ModelError",
    "Flavor", "Image", "Host", "Domain", "Job", "Queue", "Limits", "Snapshot",
    "DEFAULT_FLAVORS", "WHOLE_NODE_FLAVOR", "parse_size_mb", "parse_duration", "parse_nodes",
]


class ModelError(ValueError):
    """All problems found in one input, each a one-line string naming where and what."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems) if self.problems else "invalid input")

    def first(self) -> str:
        return self.problems[0] if self.problems else str(self)


class DomainState(enum.Enum):
    """States a scheduler sees, as Magrathea names them.

    *free* and *running* are the active states: the domain holds the host's CPU and memory.
    *occupied* means another domain on the same host is active, so this one cannot take work
    until it is activated; *suspended* means it was frozen to make room for a preemptor.
    """

    DOWN = "down"
    BOOTING = "booting"
    FREE = "free"
    RUNNING = "running"
    OCCUPIED = "occupied"
    SUSPENDED = "suspended"
    SHUTTING_DOWN = "shutting_down"

    @property
    def active(self) -> bool:
        return self in (DomainState.FREE, DomainState.RUNNING)


class JobState(enum.Enum):
    """PBS job states (``job_state`` in ``qstat -f``)."""

    QUEUED = "Q"
    RUNNING = "R"
    SUSPENDED = "S"
    HELD = "H"
    WAITING = "W"
    EXITING = "E"
    TRANSIT = "T"
    COMPLETE = "C"
    FINISHED = "F"
    MOVED = "M"
    BEGUN = "B"  # array job parent with running subjobs


class QueueKind(enum.Enum):
    ROUTING = "routing"
    EXECUTION = "execution"


# ASCII only and anchored at the very end (``$`` would let a trailing newline through).
_NAME_RE = re.compile(r"[A-Za-z0-9_.@+\-\[\]]+\Z")


def _is_name(value) -> bool:
    return isinstance(value, str) and _NAME_RE.match(value) is not None


def _name(_inst, attribute, value):
    if not (isinstance(value, str) and _NAME_RE.match(value)):
        raise ValueError(f"{attribute.name}: expected a name of letters, digits and _.@+-, got {show(value)}")


# The matcher keeps sizes and times in fixed-width fields; beyond the bounds of
# vmsched.bounded a value is a typo or a unit mix-up (a qtime in milliseconds), and is
# refused where it enters, naming the field.
def _validator(check_value, types: tuple, low, high, what: str):
    """An attrs validator from a bounded check (``bounded.integer`` or ``bounded.real``): the
    message names the field and the bounds. A value of one of ``types`` within the bounds
    passes without a call (hosts and jobs are made by the hundred thousand)."""
    def check(_inst, attribute, value):
        if type(value) in types and low <= value <= high:    # NaN compares False: checked below
            return
        try:
            check_value(value, low, high, what)
        except ValueError as e:
            raise ValueError(f"{attribute.name}: {e}") from None
    return check


def _int_range(low: int, high: int, what: str = "a whole number"):
    return _validator(bounded.integer, (int,), low, high, what)


def _real_range(low: float, high: float, what: str = "a number"):
    return _validator(bounded.real, (int, float), low, high, what)


_cores = _int_range(0, MAX_CORES)
_pos_cores = _int_range(1, MAX_CORES)
_memory = _int_range(0, MAX_MEMORY_MB, "a whole number of MB")
_pos_memory = _int_range(1, MAX_MEMORY_MB, "a whole number of MB")
_disk = _int_range(0, MAX_DISK_GB, "a whole number of GB")
_min_cores = _int_range(1, MAX_CORES)
_max_active = _int_range(1, MAX_ACTIVE)
_max_domains = _int_range(1, MAX_DOMAINS_PER_HOST)
_walltime = _int_range(1, MAX_TIME, "a whole number of seconds")
_time = _real_range(0, MAX_TIME, "seconds since the epoch")
_duration = _real_range(0, MAX_TIME, "seconds")
_gb = _real_range(0, bounded.MAX_WEIGHT, "GB")


def _opt_time(inst, attribute, value):
    if value is not None:
        _time(inst, attribute, value)


def _names(_inst, attribute, value):
    if not isinstance(value, frozenset):
        raise ValueError(f"{attribute.name} must be a set of names")
    for v in value:
        _name(_inst, attribute, v)


def _opt_name(inst, attribute, value):
    if value is not None:
        _name(inst, attribute, value)


def _opt_disk(inst, attribute, value):
    if value is not None:
        _disk(inst, attribute, value)


def _enum(kind: type[enum.Enum], key: str):
    """A converter to ``kind`` whose error names the key and the values it takes."""
    def convert(value):
        if isinstance(value, kind):
            return value
        try:
            return kind(value)
        except (ValueError, TypeError):
            choices = ", ".join(str(k.value) for k in kind)
            raise ValueError(f"{key}: expected one of {choices}, got {show(value)}") from None
    return convert


def _flag(_inst, attribute, value):
    if not isinstance(value, bool):
        raise ValueError(f"{attribute.name}: expected true or false, got {show(value)}")


# --------------------------------------------------------------------------- PBS value parsers

def parse_size_mb(text: str) -> int:
    """PBS size (``1700mb``, ``2gb``, ``512kb``, ``1048576`` bytes, ``w`` = 8-byte words) to MB,
    rounded up (asking for 1 byte more than a domain has must not fit it); at most 2^40 MB.
    The one parser is :func:`vmsched.bounded.size_mb`."""
    return bounded.size_mb(text)


def parse_duration(text: str) -> int:
    """PBS walltime (``[[HH:]MM:]SS``, or plain seconds) or a policy duration (``90m``, ``7d``),
    at most 2^40 s. The one parser is :func:`vmsched.bounded.duration_s`."""
    return bounded.duration_s(text)


_NODES_PART_RE = re.compile(r"([0-9]+|[A-Za-z][A-Za-z0-9_.\-]*)?((?::[A-Za-z0-9_=.\-]+)*)")


def parse_nodes(text: str) -> tuple[int, int, tuple[str, ...]]:
    """Torque ``nodes`` spec to (nodes, ppn, properties). ``1:ppn=2``, ``2:ppn=4:infiniband``.

    Only one ``+``-free chunk is accepted: vmsched places a job in one domain, and a spec
    that spans several chunks is refused rather than silently shrunk.
    """
    s = text.strip() if isinstance(text, str) else ""
    if "+" in s:
        raise ValueError(f"expected one node chunk like 1:ppn=2 (vmsched runs a job in one domain), got {show(text)}")
    m = _NODES_PART_RE.fullmatch(s)
    if not s or not m:
        raise ValueError(f"expected a node spec like 1:ppn=2, got {show(text)}")
    head = m.group(1) or "1"
    # Torque reads a leading name as a node property (or a host name): one node having it.
    if bounded.is_digits(head):
        nodes, props = bounded.whole(head, 0, MAX_CORES, "a node count"), []
    else:
        nodes, props = 1, [head]
    ppn = 1
    for part in filter(None, m.group(2).split(":")):
        if part.startswith("ppn="):
            ppn = bounded.whole(part[4:], 1, MAX_CORES, "ppn=<whole number>")
        elif "=" in part:
            raise ValueError(f"unknown node spec key {show(part.split('=')[0])} in {show(text)} (expected ppn=)")
        else:
            props.append(part)
    if nodes < 1:
        raise ValueError(f"expected at least 1 node, got {show(text)}")
    return nodes, ppn, tuple(props)


# --------------------------------------------------------------------------- static description

@attrs.frozen(slots=True)
class Flavor:
    """A VM size. ``whole_node`` = "hard" takes all of a host's cores; "soft" takes what is
    available, but at least ``min_cores``; memory and disk then scale per core (WNoDeS)."""

    name: str = attrs.field(validator=_name)
    cores: int = attrs.field(validator=_cores)
    memory_mb: int = attrs.field(validator=_memory)
    disk_gb: int = attrs.field(default=0, validator=_disk)
    whole_node: str | None = attrs.field(default=None, validator=attrs.validators.in_([None, "hard", "soft"]))
    min_cores: int = attrs.field(default=1, validator=_min_cores)
    memory_mb_per_core: int = attrs.field(default=1740, validator=_memory)
    disk_gb_per_core: int = attrs.field(default=50, validator=_disk)

    def size_on(self, host: "Host") -> tuple[int, int]:
        """(cores, memory_mb) this flavor takes on ``host`` when nothing else holds it: the
        most it can ever give there (whole-node flavors scale to the host), which is what a
        job's "never" verdict compares with."""
        if self.whole_node is None:
            return self.cores, self.memory_mb
        cores = host.cores
        return cores, min(host.memory_mb, cores * self.memory_mb_per_core)

    def size_in(self, host: "Host", used_cores: int, used_memory_mb: int) -> tuple[int, int]:
        """(cores, memory_mb) this flavor takes on ``host`` while its active domains hold
        ``used_cores`` and ``used_memory_mb``. Only "soft" depends on it: it takes what is
        left, at least ``min_cores`` (so it may not fit at all); "hard" still takes the
        whole host, which therefore has to be emptied for it, and a fixed flavor its size."""
        if self.whole_node != "soft":
            return self.size_on(host)
        cores = max(self.min_cores, host.cores - used_cores)
        return cores, min(host.memory_mb - used_memory_mb, cores * self.memory_mb_per_core)

    def disk_for(self, cores: int) -> int:
        """GB of disk a domain of this flavor with ``cores`` cores holds on its host: a fixed
        flavor its own, a whole-node one ``disk_gb_per_core`` per core (WNoDeS: 50 GB)."""
        return self.disk_gb if self.whole_node is None else cores * self.disk_gb_per_core


DEFAULT_FLAVORS: dict[str, Flavor] = {
    f.name: f
    for f in (
        Flavor("small", 1, 1740, 50),
        Flavor("medium", 2, 3584, 100),
        Flavor("large", 4, 7168, 200),
        Flavor("xl", 8, 14336, 400),
        Flavor("whole-hard", 0, 0, 0, whole_node="hard"),
        Flavor("whole-soft", 0, 0, 0, whole_node="soft", min_cores=4),
    )
}


@attrs.frozen(slots=True)
class Image:
    """A VM image of a community. ``vos`` lists the VOs/groups whose jobs may run in it."""

    name: str = attrs.field(validator=_name)
    vos: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset, validator=_names)
    boot_s: float = attrs.field(default=120.0, validator=_duration)
    size_gb: float = attrs.field(default=10.0, validator=_gb)
    tags: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset, validator=_names)


@attrs.frozen(slots=True)
class Host:
    """A physical hypervisor. ``max_active`` caps domains holding CPU at once (1 in Magrathea).

    ``owner`` is the group that paid for it (a Tier-3): others borrow it only while the
    owner leaves it idle, and the owner reclaims it by preemption. ``disk_gb`` is what its domains' disks may take
    together; None (unknown, the default) leaves disk unchecked: a server that does not report
    disk must not make every host look full.
    """

    name: str = attrs.field(validator=_name)
    cores: int = attrs.field(validator=_pos_cores)
    memory_mb: int = attrs.field(validator=_pos_memory)
    disk_gb: int | None = attrs.field(default=None, validator=_opt_disk)
    features: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset, validator=_names)
    owner: str | None = attrs.field(default=None, validator=_opt_name)
    max_active: int = attrs.field(default=1, validator=_max_active)
    max_domains: int = attrs.field(default=4, validator=_max_domains)
    cached_images: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset, validator=_names)
    up: bool = attrs.field(default=True, validator=_flag)

    @classmethod
    def from_pbs(cls, name: str, attributes: Mapping[str, str], *, max_active: int = 1) -> "Host":
        """A host from ``pbsnodes`` attributes (``np`` or ``resources_available.ncpus``, ``mem``,
        ``properties``, ``state``, and ``resources_available.disk`` where the site defines
        that host resource: the disk its domains may take, e.g. ``500gb``)."""
        problems: list[str] = []
        where = f"node {_label(name)}"
        attributes = _pbs_text(where, attributes, problems)

        def get(*keys):
            for k in keys:
                if k in attributes:
                    return k, attributes[k]
            return None, None

        def parse(key, value, parser, default):
            try:
                return parser(value)
            except ValueError as e:
                problems.append(line(where, f"{key}: {e}"))
                return default

        k, v = get("resources_available.ncpus", "np", "pcpus")
        cores = 0
        if k is None:
            problems.append(f"{where}: missing np or resources_available.ncpus")
        else:
            cores = parse(k, v, lambda x: bounded.whole(x, 1, MAX_CORES), 0)
        k, v = get("resources_available.mem", "totmem", "physmem")
        memory = 0
        if k is None:
            problems.append(f"{where}: missing resources_available.mem")
        else:
            memory = parse(k, v, parse_size_mb, 0)
        disk = None
        k, v = get("resources_available.disk")
        if k is not None:
            disk = parse(k, v, lambda x: parse_size_mb(x) // 1024, None)
        features = frozenset(p for p in attributes.get("properties", "").split(",") if p)
        bad = [f for f in features if not _is_name(f)]
        if bad:
            problems.append(line(where, f"properties: {show(bad[0])} is not a name"))
        state = attributes.get("state", "free")
        owner = attributes.get("resources_available.owner") or None
        cached = frozenset(p for p in attributes.get("resources_available.images", "").split(",") if p)
        if problems:
            raise ModelError(problems)
        try:
            return cls(name, cores, memory, disk, features=features, owner=owner, max_active=max_active,
                       cached_images=cached, up=not any(s in state for s in ("down", "offline", "unknown")))
        except (ValueError, TypeError) as e:
            raise ModelError([line(where, describe(e))]) from None


def _label(name) -> str:
    """A job id or node name as the start of an error line: itself if it reads as one."""
    return name if isinstance(name, str) and len(name) <= 60 and name.isprintable() and name else show(name, 60)


def _pbs_text(where: str, attributes, problems: list[str]) -> dict[str, str]:
    """A server's attributes as text, whatever an IFL backend handed over.

    Text is taken as it is; bytes are decoded as UTF-8, strictly; a whole number (an int,
    or an integral float) becomes its decimal digits and a bool ``True``/``False``; None is
    a value the server did not send, so the attribute counts as absent. Anything else, and
    bytes that are not UTF-8, is a problem naming the attribute."""
    if not isinstance(attributes, Mapping):
        problems.append(line(where, f"expected a mapping of attribute names to values, got {show(attributes)}"))
        return {}
    out: dict[str, str] = {}
    for key, value in attributes.items():
        if not isinstance(key, str):
            problems.append(line(where, f"attribute name {show(key)}: expected a string"))
            continue
        if value is None:
            continue
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bytes):
            try:
                out[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(line(where, f"{_label(key)}: not UTF-8 text, got {show(value)}"))
        elif isinstance(value, bool):
            out[key] = "True" if value else "False"
        elif isinstance(value, int) and value.bit_length() <= 128:
            out[key] = str(value)
        elif isinstance(value, float) and value.is_integer() and abs(value) <= 2.0 ** 128:
            out[key] = str(int(value))
        else:
            problems.append(line(where, f"{_label(key)}: expected text or a whole number, got {show(value)}"))
    return out


@attrs.frozen(slots=True)
class Limits:
    """``resources_min`` / ``resources_max`` of a queue; None = no bound."""

    walltime_s: int | None = None
    cores: int | None = None
    memory_mb: int | None = None

    def check(self, job: "Job", lower: bool) -> str | None:
        """Why ``job`` falls outside this bound, or None."""
        for field, value, unit in (("walltime", job.walltime_s, "s"), ("cores", job.cores, ""),
                                   ("mem", job.memory_mb, "mb")):
            bound = getattr(self, {"walltime": "walltime_s", "cores": "cores", "mem": "memory_mb"}[field])
            if bound is None:
                continue
            if lower and value < bound:
                return f"{field} {value}{unit} below resources_min {bound}{unit}"
            if not lower and value > bound:
                return f"{field} {value}{unit} above resources_max {bound}{unit}"
        return None


@attrs.frozen(slots=True)
class Queue:
    """A PBS queue. Execution queues say how many jobs one domain may hold: CERN's one-way
    worker nodes run 1 job, two-way nodes 2. Routing queues forward to ``destinations`` in order."""

    name: str = attrs.field(validator=_name)
    kind: QueueKind = attrs.field(default=QueueKind.EXECUTION, converter=_enum(QueueKind, "kind"))
    per_domain_jobs: int = attrs.field(default=1, validator=_int_range(1, bounded.MAX_COUNT))
    resources_min: Limits = attrs.field(factory=Limits)
    resources_max: Limits = attrs.field(factory=Limits)
    groups: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset, validator=_names)
    destinations: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    images: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset, validator=_names)
    klass: str | None = attrs.field(default=None, validator=_opt_name)

    def refuses(self, job: "Job") -> str | None:
        """Why this queue would not accept ``job`` (PBS ACL and resource bounds), or None."""
        if self.groups and job.group not in self.groups and job.vo not in self.groups:
            return f"group {job.group} not in acl"
        why = self.resources_min.check(job, lower=True) or self.resources_max.check(job, lower=False)
        if why:
            return why
        if self.images and job.image is not None and job.image not in self.images:
            return f"image {job.image} not served"
        return None


# --------------------------------------------------------------------------- dynamic state

@attrs.frozen(slots=True)
class Domain:
    """A VM slot on a host, booted (or to be booted) from one image in one flavor."""

    name: str = attrs.field(validator=_name)
    host: str = attrs.field(validator=_name)
    image: str = attrs.field(validator=_name)
    flavor: str = attrs.field(validator=_name)
    state: DomainState = attrs.field(converter=_enum(DomainState, "state"))
    cores: int = attrs.field(validator=_cores)
    memory_mb: int = attrs.field(validator=_memory)
    since: float = attrs.field(default=0.0, validator=_time)


@attrs.frozen(slots=True)
class Job:
    """A batch job. ``vo`` defaults to the PBS ``egroup``; ``image`` is set only when the user
    asked for one; otherwise any image of the job's VO will do. ``flavor``, likewise, only
    when the job asked for one by name or asked for a whole node (WNoDeS users did): it then
    runs only in a domain of that flavor."""

    id: str = attrs.field(validator=_name)
    user: str = attrs.field(validator=_name)
    group: str = attrs.field(validator=_name)
    vo: str = attrs.field(validator=_name)
    queue: str = attrs.field(validator=_name)
    cores: int = attrs.field(validator=_pos_cores)
    memory_mb: int = attrs.field(validator=_memory)
    walltime_s: int = attrs.field(validator=_walltime)
    submit_time: float = attrs.field(validator=_time)
    image: str | None = attrs.field(default=None, validator=_opt_name)
    klass: str | None = attrs.field(default=None, validator=_opt_name)
    interactive: bool = attrs.field(default=False, validator=_flag)
    state: JobState = attrs.field(default=JobState.QUEUED, converter=_enum(JobState, "state"))
    domain: str | None = attrs.field(default=None, validator=_opt_name)
    start_time: float | None = attrs.field(default=None, validator=_opt_time)
    features: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset, validator=_names)
    flavor: str | None = attrs.field(default=None, validator=_opt_name)

    @classmethod
    def from_pbs(cls, job_id: str, attributes: Mapping[str, str]) -> "Job":
        """A job from ``qstat -f`` attributes. Strict: every malformed attribute is reported,
        named by job and attribute, because users type them and a silent default would
        schedule the job somewhere it does not fit."""
        problems: list[str] = []
        where = f"job {_label(job_id)}"
        attributes = _pbs_text(where, attributes, problems)

        def attr(key, parse, default=None, required=False):
            if key not in attributes:
                if required:
                    problems.append(f"{where}: missing {key}")
                return default
            try:
                return parse(attributes[key])
            except ValueError as e:
                problems.append(line(where, f"{key}: {e}"))
                return default

        owner = attributes.get("Job_Owner", "")
        user = attributes.get("euser") or owner.split("@")[0] or None
        if not user:
            problems.append(f"{where}: missing euser and Job_Owner")
        group = attributes.get("egroup")
        if not group:
            problems.append(f"{where}: missing egroup")
        queue = attr("queue", str, required=True)
        state = attr("job_state", lambda v: _enum(JobState, "state")(v.strip()), JobState.QUEUED)
        walltime = attr("Resource_List.walltime", parse_duration, required=True)
        memory = attr("Resource_List.mem", parse_size_mb, 0)
        cores = 1
        features: tuple[str, ...] = ()
        if "Resource_List.nodes" in attributes:
            spec = attr("Resource_List.nodes", parse_nodes)
            if spec:
                nodes, ppn, features = spec
                if nodes != 1:
                    problems.append(line(where, f"Resource_List.nodes: {show(attributes['Resource_List.nodes'])}: "
                                                "expected 1 node (vmsched runs a job in one domain)"))
                cores = ppn
        elif "Resource_List.ncpus" in attributes:
            cores = attr("Resource_List.ncpus", _parse_pos_int, 1)
        flavor = _flavor_asked(attr)
        submit = attr("qtime", _parse_epoch, None) or attr("ctime", _parse_epoch, 0.0)
        start = attr("start_time", _parse_epoch, None)
        image = attributes.get("Resource_List.image") or attributes.get("Resource_List.vmimage")
        vo = attributes.get("Resource_List.vo") or group
        interactive = attributes.get("interactive", "False").strip().lower() in ("true", "1")
        exec_host = attributes.get("exec_host")
        domain = exec_host.split("/")[0].split("+")[0] if exec_host else None
        if problems:
            raise ModelError(problems)
        try:
            return cls(job_id, user, group, vo, queue, cores, memory, walltime, submit, image=image,
                       interactive=interactive, state=state, domain=domain, start_time=start,
                       features=frozenset(features), flavor=flavor)
        except (ValueError, TypeError) as e:
            raise ModelError([line(where, describe(e))]) from None


#: The flavor a job gets when it asks for a whole node the batch system's own way: vmsched's
#: built-in exclusive whole-node flavor, which every policy has.
WHOLE_NODE_FLAVOR = "whole-hard"

# Moab/Maui node access policies (Torque ``-l naccesspolicy=``): only singlejob gives a job a
# node of its own; the others share nodes between jobs of one user, group or account.
_ACCESS_POLICIES = ("shared", "sharedonly", "singlejob", "singletask", "singleuser", "uniqueuser",
                    "singlegroup", "singleaccount")
# OpenPBS ``-l place=[arrangement][:sharing][:group=resource]``
_PLACE_WORDS = ("free", "pack", "scatter", "vscatter", "excl", "exclhost", "shared")


def _flavor_asked(attr) -> str | None:
    """The flavor a job asks for: ``Resource_List.flavor`` by name (``qsub -l flavor=wn-soft``,
    a custom resource of the site), else a whole node as Torque/Moab
    (``-l naccesspolicy=singlejob``) or OpenPBS (``-l place=excl`` or ``exclhost``) write it,
    which is :data:`WHOLE_NODE_FLAVOR`. A named flavor wins over a whole-node request."""
    named = attr("Resource_List.flavor", _parse_name)
    access = attr("Resource_List.naccesspolicy", _parse_access_policy)
    place = attr("Resource_List.place", _parse_place)
    if named is not None:
        return named
    return WHOLE_NODE_FLAVOR if access == "singlejob" or place in ("excl", "exclhost") else None


def _parse_name(v: str) -> str:
    s = str(v).strip()
    if not _NAME_RE.match(s):
        raise ValueError(f"expected a flavor name of letters, digits and _.@+-, got {show(v)}")
    return s


def _parse_access_policy(v: str) -> str:
    s = str(v).strip().lower()
    if s not in _ACCESS_POLICIES:
        raise ValueError(f"expected one of {', '.join(_ACCESS_POLICIES)}, got {show(v)}")
    return s


def _parse_place(v: str) -> str | None:
    """The sharing part of an OpenPBS place spec (excl, exclhost, shared), None if absent."""
    sharing = None
    for word in str(v).strip().lower().split(":"):
        if word.startswith("group=") and len(word) > 6:
            continue
        if word not in _PLACE_WORDS:
            raise ValueError(f"expected [free|pack|scatter|vscatter][:excl|exclhost|shared][:group=resource], "
                             f"got {show(v)}")
        if word in ("excl", "exclhost", "shared"):
            sharing = word
    return sharing


def _parse_pos_int(v: str) -> int:
    return bounded.whole(v, 1, MAX_CORES)


def _parse_epoch(v: str) -> float:
    return bounded.epoch(v)


# --------------------------------------------------------------------------- the snapshot

@attrs.frozen(slots=True)
class Snapshot:
    """The whole cluster at one instant: what a scheduler reads from the server each cycle."""

    time: float = attrs.field(validator=_time)
    hosts: tuple[Host, ...] = attrs.field(default=(), converter=tuple)
    domains: tuple[Domain, ...] = attrs.field(default=(), converter=tuple)
    jobs: tuple[Job, ...] = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self):
        problems = []
        for kind, items in (("host", self.hosts), ("domain", self.domains), ("job", self.jobs)):
            seen = set()
            for it in items:
                key = it.id if kind == "job" else it.name
                if key in seen:
                    problems.append(line(f"{kind} {_label(key)}", "listed twice"))
                seen.add(key)
        hosts = {h.name for h in self.hosts}
        domains = {d.name for d in self.domains}
        for d in self.domains:
            if d.host not in hosts:
                problems.append(line(f"domain {_label(d.name)}", f"host {_label(d.host)} is not in the snapshot"))
        for j in self.jobs:
            if j.domain is not None and j.domain not in domains:
                problems.append(line(f"job {_label(j.id)}", f"domain {_label(j.domain)} is not in the snapshot"))
            if j.state in (JobState.RUNNING, JobState.SUSPENDED) and j.domain is None:
                problems.append(line(f"job {_label(j.id)}", f"state {j.state.value} but no domain"))
        if problems:
            raise ModelError(problems)

    def apply(self, plan, **kw) -> "Snapshot":
        """This snapshot after ``plan``'s actions: :func:`vmsched.plan.apply`, where what
        each action does is defined."""
        from vmsched.plan import apply   # plan.py imports this module, so not at the top
        return apply(self, plan, **kw)

    # JSON ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        def enc(obj):
            out = {}
            for a in attrs.fields(type(obj)):
                v = getattr(obj, a.name)
                if isinstance(v, enum.Enum):
                    v = v.value
                elif isinstance(v, frozenset):
                    v = sorted(v)
                out[a.name] = v
            return out

        return {"time": self.time, "hosts": [enc(h) for h in self.hosts],
                "domains": [enc(d) for d in self.domains], "jobs": [enc(j) for j in self.jobs]}

    @classmethod
    def from_json(cls, data: Any, source: str = "snapshot") -> "Snapshot":
        """Strict reader: unknown keys, wrong types and dangling references are all reported,
        each naming the list, the index and the key."""
        problems: list[str] = []
        if not isinstance(data, dict):
            raise ModelError([f"{source}: expected a JSON object with time, hosts, domains, jobs"])
        unknown = set(data) - {"time", "hosts", "domains", "jobs"}
        for k in sorted(unknown, key=str):
            problems.append(line(source, f"unknown key {show(k)} (expected time, hosts, domains, jobs)"))
        built: dict[str, list] = {}
        for key, klass in (("hosts", Host), ("domains", Domain), ("jobs", Job)):
            built[key] = []
            items = data.get(key, [])
            if not isinstance(items, list):
                problems.append(f"{source}: {key}: expected a list")
                continue
            fields = attrs.fields(klass)
            names = {a.name for a in fields}
            sets = {a.name for a in fields if a.converter is frozenset}
            for i, item in enumerate(items):
                where = f"{source}: {key}[{i}]"
                if not isinstance(item, dict):
                    problems.append(f"{where}: expected an object")
                    continue
                bad = sorted(set(item) - names, key=str)
                if bad:
                    problems.append(line(where, f"unknown key {show(bad[0])}"))
                    continue
                kw = dict(item)
                wrong = [k for k in sorted(sets & set(kw)) if not isinstance(kw[k], list)
                         or not all(isinstance(x, str) for x in kw[k])]
                if wrong:
                    problems.append(line(where, f"{wrong[0]}: expected a list of names, got {show(kw[wrong[0]])}"))
                    continue
                try:
                    built[key].append(klass(**kw))
                except (TypeError, ValueError) as e:
                    problems.append(line(where, describe(e)))
        t = data.get("time", 0.0)
        try:
            bounded.real(t, 0, MAX_TIME)
        except ValueError:
            problems.append(line(source, f"time: expected seconds since the epoch (0 to 2^40), got {show(t)}"))
            t = 0.0
        if problems:
            raise ModelError(problems)
        try:
            return cls(t, built["hosts"], built["domains"], built["jobs"])
        except ModelError as e:
            raise ModelError([f"{source}: {p}" for p in e.problems]) from None

    @classmethod
    def load(cls, path) -> "Snapshot":
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as e:
            raise ModelError([f"{path}: cannot read: {e.strerror}"]) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError([f"{path}: not a text file (expected JSON)"]) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelError([f"{path}:{e.lineno}: not valid JSON: {e.msg}"]) from None
        except (ValueError, RecursionError) as e:
            # past the parser's own checks: Python's limit on integer digits, or nesting
            # deeper than the interpreter's stack
            raise ModelError([line(where_in_text(str(path), text, e), f"not valid JSON: {describe(e)}")]) from None
        return cls.from_json(data, source=str(path))

    def dump(self, path) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_json(), fh, indent=1, sort_keys=True)
            fh.write("\n")

