"""Readers for batch workload traces in the Standard Workload Format (SWF).

The simulator replays real logs, so this module has to accept what real archives contain
(padded header keys, gzip without a ``.gz`` name, float CPU times, the 21-field CERIT-SC
variant) and refuse what would silently corrupt a replay (a shifted column, a negative
runtime).  Every refusal is a :class:`TraceError` whose text is one line,
``FILE:LINE: what was wrong and what was expected``, because these files are edited and
cut by hand and the person reading the message needs to open the file at that line.

Readers work on bytes, not text: ``int(b"123")`` is valid Python, and skipping the decode
keeps a full read of the 103,656-job METACENTRUM log to about one second.
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import importlib.resources
import math
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from vmsched import bounded
from vmsched.bounded import MAX_CORES, MAX_HOSTS, MAX_ID, MAX_TIME, NumberError
from vmsched.errors import clip, describe, show

__all__ = [
    "TraceError", "NodePart", "NodeSpec", "TraceJob", "Trace", "Cluster",
    "read_trace", "iter_trace", "TraceReader", "read_machines", "format_job",
    "bundled_trace", "bundled_machines", "BUNDLED_TRACES",
    "SWF_FIELDS", "STANDARD_FIELD_COUNT", "EXTENDED_FIELD_COUNT", "MAX_PROBLEMS",
]

STANDARD_FIELD_COUNT = 18
EXTENDED_FIELD_COUNT = 21
MAX_PROBLEMS = 10
"""How many skipped-line messages a :class:`Trace` keeps: enough to see a pattern, not a
copy of a broken file in memory."""

# (attribute name, label used in messages); position + 1 is the SWF field number.
SWF_FIELDS: tuple[tuple[str, str], ...] = (
    ("job_id", "job id"),
    ("submit", "submit time"),
    ("wait", "wait time"),
    ("run", "run time"),
    ("allocated_procs", "allocated processors"),
    ("avg_cpu", "average CPU time"),
    ("used_mem", "used memory"),
    ("requested_procs", "requested processors"),
    ("requested_time", "requested time"),
    ("requested_mem", "requested memory"),
    ("status", "status"),
    ("uid", "user id"),
    ("gid", "group id"),
    ("app", "application number"),
    ("queue", "queue number"),
    ("partition", "partition number"),
    ("preceding_job", "preceding job"),
    ("think_time", "think time"),
)
# Fields the SWF definition lets be fractional (CTC, SDSC and HPC2N write "142.00" here).
_FLOAT_FIELDS = frozenset({5, 6, 9})
# The largest value of each field (vmsched.bounded): times and durations (submit, wait, run,
# average CPU time, requested time, think time) up to 2^40 s, which the scheduler takes as
# times; the others (ids, counts, memory) up to 2^63 - 1, a 64-bit integer.
_TIME_FIELDS = frozenset({1, 2, 3, 5, 8, 17})
FIELD_MAX: tuple[int, ...] = tuple(MAX_TIME if i in _TIME_FIELDS else MAX_ID for i in range(len(SWF_FIELDS)))


class TraceError(ValueError):
    """A trace file that cannot be read as SWF; ``str()`` is a single ``FILE:LINE: ...`` line."""

    def __init__(self, path: Any, line: int | None, reason: str):
        self.path = str(path)
        self.line = line
        self.reason = clip(reason)
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {self.reason}")


# --------------------------------------------------------------------------- validators

def _opt_count(_inst, attribute, value):
    # -1 ("unknown") is mapped to None on reading, so a stored -1 would mean a caller
    # bypassed that mapping and two spellings of "unknown" would start to circulate.
    if value is not None and (type(value) is not int or value < 0):
        raise ValueError(f"{attribute.name} must be a whole number >= 0 or None (unknown), got {value!r}")


def _opt_amount(_inst, attribute, value):
    if value is None:
        return
    if type(value) not in (int, float) or (type(value) is float and not math.isfinite(value)) or value < 0:
        raise ValueError(f"{attribute.name} must be a finite number >= 0 or None (unknown), got {value!r}")


def _amount(_inst, attribute, value):
    if value is None:
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got None")
    _opt_amount(_inst, attribute, value)


def _token(_inst, attribute, value):
    if value is None:
        raise ValueError(f"{attribute.name} must be a non-empty string without spaces, got None")
    _opt_token(_inst, attribute, value)


def _job_id(_inst, attribute, value):
    if type(value) is not int or value < 0:
        raise ValueError(f"{attribute.name} must be a whole number >= 0, got {value!r}")


def _pos_int(_inst, attribute, value):
    if type(value) is not int or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number >= 1, got {value!r}")


_WORD_RE = re.compile(r"^[^\s:+#=]+$")


def _words(_inst, attribute, value):
    if not isinstance(value, tuple) or not all(isinstance(v, str) and _WORD_RE.match(v) for v in value):
        raise ValueError(f"{attribute.name} must be a tuple of names without spaces or ':+#=', got {value!r}")


def _pairs(_inst, attribute, value):
    ok = isinstance(value, tuple) and all(
        isinstance(p, tuple) and len(p) == 2 and all(isinstance(s, str) and _WORD_RE.match(s) for s in p)
        for p in value
    )
    if not ok:
        raise ValueError(f"{attribute.name} must be a tuple of (key, value) name pairs, got {value!r}")


def _opt_token(_inst, attribute, value):
    if value is not None and (not isinstance(value, str) or not value or len(value.split()) != 1):
        raise ValueError(f"{attribute.name} must be a non-empty string without spaces or None, got {value!r}")


def _opt_node_ids(_inst, attribute, value):
    if value is not None and (
        not isinstance(value, tuple) or not all(type(v) is int and v >= 0 for v in value)
    ):
        raise ValueError(f"{attribute.name} must be a tuple of node ids >= 0 or None, got {value!r}")


# --------------------------------------------------------------------------- node specs

@attrs.frozen(slots=True)
class NodePart:
    """One ``+``-separated chunk of a PBS nodespec.

    A chunk names either a node count or one host (``zewura19.cerit-sc.cz:ppn=12``), so
    ``host`` is set only in the second case and ``count`` is then 1.  Plain words are node
    properties; they are kept verbatim, including CERIT-SC's ``^``-prefixed ones, whose
    meaning is site policy and not this reader's to guess.  ``key=value`` words other than
    ``ppn`` (``mem=2gb``, ``host=zewura10``) go to ``resources``.
    """

    count: int = attrs.field(validator=_pos_int)
    ppn: int = attrs.field(default=1, validator=_pos_int)
    properties: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_words)
    resources: tuple[tuple[str, str], ...] = attrs.field(
        default=(), converter=lambda v: tuple(tuple(p) for p in v), validator=_pairs)
    host: str | None = attrs.field(default=None, validator=_opt_token)

    def __str__(self) -> str:
        words = [self.host if self.host is not None else str(self.count)]
        if self.ppn != 1:
            words.append(f"ppn={self.ppn}")
        words.extend(self.properties)
        words.extend(f"{k}={v}" for k, v in self.resources)
        return ":".join(words)


@attrs.frozen(slots=True)
class NodeSpec:
    """What a job asked PBS for with ``-l nodes=...``.

    Trace jobs keep the whole request (several chunks, ``#excl``) because a replay that
    shrinks ``1:ppn=1+3:ppn=2`` to one chunk would schedule a different job than the one
    that ran.  The convenience properties answer the common single-chunk case.
    """

    parts: tuple[NodePart, ...] = attrs.field(converter=tuple)
    exclusive: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    @parts.validator
    def _check_parts(self, attribute, value):
        if not value or not all(isinstance(p, NodePart) for p in value):
            raise ValueError(f"{attribute.name} must be a non-empty tuple of NodePart, got {value!r}")

    @property
    def nodes(self) -> int:
        return sum(p.count for p in self.parts)

    @property
    def ppn(self) -> int | None:
        """The processors per node, or None when the chunks disagree (then see ``parts``)."""
        values = {p.ppn for p in self.parts}
        return values.pop() if len(values) == 1 else None

    @property
    def procs(self) -> int:
        return sum(p.count * p.ppn for p in self.parts)

    @property
    def properties(self) -> tuple[str, ...]:
        """All chunks' properties, first occurrence first, without repeats (a property is a
        requirement, so ``cl_zewura:cl_zewura`` asks for nothing more than ``cl_zewura``)."""
        return tuple(dict.fromkeys(w for p in self.parts for w in p.properties))

    @classmethod
    def parse(cls, text: str) -> NodeSpec:
        """Parse ``1:ppn=64:x86_64:cl_zewura#excl`` and friends; ValueError names the problem."""
        if not isinstance(text, str) or not text.strip() or len(text.split()) != 1:
            raise ValueError(f"expected a nodespec like 1:ppn=2:prop, got {text!r}")
        body, *flags = text.split("#")
        exclusive = False
        for flag in flags:
            if flag == "excl":
                exclusive = True
            elif flag != "shared":
                raise ValueError(f"unknown nodespec flag #{flag} in {text!r} (expected #excl or #shared)")
        parts = []
        for chunk in body.split("+"):
            words = chunk.split(":")
            head = words[0]
            if not head or "=" in head:
                raise ValueError(f"expected a node count or host name at the start of {chunk!r} in {text!r}")
            count, host = (_spec_number(head, "node count", text), None) if bounded.is_digits(head) else (1, head)
            ppn: int | None = None
            props: list[str] = []
            res: list[tuple[str, str]] = []
            for word in words[1:]:
                key, eq, value = word.partition("=")
                if not word or (eq and (not key or not value)):
                    raise ValueError(f"empty or malformed word {word!r} in nodespec {text!r}")
                if key == "ppn" and eq:
                    if ppn is not None:
                        raise ValueError(f"ppn given twice in {text!r}")
                    ppn = _spec_number(value, "ppn", text)
                elif eq:
                    res.append((key, value))
                else:
                    props.append(word)
            parts.append(NodePart(count, ppn or 1, tuple(props), tuple(res), host))
        return cls(tuple(parts), exclusive)

    def __str__(self) -> str:
        return "+".join(str(p) for p in self.parts) + ("#excl" if self.exclusive else "")


