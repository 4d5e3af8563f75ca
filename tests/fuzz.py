"""Fuzzing vmsched's readers (issue 10): strategies that mutate real inputs, and the harness
that runs one input and checks its outcome.

Every input starts from something real: the bundled policy files, the bundled snapshot,
job and node attributes as a PBS server lists them, lines of the bundled SWF slices. The
mutations are byte- and value-level (insert, delete, replace, duplicate a chunk; put a
huge number, a unicode digit, deep nesting or a 100 KB value where a number or a value
was; hand a backend's None, float, int or bytes instead of text).

:func:`run` runs one input and holds it to what the README promises: success, or the
documented error type whose every line is one line, short, free of Python internals;
within a time and a memory bound; and, on success, nothing out of the documented bounds
(:func:`check_policy`, :func:`check_snapshot`, ...). :data:`COUNTS` keeps per target how
many inputs were tried and how each ended; ``tests/test_fuzz.py`` prints it.
"""

from __future__ import annotations

import gzip
import math
import re
import resource
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path

import attrs
from hypothesis import strategies as st

from vmsched.bounded import (MAX_ACTIVE, MAX_CORES, MAX_DISK_GB, MAX_DOMAINS_PER_HOST, MAX_HOSTS, MAX_ID,
                             MAX_MEMORY_MB, MAX_TIME, MAX_WEIGHT)
from vmsched.errors import MAX_TEXT
from vmsched.model import Domain, Host, Job, Snapshot

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "vmsched" / "examples"
DATA = ROOT / "vmsched" / "data"

#: Per target: "tried", and how each input ended ("ok", the error type's name).
COUNTS: dict[str, Counter] = defaultdict(Counter)

#: An input may take this much CPU time (not wall time: a loaded machine must not fail it) ...
MAX_SECONDS = 2.0
#: ... and is stopped as a hang after this long.
HANG_SECONDS = 20
#: ... and grow the process's peak memory by this much (the issue's case took 870 MB; the
#: largest policy the limits allow, 100,000 hosts, takes about 80 MB).
MAX_GROWTH_MB = 300
#: A problem line may be this much longer than the file name it starts with.
MAX_LINE = MAX_TEXT + 40

_INTERNALS = ("Traceback", "Attribute(", "<class '", "object at 0x", "validator=")


# --------------------------------------------------------------------------- seeds

def policy_seeds(plugin_module: str) -> list[bytes]:
    """The bundled policy files, and one that also has plugins and host ranges."""
    seeds = [p.read_bytes() for p in sorted(EXAMPLES.glob("*.toml"))]
    extra = (EXAMPLES / "cern.toml").read_text() + f'''
[[hosts]]
name = "wn[001-040]x[1-2]"
cores = 8
memory = "16gb"
disk = "500gb"
max_active = 2
max_domains = 4
cached_images = ["slc4"]
domains = [ {{ image = "slc4", flavor = "medium", count = 2 }} ]

[plugins]
queue_sort = "{plugin_module}:Sorter"
filter = "{plugin_module}:Drain"
'''
    return seeds + [extra.encode()]


PLUGIN_CODE = '''"""Plugins for the fuzz suite's policy seed."""
from vmsched.extensions import Status


class Sorter:
    def sort_key(self, job, priority):
        return (-priority, job.id)


class Drain:
    def filter(self, job, domain, host):
        return Status()
'''


def snapshot_seeds() -> list[bytes]:
    """The bundled snapshot, and a small one (hosts, domains and jobs of every state)."""
    small = Snapshot(
        1_700_000_000.0,
        (Host("wn1", 8, 16384, 500, frozenset({"ib"}), "tier3", 2, 4, frozenset({"slc5"})),
         Host("wn2", 4, 8192, up=False)),
        (Domain("wn1-slc5-1", "wn1", "slc5", "medium", "running", 2, 3584, 1_699_999_000.0),
         Domain("wn1-slc5-2", "wn1", "slc5", "small", "free", 1, 1740),
         Domain("wn2-deb-1", "wn2", "debian", "large", "suspended", 4, 7168)),
        (Job("1.srv", "alice", "atlas", "egee", "short", 2, 1700, 36000, 1_699_990_000.0, state="R",
             domain="wn1-slc5-1", start_time=1_699_999_100.0),
         Job("2.srv", "bob", "meta", "meta", "normal", 1, 0, 600, 1_699_999_500.0, interactive=True,
             features=frozenset({"ib"}), flavor="small"),
         Job("3.srv", "carol", "cms", "cms", "long", 4, 7000, 86400, 1_699_999_900.0, image="slc5",
             klass="privileged")),
    )
    import json
    return [(EXAMPLES / "metacenter-snapshot.json").read_bytes(),
            json.dumps(small.to_json(), indent=1).encode()]


