"""Bounded numbers: the one parser of every number a person types or a server sends.

The policy file, the PBS attribute strings (``Job.from_pbs``, ``Host.from_pbs``), snapshot
JSON and SWF traces all read their numbers here, so they follow one set of rules:

- digits are ASCII ``0-9`` only: ``str.isdigit()`` takes "²" and ``int()`` takes "٣", and
  neither is a number anybody meant to type into a batch system;
- every number has explicit bounds, checked *before* any conversion that could fail on it
  (an int too large for a float, an infinite float to int, Python's 4,300-digit limit on
  ``int(str)``), so nothing but :class:`NumberError` ever leaves a parser;
- the bounds are those of the C matching core (``csrc/vmsched_core.h``, LIMITS), so a value
  accepted here is never refused later by the engine, with a message blaming something else.

Floor 0: imports nothing of vmsched but the error text helpers.
"""

from __future__ import annotations

import math
import re

from vmsched.errors import show

__all__ = ["NumberError", "MAX_CORES", "MAX_MEMORY_MB", "MAX_DISK_GB", "MAX_TIME", "MAX_ACTIVE", "MAX_COUNT",
           "MAX_WEIGHT", "MAX_ID", "MAX_HOSTS", "MAX_DOMAINS", "MAX_DOMAINS_PER_HOST", "bound_text",
           "whole", "integer", "real", "decimal", "size_mb", "duration_s", "epoch", "is_digits"]

# --------------------------------------------------------------------------- the bounds

#: Cores of a job, a domain or a host (the core's CORE_CORES_LIMIT).
MAX_CORES = 1 << 20
#: Memory in MB of a job, a domain or a host (CORE_MEMORY_LIMIT).
MAX_MEMORY_MB = 1 << 40
#: Disk in GB of a flavor or a host.
MAX_DISK_GB = 1 << 40
#: Seconds, for times since the epoch and for durations (the core takes |t| <= 2^40).
MAX_TIME = 1 << 40
#: A host's max_active (the core's max_active and ranks are below CORE_RANK_LIMIT, 2^31 - 1).
MAX_ACTIVE = (1 << 31) - 2
#: Any other count of the policy file (boots per cycle, starts per cycle, warm domains).
MAX_COUNT = (1 << 31) - 1
#: Priority weights, shares and the policy's other real numbers (the core takes weights and
#: factors up to 1e150, so that no sum of products can overflow).
MAX_WEIGHT = 1e150
#: Ids and amounts in a trace (job, user and group ids; memory): a 64-bit integer.
MAX_ID = (1 << 63) - 1
#: Hosts one policy file defines, every name range expanded: ten times the largest site the
#: benchmarks run (10,000 hosts); bounded before any range is expanded.
MAX_HOSTS = 100_000
#: Domains one host entry may hold (max_domains, and the domains it lists).
MAX_DOMAINS_PER_HOST = 1024
#: Domains one policy file defines on all its hosts together.
MAX_DOMAINS = 1_000_000

class NumberError(ValueError):
    """A number that is malformed or out of its bounds; the text is one short line."""


def bound_text(n: int | float) -> str:
    """A bound as people read it: ``2^40`` rather than 1099511627776."""
    if isinstance(n, int) and n >= 1 << 16:
        for k, v in ((0, n), (1, n + 1), (2, n + 2)):
            if v & (v - 1) == 0:
                return f"2^{v.bit_length() - 1}" + (f" - {k}" if k else "")
    if isinstance(n, float):
        return f"{n:g}"
    return str(n)


def _range(low, high) -> str:
    return f"from {bound_text(low)} to {bound_text(high)}"


# --------------------------------------------------------------------------- text

_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"([0-9]+)(?:\.[0-9]+)?")


def _text(value) -> str | None:
    """The text of a str, or of bytes that are ASCII; None for anything else."""
    if isinstance(value, bytes):
        return value.decode("ascii") if value.isascii() else None
    return value if isinstance(value, str) else None


def is_digits(text) -> bool:
    """Whether ``text`` (str or bytes) is one or more ASCII digits and nothing else."""
    t = _text(text)
    return t is not None and _DIGITS.fullmatch(t) is not None


def _fits(digits: str, high: int | float) -> bool:
    """Whether a digit string is short enough to convert: no more digits than ``high``."""
    return len(digits.lstrip("0")) <= len(str(int(high)))


def _int(digits: str) -> int:
    """A digit string that :func:`_fits`, as an int (leading zeros count towards Python's
    limit on digits, so they go first)."""
    return int(digits.lstrip("0") or "0")