def _spec_number(value: str, what: str, text: str) -> int:
    try:
        return bounded.whole(value, 1, MAX_CORES)
    except NumberError:
        raise ValueError(f"expected {what} from 1 to 2^20 in {show(text)}, got {show(value)}") from None


# --------------------------------------------------------------------------- jobs and traces

@attrs.frozen(slots=True)
class TraceJob:
    """One job record.  ``None`` is SWF's ``-1``: the log does not know.

    Units are the file's: seconds for times; SWF says memory is KB per processor, but the
    CERIT-SC extended files hold *bytes* in ``requested_mem`` (see :attr:`Trace.extended`).
    ``queue`` is the SWF queue *number*; extended files add the PBS queue *name* as
    ``queue_name``, the allocated node ids (one entry per allocated CPU, as logged) and the
    nodespec.  ``nodespec`` is None when the logged text is not a nodespec PBS would parse
    (wagap-2013 has ``1:ppn=1.5:brno``); ``nodespec_text`` always keeps what was logged.
    """

    job_id: int = attrs.field(validator=_job_id)
    submit: int | None = attrs.field(default=None, validator=_opt_count)
    wait: int | None = attrs.field(default=None, validator=_opt_count)
    run: int | None = attrs.field(default=None, validator=_opt_count)
    allocated_procs: int | None = attrs.field(default=None, validator=_opt_count)
    avg_cpu: float | None = attrs.field(default=None, validator=_opt_amount)
    used_mem: float | None = attrs.field(default=None, validator=_opt_amount)
    requested_procs: int | None = attrs.field(default=None, validator=_opt_count)
    requested_time: int | None = attrs.field(default=None, validator=_opt_count)
    requested_mem: float | None = attrs.field(default=None, validator=_opt_amount)
    status: int | None = attrs.field(default=None, validator=_opt_count)
    uid: int | None = attrs.field(default=None, validator=_opt_count)
    gid: int | None = attrs.field(default=None, validator=_opt_count)
    app: int | None = attrs.field(default=None, validator=_opt_count)
    queue: int | None = attrs.field(default=None, validator=_opt_count)
    partition: int | None = attrs.field(default=None, validator=_opt_count)
    preceding_job: int | None = attrs.field(default=None, validator=_opt_count)
    think_time: int | None = attrs.field(default=None, validator=_opt_count)
    allocated_nodes: tuple[int, ...] | None = attrs.field(default=None, validator=_opt_node_ids)
    queue_name: str | None = attrs.field(default=None, validator=_opt_token)
    nodespec_text: str | None = attrs.field(default=None, validator=_opt_token)
    nodespec: NodeSpec | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(NodeSpec)))

    def __attrs_post_init__(self):
        # An extended record is all-or-nothing: a job with a queue name but no nodespec
        # could not have come from one line of a CERIT-SC file.
        given = (self.allocated_nodes is not None, self.queue_name is not None, self.nodespec_text is not None)
        if any(given) and not all(given):
            raise ValueError("allocated_nodes, queue_name and nodespec_text must be given together or not at all")
        if self.nodespec is not None and self.nodespec_text is None:
            raise ValueError("nodespec needs the nodespec_text it was parsed from")

    @property
    def extended(self) -> bool:
        return self.queue_name is not None

    @property
    def start(self) -> int | None:
        if self.submit is None or self.wait is None:
            return None
        return self.submit + self.wait

    @property
    def end(self) -> int | None:
        start = self.start
        return None if start is None or self.run is None else start + self.run