JOB_SEEDS: list[dict] = [
    {"Job_Owner": "alice@ui.example.org", "euser": "alice", "egroup": "atlas", "queue": "short", "job_state": "Q",
     "Resource_List.walltime": "10:00:00", "Resource_List.mem": "1700mb", "Resource_List.nodes": "1:ppn=2",
     "qtime": "1700000000", "ctime": "1699999990"},
    {"Job_Owner": "bob@ui", "euser": "bob", "egroup": "meta", "queue": "normal", "job_state": "R",
     "exec_host": "wn01-slc5-1/0+wn01-slc5-1/1", "start_time": "1700000100", "Resource_List.walltime": "01:30:00",
     "Resource_List.ncpus": "4", "Resource_List.mem": "7gb", "Resource_List.image": "slc5", "interactive": "True",
     "qtime": "1700000000"},
    {"Job_Owner": "carol@ui", "egroup": "cms", "queue": "grid", "Resource_List.walltime": "90m",
     "Resource_List.vo": "cms", "Resource_List.flavor": "wn-soft", "Resource_List.place": "scatter:excl",
     "Resource_List.naccesspolicy": "singlejob", "Resource_List.nodes": "1:ppn=8:infiniband", "qtime": "1"},
]

HOST_SEEDS: list[dict] = [
    {"np": "8", "resources_available.mem": "16gb", "properties": "slc5,ib", "state": "free"},
    {"resources_available.ncpus": "32", "resources_available.mem": "128gb", "resources_available.disk": "2tb",
     "resources_available.owner": "tier3", "resources_available.images": "slc5,debian", "state": "job-busy"},
    {"pcpus": "4", "totmem": "8388608kb", "physmem": "8gb", "state": "down,offline", "properties": ""},
]

JOB_KEYS = sorted({k for s in JOB_SEEDS for k in s} | {"Resource_List.vmimage", "ctime"})
HOST_KEYS = sorted({k for s in HOST_SEEDS for k in s})


