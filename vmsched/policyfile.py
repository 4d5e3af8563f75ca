"""The site's policy file (TOML): hosts, images, flavors, queues and every policy knob.

An admin edits this file by hand on a production cluster, so every problem is reported as
``FILE:LINE: key.path: what was expected`` — all problems at once, each on one line — and a
file that does not validate is never half-used. ``tomllib`` keeps no positions, so
:class:`_Locator` finds the line of a key path by reading the text the way TOML nests it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from vmsched import bounded
from vmsched.bounded import (MAX_ACTIVE, MAX_CORES, MAX_COUNT, MAX_DISK_GB, MAX_DOMAINS, MAX_DOMAINS_PER_HOST,
                             MAX_HOSTS, MAX_ID, MAX_MEMORY_MB, MAX_TIME, MAX_WEIGHT)
from vmsched.errors import describe, line, show, where_in_text
from vmsched.extensions import PLUGIN_METHODS, PluginError, owner_only, plugin_class
from vmsched.model import (DEFAULT_FLAVORS, Flavor, Host, Image, Limits, ModelError, Queue,
                           QueueKind, parse_duration, parse_size_mb)

__all__ = ["Policy", "PolicyError", "load_policy", "parse_policy", "ClassRule", "PreemptionPolicy",
           "LifecyclePolicy", "PriorityWeights", "FairSharePolicy", "TraceMapping", "TraceRule",
           "expand_hostlist"]

MAX_PER_DOMAIN_JOBS = 64


class PolicyError(ValueError):
    """Every problem of one policy file, each a one-line ``FILE:LINE: key: expected ...``."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# --------------------------------------------------------------------------- the result

@attrs.frozen(slots=True)
class PriorityWeights:
    """``priority = fairshare * factor + class * rank + age * hours waited`` (OpenPBS/Maui style)."""

    fairshare: float = 10000.0
    klass: float = 1000.0
    age: float = 1.0


@attrs.frozen(slots=True)
class FairSharePolicy:
    half_life_s: float = 7 * 86400.0
    usage: str = "core-seconds"
    memory_mb_per_core: int = 1740
    floor: float = 0.0
    default_share: float = 1.0
    shares: tuple[tuple[tuple[str, ...], float], ...] = ()
    store: str | None = None
    image_shares: bool = True
    refresh_s: float = 0.0
    #: "vmsched", or "openpbs": every share-tree node starts at usage 1, as in OpenPBS, so a
    #: site moving from it keeps its factors (see vmsched.policies.fairshare).
    bookkeeping: str = "vmsched"


@attrs.frozen(slots=True)
class ClassRule:
    """Jobs matching every given field get ``klass``; first matching rule wins."""

    klass: str
    queue: str | None = None
    group: str | None = None
    vo: str | None = None
    user: str | None = None
    interactive: bool | None = None

    def matches(self, job) -> bool:
        return all(want is None or getattr(job, field) == want
                   for field, want in (("queue", self.queue), ("group", self.group), ("vo", self.vo),
                                       ("user", self.user), ("interactive", self.interactive)))


@attrs.frozen(slots=True)
class PreemptionPolicy:
    classes: tuple[str, ...] = ("normal",)
    default_class: str = "normal"
    mode: str = "suspend-domain"
    rules: tuple[ClassRule, ...] = ()
    owner_reclaim: bool = True
    suspend_s: float = 5.0
    resume_s: float = 5.0
    #: Share preemption: a VO below its fair-share target whose waiting jobs have waited this
    #: long (or whose own work has been frozen this long) takes a host whose active domain runs
    #: only default-class work of a VO over its target (None: never).
    share_after_s: float | None = None

    def rank(self, name: str) -> int:
        return self.classes.index(name)

    def class_of(self, job) -> str:
        if job.klass is not None and job.klass in self.classes:
            return job.klass
        for rule in self.rules:
            if rule.matches(job):
                return rule.klass
        return self.default_class


@attrs.frozen(slots=True)
class LifecyclePolicy:
    dynamic_boot: bool = True
    max_concurrent_boots: int = 8
    idle_shutdown_s: float = 1800.0
    shutdown_s: float = 30.0
    warm_pool: tuple[tuple[str, int], ...] = ()
    prefer_cached: bool = True
    bind_on_boot: bool = False
    image_download_s_per_gb: float = 2.0


@attrs.frozen(slots=True)
class TraceRule:
    """One ``[[trace.map]]`` entry: trace fields to match, and what a matching job gets.

    A match field is a tuple of ``(low, high)`` id ranges (``user = [3, "10-20"]``) or, for
    ``queue``, of numbers (SWF queue number) and names (the CERIT-SC queue name); an absent
    field matches anything, a trace value of -1 (unknown) matches only an absent field.
    For every target (vo, image, class, ...) the first matching rule that sets it wins, so
    one rule may give the VO by user and a later one the class by queue. ``walltime`` is the
    queue limit that stands in for this rule's jobs; ``interactive_below`` makes a matching
    job interactive when its logged run time is below it (an oracle: traces do not say
    which jobs were interactive). ``flavor`` is the job's own, as if it had asked for it: it
    runs only in domains of that flavor (a fixed one also gives the job its size).
    """

    line: str = ""
    user: tuple[tuple[int, int], ...] | None = None
    group: tuple[tuple[int, int], ...] | None = None
    partition: tuple[tuple[int, int], ...] | None = None
    executable: tuple[tuple[int, int], ...] | None = None
    queue: tuple[int | str, ...] | None = None
    vo: str | None = None
    image: str | None = None
    klass: str | None = None
    flavor: str | None = None
    exec_queue: str | None = None
    interactive_below_s: float | None = None
    walltime_s: float | None = None

    TARGETS = ("vo", "image", "klass", "flavor", "exec_queue", "interactive_below_s", "walltime_s")

    def matches(self, uid, gid, partition, app, queue_no, queue_name) -> bool:
        for ranges, value in ((self.user, uid), (self.group, gid), (self.partition, partition),
                              (self.executable, app)):
            if ranges is None:
                continue
            if value is None or not any(lo <= value <= hi for lo, hi in ranges):
                return False
        if self.queue is not None:
            if not any((q == queue_no if type(q) is int else q == queue_name) for q in self.queue):
                return False
        return True