def _header_dict(value: Any) -> dict[str, Any]:
    return dict(value)


@attrs.frozen(slots=True)
class Trace:
    """A whole trace in memory.

    ``header`` maps each ``; Key: value`` key to its value. A key given more than once maps
    to a tuple of every value in order, because PWA logs list one queue or partition a line
    (``Queue``, ``Partition``) and keeping only the last would misreport the machine;
    ``Note`` is always such a tuple, since all notes matter (the cleaning filters are in
    the second).  Indented comment lines without a key continue the previous value on a
    new line.  ``skipped``/``problems`` are non-empty only with ``skip_bad=True`` and say
    how far the reader had to look away.
    """

    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    header: dict[str, Any] = attrs.field(converter=_header_dict, hash=False)
    jobs: tuple[TraceJob, ...] = attrs.field(
        converter=tuple,
        validator=attrs.validators.deep_iterable(attrs.validators.instance_of(TraceJob)),
        repr=lambda jobs: f"<{len(jobs)} jobs>",
    )
    skipped: int = attrs.field(default=0, validator=attrs.validators.and_(
        attrs.validators.instance_of(int), attrs.validators.ge(0)))
    extended: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    problems: tuple[str, ...] = attrs.field(
        default=(), converter=tuple,
        validator=attrs.validators.deep_iterable(attrs.validators.instance_of(str)))

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self) -> Iterator[TraceJob]:
        return iter(self.jobs)