def swf_seeds() -> list[tuple[str, bytes]]:
    """Runs of four job lines from each bundled slice, with the slice's simulation policy."""
    out = []
    for slice_, policy in (("METACENTRUM-2009-2-slice.swf.gz", "metacentrum-sim.toml"),
                           ("wagap-2013-slice.swf.gz", "wagap-sim.toml")):
        lines = [x for x in gzip.decompress((DATA / slice_).read_bytes()).split(b"\n") if x and x[:1] != b";"]
        step = max(len(lines) // 40, 1)
        out += [(policy, b"\n".join(lines[i:i + 4]) + b"\n") for i in range(0, len(lines) - 4, step)]
    return out


# --------------------------------------------------------------------------- mutations

TOKENS: list[bytes] = [
    b"9" * 400, b"1" + b"0" * 400, b"9" * 5000, b"0" * 5000 + b"1", b"1e308", b"-1e308", b"1e999", b"nan",
    b"inf", b"-inf", b"-0", b"-1", b"0", b"1", b"1.5", b"2147483647", b"2147483648", b"4294967296",
    b"1099511627776", b"1099511627777", b"9223372036854775808", b"1e150", b"1e151", b"18446744073709551616",
    "²".encode(), "٣".encode(), "３".encode(), "①".encode(), "１:００:００".encode(), b"\x00", b"\xff\xfe",
    b"\xc3", b"\n", b"\r\n", b" ", b"\t", b"[", b"]", b"{", b"}", b"[[", b"]]", b"[" * 3000, b"{" * 3000,
    b"[" * 50 + b"1" + b"]" * 50, b'{"a":' * 2000, b'"', b"'", b"''", b'"""', b"=", b":", b",", b"#", b".",
    b"x" * 100_000, b"x" * 300, b"true", b"false", b"null", b"[01-99]", b"[0-99999]", b"[1-9][1-9][1-9][1-9][1-9]",
    b"[01-99][01-99][01-99]", b"1:ppn=", b"+", b"gb", b"mb", b"pb", b"w", b"s", b"m", b"h", b"d", b"_", b"\\",
    b"\\u0000", "é".encode(), "\u2028".encode(), b"-", b"10:61:00", b"99999999:00:00", b"builtins:dict",
    b"os:system", b"no_such_module:X",
    # values that keep JSON and TOML valid, so that a mutation reaches past the syntax
    b'"x"', b'""', b'"' + "²".encode() + b'"', b'"' + b"9" * 400 + b'"', b'"' + b"9" * 400 + b'mb"', b'"up"',
    b'"1:ppn=' + b"9" * 30 + b'"', b'"a\nb"', b'"' + b"x" * 5000 + b'"', b"[]", b"{}", b"[[1]]", b'["a"]',
    b"1e400", b"-1e400", b"NaN", b"Infinity", b"0.5", b"-0.0", b"4096", b"1048577", b'"99999999:00:00"',
    b'"n[0-99999]"', b'"n[01-99][01-99][01-99]"', b'"2147483648"', b"[" * 200 + b"]" * 200,
]

_NUMBER = re.compile(rb"[0-9]+(?:\.[0-9]+)?")
_VALUE = re.compile(rb'(?<=[:=])[ \t]*("(?:[^"\\\n]|\\.)*"|[^,\n\]}]+)')

_position = st.integers(0, 1 << 20)
# tokens are drawn by index, so that a failing example prints short
_token = st.integers(0, len(TOKENS) - 1)
_number = st.tuples(st.just("number"), _position, _token)
_value = st.tuples(st.just("value"), _position, _token)
_op = st.one_of(
    _number, _value, _number, _value,     # twice as likely: they keep the syntax more often
    st.tuples(st.just("insert"), _position, _token),
    st.tuples(st.just("delete"), _position, st.integers(1, 64)),
    st.tuples(st.just("replace"), _position, st.integers(1, 16), _token),
    st.tuples(st.just("duplicate"), _position, st.integers(1, 256), _position),
    st.tuples(st.just("number"), _position, _token),
    st.tuples(st.just("value"), _position, _token),
    st.tuples(st.just("byte"), _position, st.integers(0, 255)),
)
#: One to three mutations, applied in order.
mutations = st.lists(_op, min_size=1, max_size=3)


def mutate(data: bytes, ops) -> bytes:
    """``data`` after each mutation of ``ops`` (positions wrap around the length; tokens
    are indexes into :data:`TOKENS`)."""
    for op in ops:
        op = tuple(TOKENS[x] if i == len(op) - 1 and op[0] in ("insert", "replace", "number", "value") else x
                   for i, x in enumerate(op))
        kind, at = op[0], op[1] % (len(data) + 1)
        if kind == "insert":
            data = data[:at] + op[2] + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + op[2]:]
        elif kind == "replace":
            data = data[:at] + op[3] + data[at + op[2]:]
        elif kind == "duplicate":
            chunk, to = data[at:at + op[2]], op[3] % (len(data) + 1)
            data = data[:to] + chunk + data[to:]
        elif kind == "byte":
            data = data[:at] + bytes([op[2]]) + data[at + 1:]
        else:
            found = list((_NUMBER if kind == "number" else _VALUE).finditer(data))
            if found:
                m = found[op[1] % len(found)]
                g = 0 if kind == "number" else 1
                data = data[:m.start(g)] + op[2] + data[m.end(g):]
            else:
                data = data[:at] + op[2] + data[at:]
    return data


#: Values a snapshot's JSON may hold where another was (``json.dumps`` writes them all).
JSON_VALUES: list = [10 ** 400, 10 ** 4000, -1, 0, 1, 2 ** 31, 2 ** 31 - 1, 2 ** 40, 2 ** 40 + 1, 2 ** 63, 1e308, 1e150,
                     math.inf, -math.inf, math.nan, 0.5, -0.0, "²", "٣", "9" * 400, "x" * 5000, "", "a\nb", "Q", "R",
                     "up", "free", "running", None, True, False, [], [[1]], ["a", 1], {"a": 1}, "1700mb", "wn01"]