@attrs.frozen(slots=True)
class TraceMapping:
    """How trace fields stand in for what the scheduler needs (used by ``vmsched simulate``).

    ``walltime``: what stands in for the requested walltime: "queue-limit" (the matching
    rule's ``walltime``, else the execution queue's ``resources_max.walltime``, else
    ``default_walltime``), "oracle" (the job's real run time) or "requested" (the trace's
    field 9, falling back to the queue limit where it is -1). ``memory``: "per-core"
    (cores x ``memory_per_core``), "used" (field 7, KB per processor) or "requested"
    (field 10: KB per processor in standard SWF, bytes per job in CERIT-SC extended files).
    ``oversize``: a job larger than the largest domain any host could give it is "cap"ped
    to that domain or "refuse"d (reported never runnable). ``features``: nodespec
    properties carried into job features (hosts from a machines file get ``cl_<name>``).
    """

    rules: tuple[TraceRule, ...] = ()
    walltime: str = "queue-limit"
    default_vo: str = "local"
    default_image: str | None = None
    default_queue: str | None = None
    memory_mb_per_core: int = 1740
    hosts: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict)
    default_walltime_s: float = 86400.0
    memory: str = "per-core"
    oversize: str = "cap"
    features: tuple[str, ...] = ()
    source_dir: str | None = None


@attrs.frozen(slots=True)
class Policy:
    """A whole validated policy file. ``hosts`` may be empty: a batch server lists them."""

    source: str
    site: str
    flavors: Mapping[str, Flavor]
    images: Mapping[str, Image]
    hosts: tuple[Host, ...]
    queues: Mapping[str, Queue]
    default_queue: str | None
    priority: PriorityWeights
    fairshare: FairSharePolicy
    preemption: PreemptionPolicy
    lifecycle: LifecyclePolicy
    cycle_interval_s: float
    max_starts_per_cycle: int
    engine: str
    plugins: Mapping[str, str]
    trace: TraceMapping | None
    domains_per_host: tuple[tuple[str, str, str, int], ...] = ()

    def images_for(self, vo: str, group: str) -> tuple[str, ...]:
        return tuple(sorted(i.name for i in self.images.values() if vo in i.vos or group in i.vos))


# --------------------------------------------------------------------------- line lookup

_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


class _Locator:
    """Finds the line where a key path (``queues[2].per_domain_jobs``) is written."""

    def __init__(self, text: str):
        self.lines = text.splitlines()

    def line_of(self, path: tuple) -> int | None:
        table: list = []
        counters: dict[tuple, int] = {}
        best = None
        target = tuple(path)
        for no, line in enumerate(self.lines, 1):
            m = _HEADER_RE.match(line)
            if m:
                names = tuple(_unquote(p) for p in m.group(2).split("."))
                if m.group(1) == "[[":
                    counters[names] = counters.get(names, -1) + 1
                table = []
                for i, name in enumerate(names):
                    table.append(name)
                    if names[: i + 1] in counters:
                        table.append(counters[names[: i + 1]])
                if tuple(table) == target[: len(table)] and len(table) <= len(target):
                    best = no if best is None or len(table) == len(target) else best
                    if len(table) == len(target):
                        return no
                continue
            k = _KEY_RE.match(line)
            if k:
                key = tuple(_unquote(p) for p in k.group(1).split("."))
                full = tuple(table) + key
                if full == target[: len(full)]:
                    return no
                if tuple(table) == target[: len(table)] and len(target) > len(table) and \
                        isinstance(target[len(table)], str) and re.search(
                            r"\b" + re.escape(str(target[-1])) + r"\s*=", line) and \
                        key[0] == target[len(table)]:
                    return no
        return best


def _unquote(s: str) -> str:
    s = s.strip()
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'" else s


def _fmt(path: tuple) -> str:
    out = ""
    for p in path:
        if not isinstance(p, int) and (len(str(p)) > 40 or not str(p).isprintable()):
            p = show(p)     # an unknown key of 100 KB is echoed shortened, like any value
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


# --------------------------------------------------------------------------- the reader

#: Problems one file reports, at most: past that, more lines help nobody fix it.
MAX_PROBLEMS = 50