# --------------------------------------------------------------------------- reading

_HEADER_RE = re.compile(r"^;\s*([A-Za-z][A-Za-z0-9_]*):(?:\s+(.*?))?\s*$")
_GZIP_MAGIC = b"\x1f\x8b"


def _trace_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".swf"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or path.name


def _show(token: bytes | str) -> str:
    """A token as it can be shown inside a one-line message."""
    text = token.decode("utf-8", "backslashreplace") if isinstance(token, bytes) else token
    if len(text) > 40:
        text = text[:37] + "..."
    return repr(text)


@contextlib.contextmanager
def _open_lines(path: Path) -> Iterator[IO[bytes]]:
    """Open plain or gzip by magic bytes: archive copies lose or gain ``.gz`` names."""
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise TraceError(path, None, "no such file") from None
    except IsADirectoryError:
        raise TraceError(path, None, "is a directory, expected an SWF file") from None
    except OSError as exc:
        raise TraceError(path, None, f"cannot open: {exc.strerror or exc}") from None
    with raw:
        try:
            magic = raw.peek(2)[:2]  # peek, not read+seek: pipes and FIFOs cannot seek
        except OSError as exc:
            raise TraceError(path, None, f"cannot read: {exc.strerror or exc}") from None
        if magic == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz
        else:
            yield raw