def whole(value, low: int = 0, high: int = MAX_COUNT, what: str = "a whole number") -> int:
    """A whole number written in ASCII digits (str or bytes, blanks around it allowed), in
    ``[low, high]``."""
    text = _text(value)
    s = text.strip() if text is not None else ""
    if not _DIGITS.fullmatch(s) or not _fits(s, high) or not low <= _int(s) <= high:
        raise NumberError(f"expected {what} {_range(low, high)}, got {show(value)}")
    return _int(s)


def decimal(value, low: float = 0, high: float = MAX_WEIGHT, what: str = "a number") -> float:
    """A number like ``12`` or ``1.5`` in ASCII digits (no sign, no exponent), in ``[low, high]``."""
    text = _text(value)
    s = text.strip() if text is not None else ""
    m = _DECIMAL.fullmatch(s)
    if not m or not _fits(m.group(1), high) or not low <= float(s) <= high:
        raise NumberError(f"expected {what} {_range(low, high)}, got {show(value)}")
    return float(s)


def epoch(value, what: str = "seconds since the epoch") -> float:
    """A time in whole seconds since the epoch, written in ASCII digits."""
    return float(whole(value, 0, MAX_TIME, what))


# --------------------------------------------------------------------------- values

def _kind(value) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a float", type(None): "nothing"}.get(type(value), type(value).__name__)


def integer(value, low: int, high: int, what: str = "a whole number") -> int:
    """An int already parsed (from TOML or JSON), in ``[low, high]``; bool is not an int here."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise NumberError(f"expected {what}, got {_kind(value)} {show(value)}")
    if not low <= value <= high:
        raise NumberError(f"expected {what} {_range(low, high)}, got {show(value)}")
    return int(value)


def real(value, low: float, high: float, what: str = "a number") -> float:
    """An int or float already parsed, finite and in ``[low, high]``. The comparison is
    exact (Python compares int and float without converting), so a 400-digit int is
    refused here rather than overflowing in ``float()``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NumberError(f"expected {what}, got {_kind(value)} {show(value)}")
    if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        raise NumberError(f"expected {what} {_range(low, high)}, got {show(value)}")
    return float(value)


# --------------------------------------------------------------------------- sizes and durations

_SIZE = re.compile(r"([0-9]+)\s*([kmgtp]?)([bw]?)", re.IGNORECASE | re.ASCII)
_SCALE = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def size_mb(value, high: int = MAX_MEMORY_MB) -> int:
    """A PBS size (``1700mb``, ``2gb``, ``512kb``, ``1048576`` bytes, ``w`` = 8-byte words)
    in MB, at most ``high``.

    Rounded up: asking for 1 byte more than a domain has must not fit it. Computed in whole
    bytes, so no size is ever rounded through a float."""
    text = _text(value)
    m = _SIZE.fullmatch(text.strip()) if text is not None else None
    if not m:
        raise NumberError(f"expected a size like 1700mb or 2gb, got {show(value)}")
    if not _fits(m.group(1), high << 30):
        raise NumberError(f"expected a size of at most {bound_text(high)} MB, got {show(value)}")
    nbytes = _int(m.group(1)) * 1024 ** _SCALE[m.group(2).lower()] * (8 if m.group(3).lower() == "w" else 1)
    mb = -(-nbytes // (1 << 20))
    if mb > high:
        raise NumberError(f"expected a size of at most {bound_text(high)} MB, got {show(value)}")
    return mb


_CLOCK = re.compile(r"(?:(?:([0-9]+):)?([0-9]+):)?([0-9]+)(?:\.[0-9]+)?")
_UNIT = re.compile(r"([0-9]+)((?:\.[0-9]+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_s(value, high: int = MAX_TIME) -> int:
    """A PBS walltime (``[[HH:]MM:]SS``, or plain seconds) or a policy duration (``90m``,
    ``1.5h``, ``7d``) in whole seconds, at most ``high``."""
    text = _text(value)
    s = text.strip() if text is not None else ""
    expected = f"expected a duration like 10:00:00, 90m or 7d, got {show(value)}"
    too_long = NumberError(f"expected a duration of at most {bound_text(high)} s, got {show(value)}")
    m = _CLOCK.fullmatch(s)
    if m:
        if not all(_fits(g, high) for g in m.groups() if g):
            raise too_long
        h, mi, sec = (_int(g) if g else 0 for g in m.groups())
        if (m.group(1) or m.group(2)) and sec >= 60 or (m.group(1) and mi >= 60):
            raise NumberError(expected)
        total = h * 3600 + mi * 60 + sec
    else:
        m = _UNIT.fullmatch(s)
        if not m:
            raise NumberError(expected)
        if not _fits(m.group(1), high):
            raise too_long
        total = int(round(float(m.group(1) + m.group(2)) * _UNIT_SECONDS[m.group(3)]))
    if total > high:
        raise too_long
    return total