class _Reader:
    """Walks the parsed TOML with a schema, collecting problems as data."""

    def __init__(self, source: str, text: str):
        self.source = source
        self.locator = _Locator(text)
        self.problems: list[str] = []
        self.unshown = 0

    def raise_problems(self) -> None:
        if self.problems:
            more = [f"{self.source}: {self.unshown} more problems not shown"] if self.unshown else []
            raise PolicyError(self.problems + more)

    def problem(self, path: tuple, what: str) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.unshown += 1
            return
        no = self.locator.line_of(path)
        where = f"{self.source}:{no}" if no else self.source
        self.problems.append(line(where, f"{_fmt(path)}: {what}"))

    def table(self, data: Any, path: tuple, allowed: set[str]) -> dict:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.problem(path, f"expected a table, got {_tname(data)}")
            return {}
        for k in data:
            if k not in allowed:
                self.problem(path + (k,), f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return data

    def array_of_tables(self, data: Any, path: tuple) -> list:
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
            self.problem(path, f"expected an array of tables ([[{_fmt(path)}]]), got {_tname(data)}")
            return []
        return data

    def get(self, tbl: dict, key: str, path: tuple, kind: str, default: Any = None, required: bool = False,
            check: Callable[[Any], str | None] | None = None) -> Any:
        p = path + (key,)
        if key not in tbl:
            if required:
                self.problem(path, f"missing required key {show(key)}")
            return default
        v = tbl[key]
        conv = _CONVERTERS[kind]
        try:
            out = conv(v)
        except (ValueError, TypeError) as e:
            self.problem(p, describe(e))
            return default
        if check is not None:
            why = check(out)
            if why:
                self.problem(p, why)
                return default
        return out


def _tname(v: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a float"}.get(type(v), type(v).__name__)


def _got(v: Any) -> str:
    return f"{_tname(v)} {show(v)}"


def _c_int(v):
    # Every integer key also has a range check; this bound only keeps a stray one sane.
    if isinstance(v, bool) or not isinstance(v, int) or abs(v) > MAX_ID:
        raise ValueError(f"expected an integer, got {_got(v)}")
    return v


def _c_num(v):
    # Weights, shares and sizes: the C core takes reals up to 1e150 (vmsched.bounded).
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected a finite number, got {_got(v)}")
    return bounded.real(v, -MAX_WEIGHT, MAX_WEIGHT, "a finite number")


def _c_str(v):
    if not isinstance(v, str) or not v:
        raise ValueError(f"expected a non-empty string, got {_got(v)}")
    return v


def _c_bool(v):
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {_got(v)}")
    return v


def _c_strs(v):
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise ValueError(f"expected an array of strings, got {_got(v)}")
    return tuple(v)


def _c_duration(v):
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError(f"expected a duration like \"90m\", \"10:00:00\" or seconds, got {_got(v)}")
    if isinstance(v, str):
        return float(parse_duration(v))
    return bounded.real(v, 0, MAX_TIME, "a duration in seconds")


def _c_size(v):
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError(f"expected a size like \"1700mb\" or a number of MB, got {_got(v)}")
    if isinstance(v, int):
        if v < 0:
            raise ValueError(f"expected a size >= 0, got {show(v)}")
        return bounded.integer(v, 0, MAX_MEMORY_MB, "a size in MB")
    return parse_size_mb(v)


def _c_disk(round_up: bool):
    """A disk size in GB: a whole number of GB, or a size like "500gb" or "2tb". A flavor's
    disk is rounded up (it needs all of it), a host's down (it has only whole GB)."""
    def conv(v):
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise ValueError(f"expected a disk size like \"500gb\" or a number of GB, got {_got(v)}")
        if isinstance(v, int):
            if v < 0:
                raise ValueError(f"expected a disk size >= 0, got {show(v)}")
            return bounded.integer(v, 0, MAX_DISK_GB, "a disk size in GB")
        mb = bounded.size_mb(v, MAX_DISK_GB << 10)
        return -(-mb // 1024) if round_up else mb // 1024
    return conv


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": _c_int, "num": _c_num, "str": _c_str, "bool": _c_bool, "strs": _c_strs,
    "duration": _c_duration, "size": _c_size, "any": lambda v: v,
    "flavor_disk": _c_disk(round_up=True), "host_disk": _c_disk(round_up=False),
}

_NAME = re.compile(r"[A-Za-z0-9_.@+\-]+\Z")


def _is_name(v) -> str | None:
    return None if _NAME.match(v) else f"expected a name of letters, digits and _.@+-, got {show(v)}"


def _between(low, high):
    """A range check for a number key: the bounds are the engine's (vmsched.bounded)."""
    return lambda v: None if low <= v <= high else \
        f"expected a value from {low} to {bounded.bound_text(high)}, got {show(v)}"


def _positive(v) -> str | None:
    return None if v > 0 else f"expected a value > 0, got {show(v)}"


_RANGE_RE = re.compile(r"\[([0-9]+)-([0-9]+)\]")
_RANGE_END = 10 ** 9 - 1   # host numbers have at most 9 digits


def expand_hostlist(pattern: str, limit: int = MAX_HOSTS) -> list[str]:
    """``wn[001-120]`` to wn001 … wn120, keeping the zero padding, as pbsnodes lists them.
    Several ranges multiply (``n[1-2][1-3]``: 6 names), so the number of names, the product
    of the ranges' sizes, is checked against ``limit`` before a single name is made."""
    parts = _RANGE_RE.split(pattern)
    texts, ranges, total = parts[0::3], [], 1
    for a, b in zip(parts[1::3], parts[2::3]):
        try:
            low, high = bounded.whole(a, 0, _RANGE_END), bounded.whole(b, 0, _RANGE_END)
        except ValueError:
            low, high = 1, 0
        if high < low:
            raise ValueError(f"expected a range like wn[001-120] with start <= end, got {show(pattern)}")
        ranges.append((low, high, len(a) if a.startswith("0") else 0))
        total *= high - low + 1
    if total > limit:
        raise ValueError(f"{show(pattern)} names {show(total)} hosts, more than the {limit} this file may "
                         f"still define (at most {MAX_HOSTS} in all)")
    if not ranges:
        return [pattern]
    names = [texts[0]]
    for (low, high, width), tail in zip(ranges, texts[1:]):     # first range outermost
        names = [f"{name}{n:0{width}d}{tail}" for name in names for n in range(low, high + 1)]
    return names


# --------------------------------------------------------------------------- sections

_TOP = {"site", "scheduler", "priority", "fairshare", "preemption", "lifecycle", "flavors", "images",
        "hosts", "queues", "plugins", "trace"}


def parse_policy(text: str, source: str = "policy.toml", base_dir: Path | None = None, *,
                 policy_file: Path | None = None) -> Policy:
    """Validate a policy file's text. Raises PolicyError with every problem found.

    ``policy_file`` is the file the text was read from (:func:`load_policy` gives it): its
    ``[plugins]`` are loaded only if nobody but its owner or root can change it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        # tomllib says "(at end of document)" when the file stops in the middle of a value
        no = m.group(1) if m else max(text.count("\n") + (not text.endswith("\n")), 1)
        msg = re.sub(r" \(at .*\)$", "", msg)
        raise PolicyError([line(f"{source}:{no}", f"not valid TOML: {msg}")]) from None
    except (ValueError, RecursionError) as e:
        # past tomllib's own checks: Python's limit on integer digits, or arrays nested
        # deeper than the interpreter's stack
        raise PolicyError([line(where_in_text(source, text, e), f"not valid TOML: {describe(e)}")]) from None
    if not data:
        raise PolicyError([f"{source}: the policy file is empty (expected at least [site] and [[queues]])"])
    r = _Reader(source, text)
    r.table(data, (), _TOP)

    site = r.table(data.get("site"), ("site",), {"name"})
    site_name = r.get(site, "name", ("site",), "str", default="site")

    sched = r.table(data.get("scheduler"), ("scheduler",),
                    {"cycle_interval", "max_starts_per_cycle", "engine", "default_queue"})
    interval = r.get(sched, "cycle_interval", ("scheduler",), "duration", 60.0, check=_positive)
    max_starts = r.get(sched, "max_starts_per_cycle", ("scheduler",), "int", -1, check=_between(-1, MAX_COUNT))
    engine = r.get(sched, "engine", ("scheduler",), "str", "auto",
                   check=lambda v: None if v in ("auto", "c", "python") else
                   f"expected \"auto\", \"c\" or \"python\", got {show(v)}")
    default_queue = r.get(sched, "default_queue", ("scheduler",), "str", None)

    prio = r.table(data.get("priority"), ("priority",), {"fairshare", "class", "age"})
    weights = PriorityWeights(r.get(prio, "fairshare", ("priority",), "num", 10000.0, check=_between(0, MAX_WEIGHT)),
                              r.get(prio, "class", ("priority",), "num", 1000.0, check=_between(0, MAX_WEIGHT)),
                              r.get(prio, "age", ("priority",), "num", 1.0, check=_between(0, MAX_WEIGHT)))

    flavors = dict(DEFAULT_FLAVORS)
    for i, f in enumerate(r.array_of_tables(data.get("flavors"), ("flavors",))):
        p = ("flavors", i)
        r.table(f, p, {"name", "cores", "memory", "disk", "whole_node", "min_cores"})
        name = r.get(f, "name", p, "str", required=True, check=_is_name)
        wn = r.get(f, "whole_node", p, "str", None,
                   check=lambda v: None if v in ("hard", "soft") else f"expected \"hard\" or \"soft\", got {show(v)}")
        cores = r.get(f, "cores", p, "int", 0 if wn else None, required=wn is None, check=_between(0, MAX_CORES))
        mem = r.get(f, "memory", p, "size", 0 if wn else None, required=wn is None)
        disk = r.get(f, "disk", p, "flavor_disk", 0)
        minc = r.get(f, "min_cores", p, "int", 1, check=_between(1, MAX_CORES))
        if name and cores is not None and mem is not None:
            if name in flavors and name not in DEFAULT_FLAVORS:
                r.problem(p + ("name",), f"flavor {show(name)} is defined twice")
            flavors[name] = Flavor(name, cores, mem, disk, whole_node=wn, min_cores=minc)

    images: dict[str, Image] = {}
    for i, im in enumerate(r.array_of_tables(data.get("images"), ("images",))):
        p = ("images", i)
        r.table(im, p, {"name", "vos", "boot_time", "size", "tags"})
        name = r.get(im, "name", p, "str", required=True, check=_is_name)
        vos = r.get(im, "vos", p, "strs", (), required=True)
        boot = r.get(im, "boot_time", p, "duration", 120.0)
        size = r.get(im, "size", p, "num", 10.0, check=_between(0, MAX_WEIGHT))
        tags = r.get(im, "tags", p, "strs", ())
        for v in vos or ():
            if _is_name(v):
                r.problem(p + ("vos",), _is_name(v))
        if name:
            if name in images:
                r.problem(p + ("name",), f"image {show(name)} is defined twice")
            elif not any(_is_name(v) for v in vos or ()):
                try:
                    images[name] = Image(name, frozenset(vos or ()), boot, size, frozenset(tags or ()))
                except (ValueError, TypeError) as e:
                    r.problem(p, describe(e))

    queues: dict[str, Queue] = {}
    raw_dest: list[tuple[tuple, str, tuple]] = []
    for i, q in enumerate(r.array_of_tables(data.get("queues"), ("queues",))):
        p = ("queues", i)
        r.table(q, p, {"name", "kind", "per_domain_jobs", "resources_min", "resources_max", "groups",
                       "destinations", "images", "class"})
        name = r.get(q, "name", p, "str", required=True, check=_is_name)
        kind = r.get(q, "kind", p, "str", "execution",
                     check=lambda v: None if v in ("routing", "execution") else
                     f"expected \"routing\" or \"execution\", got {show(v)}")
        cap = r.get(q, "per_domain_jobs", p, "int", 1,
                    check=lambda v: None if 1 <= v <= MAX_PER_DOMAIN_JOBS else
                    f"expected 1 (one-way) to {MAX_PER_DOMAIN_JOBS}, got {show(v)}")
        lims = []
        for key in ("resources_min", "resources_max"):
            t = r.table(q.get(key), p + (key,), {"walltime", "cores", "mem"})
            lims.append(Limits(r.get(t, "walltime", p + (key,), "duration", None),
                               r.get(t, "cores", p + (key,), "int", None, check=_between(1, MAX_CORES)),
                               r.get(t, "mem", p + (key,), "size", None)))
        groups = r.get(q, "groups", p, "strs", ())
        dest = r.get(q, "destinations", p, "strs", ())
        qimages = r.get(q, "images", p, "strs", ())
        qclass = r.get(q, "class", p, "str", None)
        if kind == "routing" and not dest:
            r.problem(p, "a routing queue needs destinations = [\"queue\", ...]")
        if kind == "execution" and dest:
            r.problem(p + ("destinations",), "only a routing queue has destinations")
        for lo, hi, label in ((lims[0].walltime_s, lims[1].walltime_s, "walltime"),
                              (lims[0].cores, lims[1].cores, "cores"), (lims[0].memory_mb, lims[1].memory_mb, "mem")):
            if lo is not None and hi is not None and lo > hi:
                r.problem(p + ("resources_min", label), f"resources_min {label} above resources_max")
        if name:
            if name in queues:
                r.problem(p + ("name",), f"queue {show(name)} is defined twice")
                continue
            raw_dest.append((p, name, dest or ()))
            try:
                queues[name] = Queue(name, QueueKind(kind or "execution"), cap or 1, lims[0], lims[1],
                                     frozenset(groups or ()), tuple(dest or ()), frozenset(qimages or ()),
                                     qclass)
            except (ValueError, TypeError) as e:
                r.problem(p, describe(e))
    if not queues and "queues" not in data:
        r.problem((), "no [[queues]] defined (expected at least one execution queue)")
    for p, name, dest in raw_dest:
        for j, d in enumerate(dest):
            if d not in queues:
                r.problem(p + ("destinations",), f"routing destination {show(d)} is not a defined queue")
            elif d == name:
                r.problem(p + ("destinations",), f"queue {show(name)} routes to itself")
    for p, name, _ in raw_dest:
        for im in (queues[name].images if name in queues else ()):
            if im not in images:
                r.problem(p + ("images",), f"image {show(im)} is not defined in [[images]]")
    if default_queue is not None and default_queue not in queues:
        r.problem(("scheduler", "default_queue"), f"queue {show(default_queue)} is not defined in [[queues]]")

    hosts: list[Host] = []
    seen_hosts: set[str] = set()
    domain_templates: list[tuple[str, str, str, int]] = []
    for i, h in enumerate(r.array_of_tables(data.get("hosts"), ("hosts",))):
        p = ("hosts", i)
        r.table(h, p, {"name", "cores", "memory", "disk", "features", "owner", "max_active", "max_domains",
                       "cached_images", "count", "domains"})
        pattern = r.get(h, "name", p, "str", required=True)
        cores = r.get(h, "cores", p, "int", None, required=True, check=_between(1, MAX_CORES))
        mem = r.get(h, "memory", p, "size", None, required=True)
        disk = r.get(h, "disk", p, "host_disk", None)
        feats = r.get(h, "features", p, "strs", ())
        owner = r.get(h, "owner", p, "str", None, check=_is_name)
        max_active = r.get(h, "max_active", p, "int", 1, check=_between(1, MAX_ACTIVE))
        max_domains = r.get(h, "max_domains", p, "int", 4, check=_between(1, MAX_DOMAINS_PER_HOST))
        cached = r.get(h, "cached_images", p, "strs", ())
        doms = r.get(h, "domains", p, "any", [])
        templates = []
        if not isinstance(doms, list) or not all(isinstance(d, dict) for d in doms):
            r.problem(p + ("domains",), "expected an array of {image = ..., flavor = ...} tables")
            doms = []
        for k, d in enumerate(doms):
            dp = p + ("domains", k)
            r.table(d, dp, {"image", "flavor", "count"})
            im = r.get(d, "image", dp, "str", None, required=True)
            fl = r.get(d, "flavor", dp, "str", None, required=True)
            n = r.get(d, "count", dp, "int", 1, check=_between(1, MAX_DOMAINS_PER_HOST))
            if im is not None and im not in images:
                r.problem(dp + ("image",), f"image {show(im)} is not defined in [[images]]")
            elif fl is not None and fl not in flavors:
                r.problem(dp + ("flavor",), f"flavor {show(fl)} is not defined (known: {', '.join(sorted(flavors))})")
            elif im and fl and n:
                fc, fm = flavors[fl].cores, flavors[fl].memory_mb
                if flavors[fl].whole_node is None and cores is not None and mem is not None and \
                        (fc > cores or fm > mem):
                    r.problem(dp + ("flavor",), f"flavor {show(fl)} ({fc} cores, {fm} MB) is bigger than the host "
                                                f"({cores} cores, {mem} MB)")
                else:
                    templates.append((im, fl, n))
        if disk is not None and cores is not None and templates:
            held = sum(flavors[fl].disk_for(cores if flavors[fl].whole_node else flavors[fl].cores) * n
                       for _, fl, n in templates)
            if held > disk:
                r.problem(p + ("disk",), f"its domains take {held} GB of disk, the host has {disk} GB")
        for c in cached or ():
            if c not in images:
                r.problem(p + ("cached_images",), f"image {show(c)} is not defined in [[images]]")
        if pattern is None or cores is None or mem is None:
            continue
        try:
            names = expand_hostlist(pattern, MAX_HOSTS - len(hosts))
        except ValueError as e:
            r.problem(p + ("name",), describe(e))
            continue
        for n in names:
            if n in seen_hosts:
                r.problem(p + ("name",), f"host {show(n)} is defined twice")
                break
            seen_hosts.add(n)
            try:
                hosts.append(Host(n, cores, mem, disk, frozenset(feats or ()), owner, max_active or 1,
                                  max_domains or 4, frozenset(cached or ())))
            except (ValueError, TypeError) as e:
                r.problem(p, describe(e))
                break
            for im, fl, cnt in templates:
                domain_templates.append((n, im, fl, cnt))
        if sum(c for _, _, c in templates) > (max_domains or 4):
            r.problem(p + ("domains",), f"more domains than max_domains = {max_domains}")
    n_domains = sum(c for _, _, _, c in domain_templates)
    if n_domains > MAX_DOMAINS:
        r.problem(("hosts",), f"the hosts' domains number {n_domains} in all, more than {MAX_DOMAINS} "
                              "(the most one policy file may define)")

    _check_flavor_disks(r, data.get("flavors"), flavors, hosts)

    fs = r.table(data.get("fairshare"), ("fairshare",),
                 {"half_life", "usage", "floor", "default_share", "share", "store", "memory_per_core",
                  "image_shares", "refresh", "bookkeeping"})
    shares: list[tuple[tuple[str, ...], float]] = []
    seen_paths: dict[tuple[str, ...], int] = {}
    share_tables = r.array_of_tables(fs.get("share"), ("fairshare", "share"))
    vo_of_group = _share_groups(share_tables)
    for i, s in enumerate(share_tables):
        p = ("fairshare", "share", i)
        r.table(s, p, {"path", "share"})
        path_s = r.get(s, "path", p, "str", None, required=True)
        share = r.get(s, "share", p, "num", None, required=True, check=_positive)
        if path_s is None or share is None:
            continue
        parts = tuple(path_s.split("/"))
        if any(_is_name(x) for x in parts):
            r.problem(p + ("path",), f"expected vo[/group[/user]] made of names, got {show(path_s)}")
            continue
        if parts in seen_paths:
            r.problem(p + ("path",), f"share {show(path_s)} is listed twice (first at share[{seen_paths[parts]}])")
            continue
        depth_problem = _share_depth_problem(parts, vo_of_group, share_tables)
        if depth_problem:
            # Seen all the same: its own children are reported for their own depth, not
            # again as orphans of this line.
            seen_paths[parts] = i
            r.problem(p + ("path",), depth_problem)
            continue
        if len(parts) > 1 and parts[:-1] not in seen_paths:
            r.problem(p + ("path",), f"parent {show('/'.join(parts[:-1]))} of {show(path_s)} must be listed before it")
            continue
        seen_paths[parts] = i
        shares.append((parts, share))
    fairshare = FairSharePolicy(
        half_life_s=r.get(fs, "half_life", ("fairshare",), "duration", 7 * 86400.0, check=_positive),
        usage=r.get(fs, "usage", ("fairshare",), "str", "core-seconds",
                    check=lambda v: None if v in ("core-seconds", "memory-weighted") else
                    f"expected \"core-seconds\" or \"memory-weighted\", got {show(v)}"),
        memory_mb_per_core=r.get(fs, "memory_per_core", ("fairshare",), "size", 1740) or 1740,
        floor=r.get(fs, "floor", ("fairshare",), "num", 0.0, check=_between(0, MAX_WEIGHT)),
        default_share=r.get(fs, "default_share", ("fairshare",), "num", 1.0, check=_positive),
        shares=tuple(shares),
        store=r.get(fs, "store", ("fairshare",), "str", None),
        image_shares=r.get(fs, "image_shares", ("fairshare",), "bool", True),
        refresh_s=r.get(fs, "refresh", ("fairshare",), "duration", 0.0),
        bookkeeping=r.get(fs, "bookkeeping", ("fairshare",), "str", "vmsched", check=_one_of("vmsched", "openpbs")),
    )
    if fairshare.store and base_dir is not None and fairshare.store != ":memory:" and \
            not Path(fairshare.store).is_absolute():
        fairshare = attrs.evolve(fairshare, store=str(base_dir / fairshare.store))

    pre = r.table(data.get("preemption"), ("preemption",),
                  {"classes", "default_class", "mode", "rule", "owner_reclaim", "suspend_time", "resume_time",
                   "share_after"})
    classes = r.get(pre, "classes", ("preemption",), "strs", ("normal",))
    if classes is not None and len(set(classes)) != len(classes):
        r.problem(("preemption", "classes"), "class names repeat")
    classes = classes or ("normal",)
    default_class = r.get(pre, "default_class", ("preemption",), "str", "normal" if "normal" in classes else classes[0])
    if default_class not in classes:
        r.problem(("preemption", "default_class"), f"{show(default_class)} is not one of classes {list(classes)}")
    mode = r.get(pre, "mode", ("preemption",), "str", "suspend-domain",
                 check=lambda v: None if v in ("suspend-domain", "suspend-jobs", "requeue", "none") else
                 f"expected \"suspend-domain\", \"suspend-jobs\", \"requeue\" or \"none\", got {show(v)}")
    rules = []
    for i, ru in enumerate(r.array_of_tables(pre.get("rule"), ("preemption", "rule"))):
        p = ("preemption", "rule", i)
        r.table(ru, p, {"class", "queue", "group", "vo", "user", "interactive"})
        kl = r.get(ru, "class", p, "str", None, required=True)
        if kl is not None and kl not in classes:
            r.problem(p + ("class",), f"{show(kl)} is not one of classes {list(classes)}")
            continue
        q = r.get(ru, "queue", p, "str", None)
        if q is not None and q not in queues:
            r.problem(p + ("queue",), f"queue {show(q)} is not defined in [[queues]]")
        if kl:
            rules.append(ClassRule(kl, q, r.get(ru, "group", p, "str", None), r.get(ru, "vo", p, "str", None),
                                   r.get(ru, "user", p, "str", None), r.get(ru, "interactive", p, "bool", None)))
    for name, q in queues.items():
        if q.klass is not None and q.klass not in classes:
            idx = next(i for i, (pp, n, _) in enumerate(raw_dest) if n == name)
            r.problem(raw_dest[idx][0] + ("class",), f"{show(q.klass)} is not one of the preemption classes {list(classes)}")
    for name, q in queues.items():
        if q.klass is not None and q.klass in classes:
            rules.append(ClassRule(q.klass, queue=name))
    preemption = PreemptionPolicy(tuple(classes), default_class if default_class in classes else classes[0],
                                  mode or "suspend-domain", tuple(rules),
                                  r.get(pre, "owner_reclaim", ("preemption",), "bool", True),
                                  r.get(pre, "suspend_time", ("preemption",), "duration", 5.0),
                                  r.get(pre, "resume_time", ("preemption",), "duration", 5.0),
                                  r.get(pre, "share_after", ("preemption",), "duration", None))
    if preemption.share_after_s is not None and preemption.mode != "suspend-domain":
        r.problem(("preemption", "share_after"), "share preemption freezes whole domains: it needs "
                  f"mode = \"suspend-domain\", not {show(preemption.mode)}")

    lc = r.table(data.get("lifecycle"), ("lifecycle",),
                 {"dynamic_boot", "max_concurrent_boots", "idle_shutdown", "shutdown_time", "warm_pool",
                  "prefer_cached", "bind_on_boot", "download_time_per_gb"})
    warm = r.table(lc.get("warm_pool"), ("lifecycle", "warm_pool"), set(images))
    warm_pool = []
    for im in sorted(warm):
        n = r.get(warm, im, ("lifecycle", "warm_pool"), "int", None, check=_between(0, MAX_COUNT))
        if n:
            warm_pool.append((im, n))
    lifecycle = LifecyclePolicy(
        r.get(lc, "dynamic_boot", ("lifecycle",), "bool", True),
        r.get(lc, "max_concurrent_boots", ("lifecycle",), "int", 8, check=_between(1, MAX_COUNT)),
        r.get(lc, "idle_shutdown", ("lifecycle",), "duration", 1800.0),
        r.get(lc, "shutdown_time", ("lifecycle",), "duration", 30.0),
        tuple(warm_pool),
        r.get(lc, "prefer_cached", ("lifecycle",), "bool", True),
        r.get(lc, "bind_on_boot", ("lifecycle",), "bool", False),
        r.get(lc, "download_time_per_gb", ("lifecycle",), "duration", 2.0),
    )

    plugins = _parse_plugins(r, data.get("plugins"), policy_file)

    trace = None
    if "trace" in data:
        trace = _parse_trace(r, data.get("trace"), images, queues, flavors, classes, base_dir)

    _check_routing_loops(r, queues, raw_dest)
    r.raise_problems()
    return Policy(source, site_name or "site", flavors, images, tuple(hosts), queues, default_queue, weights,
                  fairshare, preemption, lifecycle, interval, max_starts, engine, plugins, trace,
                  tuple(domain_templates))


_PLUGIN_SPEC = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*\Z")


def _parse_plugins(r: _Reader, t: Any, policy_file: Path | None) -> dict[str, str]:
    """``[plugins]``: each entry is imported and checked against its interface here, so that
    ``vmsched check`` finds a missing module or method rather than the first cycle. The
    policy file names code to run: with plugins it must pass the same rule as their files."""
    t = r.table(t, ("plugins",), set(PLUGIN_METHODS))
    plugins: dict[str, str] = {}
    refused = None
    if t and policy_file is not None:
        refused = owner_only(policy_file) or owner_only(policy_file.resolve().parent)
    for k in sorted(set(t) & set(PLUGIN_METHODS)):     # an unknown key is reported by r.table
        v = r.get(t, k, ("plugins",), "str", None,
                  check=lambda v: None if _PLUGIN_SPEC.match(v) else
                  f"expected \"package.module:ClassName\", got {show(v)}")
        if not v:
            continue
        if refused:
            r.problem(("plugins", k), f"plugins refused: {refused}")
            continue
        try:
            plugin_class(v, k)
        except PluginError as e:
            r.problem(("plugins", k), f"{e.spec}: {e.reason}")
            continue
        plugins[k] = v
    return plugins


def _check_flavor_disks(r: _Reader, tables: Any, flavors: Mapping[str, Flavor], hosts: list[Host]) -> None:
    """A flavor of the file whose disk no host has could never be booted: said here rather
    than found out as jobs that wait for ever. Only where every host's disk is known."""
    if not hosts or any(h.disk_gb is None for h in hosts) or not isinstance(tables, list):
        return
    for i, t in enumerate(tables):
        f = flavors.get(t.get("name")) if isinstance(t, dict) and isinstance(t.get("name"), str) else None
        if f is None:
            continue
        need = min(f.disk_for(f.size_on(h)[0]) for h in hosts)
        if not any(f.disk_for(f.size_on(h)[0]) <= h.disk_gb for h in hosts):
            most = max(h.disk_gb for h in hosts)
            r.problem(("flavors", i, "disk" if "disk" in t else "name"),
                      f"flavor {show(f.name)} needs {need} GB of disk, no host has that much (the most: {most} GB)")


_SHARE_PATH = "expected a path vo, vo/group or vo/group/user"


def _share_groups(tables: list) -> dict[str, list[tuple[str, int]]]:
    """Every name the share tree makes a group: ``x`` of each ``vo/x`` whose VO is a top-level
    entry, with that VO and the entry's index. The scheduler charges a job of group ``x`` to
    ``vo/x/<user>`` through these entries (``Cluster._group_vo``)."""
    paths = [(i, t.get("path")) for i, t in enumerate(tables)]
    parts = [(i, tuple(v.split("/"))) for i, v in paths if isinstance(v, str) and v]
    top = {pp[0] for _, pp in parts if len(pp) == 1}
    groups: dict[str, list[tuple[str, int]]] = {}
    for i, pp in parts:
        if len(pp) == 2 and pp[0] in top and pp[0] != pp[1]:
            groups.setdefault(pp[1], []).append((pp[0], i))
    return groups


def _share_depth_problem(parts: tuple[str, ...], vo_of_group: dict[str, list[tuple[str, int]]],
                         tables: list) -> str | None:
    """Why a share path can never be where usage is charged, or None.

    Usage is charged to (VO, group, user) and nowhere else, so a share entry off those levels
    takes no usage while its unlisted sibling -- where the usage really lands, with only the
    default share -- takes all of it: factors such as 1e-19 and no error anywhere. Two shapes are certain: a path deeper than vo/group/user, and a path that
    starts at a name the tree itself makes a group of a VO (``group/user`` for
    ``vo/group/user``). A 2-level path under a top-level entry is left alone: ``egee/atlas``
    is a VO and its group exactly like ``group1/alice`` is a group and its user, and only the
    names tell them apart.
    """
    path = "/".join(parts)
    if len(parts) > 3:
        return (f"{_SHARE_PATH}, got {len(parts)} levels in {show(path)}: usage is charged to a job's VO, "
                "group and user only")
    if len(parts) < 2 or parts[0] not in vo_of_group:
        return None
    group = parts[0]
    vo, at = vo_of_group[group][0]
    fix = f"write '{vo}/{path}'" if len(parts) == 2 else f"'{vo}/{path}' would be deeper than vo/group/user"
    if any(t.get("path") == group for t in tables):
        return (f"{show(group)} is both a top-level entry and a group of VO {show(vo)} (share[{at}]), so "
                f"{show(path)} is a level too low; {fix} and drop the top-level {show(group)}")
    return f"{show(group)} is a group of VO {show(vo)} (share[{at}]), not a VO, so {show(path)} is a level too low; {fix}"


_ID_RANGE_RE = re.compile(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*")


def _trace_id(x) -> int | None:
    """A trace id (an SWF field, at most 2^63 - 1) given as a TOML integer, or None."""
    return x if isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_ID else None


def _c_id_ranges(v):
    """``3``, ``"10-20"`` or an array of them, to ((low, high), ...)."""
    items = v if isinstance(v, list) else [v]
    out = []
    for x in items:
        if _trace_id(x) is not None:
            out.append((x, x))
            continue
        m = _ID_RANGE_RE.fullmatch(x) if isinstance(x, str) else None
        try:
            low, high = (bounded.whole(m.group(1), 0, MAX_ID), bounded.whole(m.group(2), 0, MAX_ID)) if m else (1, 0)
        except ValueError:
            low, high = 1, 0
        if low <= high:
            out.append((low, high))
            continue
        raise ValueError(f"expected an id >= 0, a range like \"10-20\" or an array of them, got {show(x)}")
    if not out:
        raise ValueError("expected an id >= 0, a range like \"10-20\" or an array of them, got an empty array")
    return tuple(out)


def _c_queue_keys(v):
    """SWF queue numbers (integers) and/or CERIT-SC queue names (strings)."""
    items = v if isinstance(v, list) else [v]
    out = []
    for x in items:
        if _trace_id(x) is not None:
            out.append(x)
        elif isinstance(x, str) and x and len(x.split()) == 1:
            out.append(x)
        else:
            raise ValueError(f"expected a queue number >= 0, a queue name or an array of them, got {show(x)}")
    if not out:
        raise ValueError("expected a queue number >= 0, a queue name or an array of them, got an empty array")
    return tuple(out)


_CONVERTERS["id_ranges"] = _c_id_ranges
_CONVERTERS["queue_keys"] = _c_queue_keys

_TRACE_KEYS = {"walltime", "default_walltime", "default_vo", "default_image", "default_queue", "memory",
               "memory_per_core", "oversize", "features", "map", "hosts"}
_TRACE_RULE_KEYS = {"user", "group", "queue", "partition", "executable", "vo", "image", "class", "flavor",
                    "exec_queue", "interactive_below", "walltime"}


def _one_of(*choices):
    return lambda v: None if v in choices else \
        "expected " + ", ".join(f"\"{c}\"" for c in choices[:-1]) + f" or \"{choices[-1]}\", got {show(v)}"


def _parse_trace(r: _Reader, t: Any, images, queues, flavors, classes, base_dir: Path | None) -> TraceMapping:
    """``[trace]``: how a workload trace's fields stand in for what the scheduler needs."""
    t = r.table(t, ("trace",), _TRACE_KEYS)
    rules = []
    for i, mr in enumerate(r.array_of_tables(t.get("map"), ("trace", "map"))):
        p = ("trace", "map", i)
        r.table(mr, p, _TRACE_RULE_KEYS)
        match = {k: r.get(mr, k, p, "id_ranges", None) for k in ("user", "group", "partition", "executable")}
        queue = r.get(mr, "queue", p, "queue_keys", None)
        targets = {}
        for k, known, label in (("image", images, "[[images]]"), ("exec_queue", queues, "[[queues]]"),
                                ("flavor", flavors, "flavors")):
            v = r.get(mr, k, p, "str", None)
            if v is not None and v not in known:
                r.problem(p + (k,), f"{show(v)} is not defined in {label} (known: {', '.join(sorted(known)) or 'none'})")
                v = None
            targets[k] = v
        kl = r.get(mr, "class", p, "str", None)
        if kl is not None and kl not in classes:
            r.problem(p + ("class",), f"{show(kl)} is not one of classes {list(classes)}")
            kl = None
        vo = r.get(mr, "vo", p, "str", None, check=_is_name)
        below = r.get(mr, "interactive_below", p, "duration", None)
        wall = r.get(mr, "walltime", p, "duration", None, check=_positive)
        if not any(k in mr for k in ("vo", "image", "class", "flavor", "exec_queue", "interactive_below",
                                     "walltime")):
            r.problem(p, "a map rule sets nothing (expected at least one of vo, image, class, flavor, "
                         "exec_queue, interactive_below, walltime)")
        line = r.locator.line_of(p)
        rules.append(TraceRule(f"{r.source}:{line}" if line else r.source, match["user"], match["group"],
                               match["partition"], match["executable"], queue, vo, targets["image"], kl,
                               targets["flavor"], targets["exec_queue"], below, wall))
    dimg = r.get(t, "default_image", ("trace",), "str", None)
    if dimg is not None and dimg not in images:
        r.problem(("trace", "default_image"), f"{show(dimg)} is not defined in [[images]]")
    dq = r.get(t, "default_queue", ("trace",), "str", None)
    if dq is not None and dq not in queues:
        r.problem(("trace", "default_queue"), f"{show(dq)} is not defined in [[queues]]")
    feats = r.get(t, "features", ("trace",), "strs", ())
    for f in feats or ():
        if _is_name(f):
            r.problem(("trace", "features"), _is_name(f))
    return TraceMapping(
        tuple(rules),
        r.get(t, "walltime", ("trace",), "str", "queue-limit", check=_one_of("queue-limit", "oracle", "requested")),
        r.get(t, "default_vo", ("trace",), "str", "local", check=_is_name) or "local",
        dimg, dq, r.get(t, "memory_per_core", ("trace",), "size", 1740) or 1740,
        r.get(t, "hosts", ("trace",), "str", None), dict(t),
        r.get(t, "default_walltime", ("trace",), "duration", 86400.0, check=_positive) or 86400.0,
        r.get(t, "memory", ("trace",), "str", "per-core", check=_one_of("per-core", "used", "requested")),
        r.get(t, "oversize", ("trace",), "str", "cap", check=_one_of("cap", "refuse")),
        tuple(feats or ()),
        str(base_dir) if base_dir is not None else None)


def _check_routing_loops(r: _Reader, queues: Mapping[str, Queue], raw_dest) -> None:
    """A routing loop (a -> b -> a) would bounce a job forever; PBS refuses it too."""
    where = {name: p for p, name, _ in raw_dest}
    reported: set[frozenset] = set()
    for start in queues:
        stack, seen = [(start, (start,))], set()
        while stack:
            q, trail = stack.pop()
            for d in queues[q].destinations if q in queues else ():
                if d == start and len(trail) > 1:
                    if frozenset(trail) not in reported:
                        reported.add(frozenset(trail))
                        r.problem(where[start] + ("destinations",), "routing loop " + " -> ".join(trail + (d,)))
                    stack = []
                    break
                if d not in seen and d in queues:
                    seen.add(d)
                    stack.append((d, trail + (d,)))


def load_policy(path) -> Policy:
    """Read and validate a policy file; missing, unreadable, binary or empty files are errors
    with the file's name, like any other problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise PolicyError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise PolicyError([f"{path}: is a directory, expected a TOML policy file"]) from None
    except OSError as e:
        raise PolicyError([f"{path}: cannot read: {e.strerror}"]) from None
    if b"\x00" in raw:
        raise PolicyError([f"{path}: binary file, expected a TOML policy file"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        no = raw[: e.start].count(b"\n") + 1
        raise PolicyError([f"{path}:{no}: not UTF-8 text, expected a TOML policy file"]) from None
    if not text.strip():
        raise PolicyError([f"{path}: the policy file is empty (expected at least [site] and [[queues]])"])
    try:
        return parse_policy(text, str(path), base_dir=p.parent, policy_file=p)
    except ModelError as e:
        raise PolicyError([f"{path}: {x}" for x in e.problems]) from None


def initial_domains(policy: Policy):
    """The domains the policy file defines per host, as a freshly started site has them:
    in file order, each active (free) while the host has room (``max_active``, cores, memory),
    the others occupied."""
    from vmsched.model import Domain, DomainState
    hosts = {h.name: h for h in policy.hosts}
    out, active, numbers = [], {}, {}
    for host, image, flavor, count in policy.domains_per_host:
        h = hosts[host]
        cores, memory = policy.flavors[flavor].size_on(h)
        for _ in range(count):
            n, c, m = active.get(host, (0, 0, 0))
            fits = n < h.max_active and c + cores <= h.cores and m + memory <= h.memory_mb
            state = DomainState.FREE if fits else DomainState.OCCUPIED
            if fits:
                active[host] = (n + 1, c + cores, m + memory)
            k = numbers[(host, image)] = numbers.get((host, image), 0) + 1
            out.append(Domain(f"{host}-{image}-{k}", host, image, flavor, state, cores, memory))
    return out