class TraceReader:
    """Iterator over a trace's jobs, for logs too large to hold as objects.

    It fills in ``header``, ``extended``, ``skipped`` and ``problems`` as it goes, so they
    are complete once iteration ends.  The file is closed when iteration ends, on
    :meth:`close`, or on leaving a ``with`` block.
    """

    def __init__(self, path: str | Path, skip_bad: bool = False):
        self.path = Path(path)
        self.name = _trace_name(self.path)
        self.skip_bad = skip_bad
        self.header: dict[str, Any] = {}
        self.extended: bool | None = None
        self.skipped = 0
        self.problems: list[str] = []
        self.jobs_read = 0
        self._width = 0
        self._first_job_line = 0
        self._last_key: str | None = None
        self._gen = self._generate()

    def __iter__(self) -> TraceReader:
        return self

    def __next__(self) -> TraceJob:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> TraceReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- internals

    def _generate(self) -> Iterator[TraceJob]:
        path = self.path
        lineno = 0
        with _open_lines(path) as fh:
            try:
                lines = iter(fh)
                while True:
                    try:
                        raw = next(lines)
                    except StopIteration:
                        break
                    lineno += 1
                    job = self._line(raw, lineno)
                    if job is not None:
                        self.jobs_read += 1
                        yield job
            except (OSError, EOFError, zlib.error) as exc:
                # gzip.BadGzipFile is an OSError; a truncated stream ends in EOFError.
                what = "truncated or corrupt gzip data" if isinstance(fh, gzip.GzipFile) else "read error"
                where = f"after line {lineno}" if lineno else "before the first line"
                raise TraceError(path, None, f"{what} {where}: {exc}") from None
        if self.jobs_read == 0:
            if self.skipped:
                raise TraceError(path, None, f"no valid job lines ({self.skipped} bad lines skipped, "
                                 f"first: {self.problems[0]})")
            raise TraceError(path, None, "no job lines, expected SWF records of 18 or 21 fields")

    def _bad(self, lineno: int, reason: str) -> None:
        err = TraceError(self.path, lineno, reason)
        if not self.skip_bad:
            raise err
        self.skipped += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(str(err))

    def _line(self, raw: bytes, lineno: int) -> TraceJob | None:
        if b"\x00" in raw:
            self._bad(lineno, "binary data (NUL bytes), expected a line of SWF text")
            return None
        parts = raw.split()
        if not parts:
            return None
        if parts[0][:1] == b";":
            self._header_line(raw, lineno)
            return None
        n = len(parts)
        if self.extended is None:
            if n == STANDARD_FIELD_COUNT:
                self.extended = False
            elif n == EXTENDED_FIELD_COUNT:
                self.extended = True
            else:
                self._bad(lineno, f"{n} fields, expected 18 (standard SWF) or 21 (extended CERIT-SC SWF)")
                return None
            self._first_job_line = lineno
            self._width = n
        elif n != self._width:
            kind = "extended CERIT-SC" if self.extended else "standard"
            self._bad(lineno, f"{n} fields, expected {self._width} like the first job line "
                              f"(line {self._first_job_line}, {kind} SWF)")
            return None
        numeric = parts[:STANDARD_FIELD_COUNT]
        try:
            values: list[Any] = [int(t) for t in numeric]
            # int() would take 1_000; no SWF writer emits it.  Extended lines have '_' in
            # queue names, so only their numeric part is looked at.
            if b"_" in raw and (not self.extended or b"_" in b"".join(numeric)):
                raise ValueError
        except ValueError:
            values = self._slow_numbers(numeric, lineno)
            if values is None:
                return None
        low = min(values)
        # Only the fractional fields can hold a value strictly between -1 and 0.
        if values[0] < 0 or low < -1 or (
                low < 0 and (-1 < values[5] < 0 or -1 < values[6] < 0 or -1 < values[9] < 0)):
            return self._range_problem(values, lineno)
        if max(values) > MAX_TIME and self._too_large(values, lineno):
            return None
        values = [None if v == -1 else v for v in values]
        try:
            if not self.extended:
                return TraceJob(*values)
            return self._extended_job(values, parts, lineno)
        except TraceError:
            raise
        except ValueError as exc:  # what the checks above let through, the model refuses
            self._bad(lineno, describe(exc))
            return None

    def _slow_numbers(self, numeric: list[bytes], lineno: int) -> list[Any] | None:
        values: list[Any] = []
        for i, tok in enumerate(numeric):
            label = SWF_FIELDS[i][1]
            plain = tok.isascii() and b"_" not in tok
            try:
                if not plain:
                    raise ValueError
                values.append(int(tok))
                continue
            except ValueError:
                pass
            if i == 0:
                self._bad(lineno, f"field 1 ({label}) is {_show(tok)}, expected a whole number >= 0")
                return None
            if i in _FLOAT_FIELDS and plain:
                try:
                    f = float(tok)
                except ValueError:
                    f = math.nan
                if math.isfinite(f):
                    values.append(f)
                    continue
                expected = "a finite number (-1 if unknown)"
            else:
                expected = "a whole number (-1 if unknown)"
            self._bad(lineno, f"field {i + 1} ({label}) is {_show(tok)}, expected {expected}")
            return None
        return values

    def _range_problem(self, values: list[Any], lineno: int) -> None:
        if values[0] < 0:
            self._bad(lineno, f"field 1 (job id) is {show(values[0])}, expected a whole number >= 0")
            return None
        for i, v in enumerate(values):
            if v < 0 and v != -1:
                self._bad(lineno, f"field {i + 1} ({SWF_FIELDS[i][1]}) is {show(v)}, "
                                  f"expected a value >= 0, or -1 if unknown")
                return None
        return None

    def _too_large(self, values: list[Any], lineno: int) -> bool:
        """Report the first field past its bound (FIELD_MAX), if any: a 400-digit submit
        time is read by int() as easily as 5, and would overflow later as a float."""
        for i, (v, most) in enumerate(zip(values, FIELD_MAX)):
            if v > most:
                self._bad(lineno, f"field {i + 1} ({SWF_FIELDS[i][1]}) is {show(v)}, expected at most "
                                  f"{bounded.bound_text(most)}, or -1 if unknown")
                return True
        return False

    def _extended_job(self, values: list[Any], parts: list[bytes], lineno: int) -> TraceJob | None:
        nodes_tok, queue_tok, spec_tok = parts[18], parts[19], parts[20]
        if not (nodes_tok[:1] == b"{" and nodes_tok[-1:] == b"}"):
            self._bad(lineno, f"field 19 (allocated nodes) is {_show(nodes_tok)}, "
                              "expected node ids in braces like {12,12,13}")
            return None
        inner = nodes_tok[1:-1]
        try:
            nodes = tuple(bounded.whole(t, 0, MAX_ID) for t in inner.split(b",")) if inner else ()
        except ValueError:
            self._bad(lineno, f"field 19 (allocated nodes) is {_show(nodes_tok)}, "
                              "expected node ids >= 0 in braces like {12,12,13}")
            return None
        try:
            queue_name = queue_tok.decode("utf-8")
            spec_text = spec_tok.decode("utf-8")
        except UnicodeDecodeError:
            self._bad(lineno, "fields 20-21 (queue name, nodespec) are not UTF-8 text")
            return None
        try:
            spec = NodeSpec.parse(spec_text)
        except ValueError:
            spec = None
        return TraceJob(*values, nodes, queue_name, spec_text, spec)

    def _header_line(self, raw: bytes, lineno: int) -> None:
        text = raw.decode("utf-8", "replace").strip()
        m = _HEADER_RE.match(text)
        header = self.header
        if m:
            key, value = m.group(1), m.group(2) or ""
            if key == "Note" or key in header:
                # A repeated key keeps every value (PWA logs list one Queue or Partition a line)
                old = header.get(key, ())
                header[key] = (old if isinstance(old, tuple) else (old,)) + (value,)
            else:
                header[key] = value
            self._last_key = key
            return
        rest = text[1:].strip()
        last = self._last_key
        if not rest:
            self._last_key = None  # a bare ';' ends a multi-line value
        elif last is not None:
            if isinstance(header[last], tuple):
                values = header[last]
                header[last] = values[:-1] + (f"{values[-1]}\n{rest}".lstrip("\n"),)
            else:
                header[last] = f"{header[last]}\n{rest}".lstrip("\n")