_json_op = st.tuples(st.sampled_from(["hosts", "domains", "jobs", "time"]), _position,
                     st.sampled_from(["set", "set", "swap", "swap", "drop", "twice", "unknown"]), _position,
                     st.integers(0, len(JSON_VALUES) - 1))
#: One to three changes to a snapshot's structure: a field set to an odd value, or to another
#: item's (a job moved to another domain), dropped; an item listed twice; an unknown key.
json_mutations = st.lists(_json_op, min_size=1, max_size=3)


def mutate_json(data: bytes, ops) -> bytes:
    """A snapshot's JSON after ``ops`` (:data:`json_mutations`), written back as JSON."""
    import json
    doc = json.loads(data)
    for section, at, how, key_at, value_at in ops:
        value = JSON_VALUES[value_at]
        if section == "time":
            doc["time"] = value
            continue
        items = doc.get(section) or []
        if not items:
            continue
        item = items[at % len(items)]
        keys = sorted(item)
        key = keys[key_at % len(keys)]
        if how == "set":
            item[key] = value
        elif how == "swap":
            item[key] = items[value_at % len(items)].get(key)
        elif how == "drop":
            item.pop(key, None)
        elif how == "twice":
            items.append(dict(item))
        else:
            item["colour"] = value
    return json.dumps(doc, indent=1).encode()


#: What a backend may hand over instead of text.
ODD_VALUES = st.sampled_from([None, 0, -1, 4, 1.0, 1.5, 1e308, math.inf, math.nan, -0.0, 10 ** 400, True, False,
                              b"1:00:00", b"\xff\xfe", b"", [], ["a"], {}, ("x",), object()])


@st.composite
def pbs_attributes(draw, seeds: list[dict], keys: list[str]) -> dict:
    """A seed's attributes with one to four changes: a value mutated as bytes (then decoded,
    or passed as bytes), a value of another type, a key dropped or added."""
    attrs_ = dict(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(keys + ["comment", "Resource_List.other"]))
        how = draw(st.sampled_from(["mutate", "mutate", "odd", "drop", "token"]))
        if how == "drop":
            attrs_.pop(key, None)
        elif how == "odd":
            attrs_[key] = draw(ODD_VALUES)
        else:
            base = attrs_.get(key)
            base = base.encode() if isinstance(base, str) else b"1"
            raw = mutate(base, draw(mutations)) if how == "mutate" else TOKENS[draw(_token)]
            attrs_[key] = raw if draw(st.integers(0, 4)) == 0 else raw.decode("utf-8", "replace")
    return attrs_


# --------------------------------------------------------------------------- the harness

def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check_lines(err: BaseException, where: str = "") -> None:
    """Each line of a documented error is one line, short (past the file name it starts
    with), and free of Python internals."""
    lines = getattr(err, "problems", None) or getattr(err, "lines", None) or [str(err)]
    assert lines, err
    for ln in lines:
        assert isinstance(ln, str) and ln, (type(err).__name__, ln)
        assert "\n" not in ln and "\r" not in ln, ln
        assert len(ln) <= len(where) + MAX_LINE, (len(ln), ln)
        assert not any(x in ln for x in _INTERNALS), ln


class Hang(BaseException):
    """An input ran past HANG_SECONDS."""


def _hang(signum, frame):
    raise Hang(f"stopped after {HANG_SECONDS} s")


def run(target: str, fn, documented: tuple[type[BaseException], ...], *, where: str = "", on_ok=None):
    """Run one input: ``fn()`` must return or raise one of ``documented`` (whose lines pass
    :func:`check_lines`) within :data:`MAX_SECONDS` and :data:`MAX_GROWTH_MB` (past
    :data:`HANG_SECONDS` it is stopped, as a hang); on success ``on_ok(result)`` checks the
    result. Counted in :data:`COUNTS`."""
    counts = COUNTS[target]
    counts["tried"] += 1
    rss, t = _max_rss_mb(), time.process_time()
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        result = fn()
    except documented as e:
        counts[type(e).__name__] += 1
        check_lines(e, where)
        result = None
    except BaseException as e:
        counts["other"] += 1
        counts[f"other: {type(e).__name__}"] += 1
        raise
    else:
        counts["ok"] += 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    took, grew = time.process_time() - t, _max_rss_mb() - rss
    assert took < MAX_SECONDS, f"{target}: one input took {took:.2f} s of CPU time"
    assert grew < MAX_GROWTH_MB, f"{target}: one input grew the peak memory by {grew:.0f} MB"
    if result is not None and on_ok is not None:
        on_ok(result)
    return result