def iter_trace(path: str | Path, skip_bad: bool = False) -> TraceReader:
    """Jobs one at a time; the returned reader also carries header and skip counts.

    The file is opened on the first ``next()``, so a missing file raises there.
    """
    return TraceReader(path, skip_bad=skip_bad)


def read_trace(path: str | Path, skip_bad: bool = False) -> Trace:
    """The whole trace; bad lines raise :class:`TraceError` unless ``skip_bad``."""
    reader = TraceReader(path, skip_bad=skip_bad)
    with reader:
        jobs = tuple(reader)
    return Trace(
        name=reader.name,
        header=reader.header,
        jobs=jobs,
        skipped=reader.skipped,
        extended=bool(reader.extended),
        problems=tuple(reader.problems),
    )


def _swf_value(value: Any) -> str:
    if value is None:
        return "-1"
    if type(value) is float:
        return repr(value)
    return str(value)


def format_job(job: TraceJob) -> str:
    """One SWF line for ``job`` (21 fields if it is extended), readable by :func:`read_trace`."""
    fields = [_swf_value(getattr(job, name)) for name, _ in SWF_FIELDS]
    if job.extended:
        fields.append("{" + ",".join(str(n) for n in job.allocated_nodes or ()) + "}")
        fields.append(job.queue_name or "")
        fields.append(job.nodespec_text or "")
    return " ".join(fields)


# --------------------------------------------------------------------------- Alea machines

@attrs.frozen(slots=True)
class Cluster:
    """One line of an Alea ``.machines`` file: a homogeneous group of hosts.

    Alea's extended traces name no host sizes, so this file is the only record of the
    capacity the jobs were scheduled against.
    """

    id: int = attrs.field(validator=_job_id)
    name: str = attrs.field(validator=_token)
    nodes: int = attrs.field(validator=_pos_int)
    cpus_per_node: int = attrs.field(validator=_pos_int)
    speed: float = attrs.field(validator=_amount)
    ram_kb: int = attrs.field(validator=_job_id)

    @property
    def cpus(self) -> int:
        return self.nodes * self.cpus_per_node


# (least, most) of each numeric field of a .machines line: a cluster has at most as many
# nodes as a policy has hosts, and hosts at most 2^20 cores.
_MACHINE_BOUNDS = {0: (0, MAX_ID), 2: (1, MAX_HOSTS), 3: (1, MAX_CORES), 4: (0, bounded.MAX_WEIGHT), 5: (0, MAX_ID)}


def read_machines(path: str | Path) -> tuple[Cluster, ...]:
    """Clusters of an Alea ``.machines`` file (``id name nodes cpus_per_node speed ram_kb``)."""
    path = Path(path)
    labels = ("cluster id", "name", "nodes", "CPUs per node", "speed", "RAM in KB")
    clusters = []
    with _open_lines(path) as fh:
        try:
            for lineno, raw in enumerate(fh, 1):
                if b"\x00" in raw:
                    raise TraceError(path, lineno, "binary data (NUL bytes), expected a line of text")
                text = raw.decode("utf-8", "backslashreplace").strip()
                if not text or text[0] in ";#":
                    continue
                words = text.split("\t") if "\t" in text else text.split()
                words = [w.strip() for w in words]
                if len(words) != 6:
                    raise TraceError(path, lineno, f"{len(words)} fields, expected 6 separated by tabs: "
                                     "id name nodes cpus_per_node speed ram_kb")
                nums: dict[int, Any] = {}
                for i in (0, 2, 3, 4, 5):
                    least, most = _MACHINE_BOUNDS[i]
                    try:
                        nums[i] = bounded.decimal(words[i], least, most) if i == 4 else \
                            bounded.whole(words[i], least, most)
                    except NumberError:
                        kind = "a number" if i == 4 else "a whole number"
                        raise TraceError(path, lineno, f"field {i + 1} ({labels[i]}) is {_show(words[i])}, "
                                         f"expected {kind} from {least} to {bounded.bound_text(most)}") from None
                if not words[1] or len(words[1].split()) != 1:
                    raise TraceError(path, lineno, f"field 2 (name) is {_show(words[1])}, expected one word")
                clusters.append(Cluster(nums[0], words[1], nums[2], nums[3], nums[4], nums[5]))
        except (OSError, EOFError, zlib.error) as exc:
            raise TraceError(path, None, f"truncated or corrupt data: {exc}") from None
    if not clusters:
        raise TraceError(path, None, "no cluster lines, expected: id name nodes cpus_per_node speed ram_kb")
    return tuple(clusters)