# --------------------------------------------------------------------------- no silent acceptance

def _within(value, low, high, what) -> None:
    assert not isinstance(value, bool) and isinstance(value, (int, float)), (what, value)
    assert (math.isfinite(value) and low <= value <= high), (what, value)


def check_numbers(obj) -> None:
    """Every number anywhere in an accepted object is finite and no larger than the widest
    documented bound (2^63 - 1 for whole numbers, 1e150 for reals)."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    if isinstance(obj, int):
        assert abs(obj) <= MAX_ID, obj
    elif isinstance(obj, float):
        assert math.isfinite(obj) and abs(obj) <= MAX_WEIGHT, obj
    elif attrs.has(type(obj)):
        for a in attrs.fields(type(obj)):
            check_numbers(getattr(obj, a.name))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            check_numbers(k)
            check_numbers(v)
    elif isinstance(obj, (list, tuple, frozenset, set)):
        for v in obj:
            check_numbers(v)


#: The least and most of each number of an accepted object, as the README's limits say.
BOUNDS: dict[type, dict[str, tuple]] = {
    Host: {"cores": (1, MAX_CORES), "memory_mb": (1, MAX_MEMORY_MB), "max_active": (1, MAX_ACTIVE),
           "max_domains": (1, MAX_DOMAINS_PER_HOST), "disk_gb": (0, MAX_DISK_GB)},
    Job: {"cores": (1, MAX_CORES), "memory_mb": (0, MAX_MEMORY_MB), "walltime_s": (1, MAX_TIME),
          "submit_time": (0, MAX_TIME), "start_time": (0, MAX_TIME)},
    Domain: {"cores": (0, MAX_CORES), "memory_mb": (0, MAX_MEMORY_MB), "since": (0, MAX_TIME)},
}


def check_bounds(obj) -> None:
    """Each number of an accepted Host, Job or Domain within :data:`BOUNDS`."""
    for field, (low, high) in BOUNDS[type(obj)].items():
        value = getattr(obj, field)
        if value is not None:
            _within(value, low, high, field)


check_host = check_job = check_bounds


def check_snapshot(s: Snapshot) -> None:
    check_numbers(s)
    _within(s.time, 0, MAX_TIME, "time")
    for item in (*s.hosts, *s.domains, *s.jobs):
        check_bounds(item)


def check_trace(trace) -> None:
    from vmsched.sim.swf import FIELD_MAX, SWF_FIELDS
    check_numbers(trace)
    for job in trace.jobs:
        for (name, _), most in zip(SWF_FIELDS, FIELD_MAX):
            v = getattr(job, name)
            assert v is None or 0 <= v <= most, (name, v)


def check_policy(p) -> None:
    check_numbers(p)
    assert len(p.hosts) <= MAX_HOSTS
    for h in p.hosts:
        check_host(h)
    for w in (p.priority.fairshare, p.priority.klass, p.priority.age):
        _within(w, 0, MAX_WEIGHT, "weight")
    for d in (p.cycle_interval_s, p.lifecycle.idle_shutdown_s, p.lifecycle.shutdown_s, p.fairshare.half_life_s,
              p.preemption.suspend_s, p.preemption.resume_s, *(i.boot_s for i in p.images.values())):
        _within(d, 0, MAX_TIME, "duration")
    for f in p.flavors.values():
        _within(f.cores, 0, MAX_CORES, "flavor cores")
        _within(f.memory_mb, 0, MAX_MEMORY_MB, "flavor memory")
    for q in p.queues.values():
        for lim in (q.resources_min, q.resources_max):
            if lim.walltime_s is not None:
                _within(lim.walltime_s, 0, MAX_TIME, "queue walltime")
            if lim.memory_mb is not None:
                _within(lim.memory_mb, 0, MAX_MEMORY_MB, "queue memory")