# --------------------------------------------------------------------------- bundled slices

_BUNDLED = {
    "metacentrum-2009": ("METACENTRUM-2009-2-slice.swf.gz", None),
    "wagap-2013": ("wagap-2013-slice.swf.gz", "wagap-2013.swf.machines"),
}
BUNDLED_TRACES: tuple[str, ...] = tuple(_BUNDLED)

_resource_files = contextlib.ExitStack()
atexit.register(_resource_files.close)


def _data_path(filename: str) -> Path:
    resource = importlib.resources.files("vmsched").joinpath("data", filename)
    if isinstance(resource, Path):
        return resource
    # Installed from a zip: materialise once and keep the copy until exit.
    return _resource_files.enter_context(importlib.resources.as_file(resource))


def _bundled(name: str, which: int) -> Path:
    try:
        filename = _BUNDLED[name][which]
    except KeyError:
        raise KeyError(f"no bundled trace {name!r}; known: {', '.join(BUNDLED_TRACES)}") from None
    if filename is None:
        raise KeyError(f"bundled trace {name!r} has no .machines file")
    return _data_path(filename)


def bundled_trace(name: str) -> Path:
    """Path of a trace slice shipped with vmsched ("metacentrum-2009", "wagap-2013")."""
    return _bundled(name, 0)


def bundled_machines(name: str) -> Path:
    """Path of the Alea ``.machines`` file shipped with a bundled trace ("wagap-2013")."""
    return _bundled(name, 1)
