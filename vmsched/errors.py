"""One-line error text: the one place where a problem with an input becomes the line an
admin reads.

Every reader (the policy file, the model's PBS and JSON parsers, the SWF reader, the usage
store) reports ``WHERE: KEY: what was expected, got VALUE``; these helpers keep that line
one line, short, and free of Python internals, whatever the input was:

- :func:`show` echoes a value shortened (a 100 KB string, a 5,000-digit integer);
- :func:`describe` turns an exception raised while reading (an attrs validator's TypeError,
  an OverflowError, a RecursionError, Python's limit on integer digits) into words;
- :func:`line` joins a place and a text into the final line, of at most :data:`MAX_TEXT`
  characters after the place.

Floor 0: imports nothing of vmsched.
"""

from __future__ import annotations

import enum
import re

import attrs

__all__ = ["MAX_TEXT", "MAX_VALUE", "show", "clip", "describe", "line", "one_line", "where_in_text"]

#: Characters of a problem's text after its place (``FILE:LINE: ``), at most.
MAX_TEXT = 200
#: Characters of an echoed value, at most.
MAX_VALUE = 40


_SHOWN = (str, bytes, int, float, type(None), list, tuple, dict, set, frozenset, enum.Enum)


def show(value: object, limit: int = MAX_VALUE) -> str:
    """``repr(value)`` for an error line: at most ``limit`` characters, one line, and never
    an exception (``repr`` of an integer past 4,300 digits raises)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a number of {_digits(value)} digits"
    if not isinstance(value, _SHOWN):     # an object's own repr says nothing to an admin
        return _a(type(value).__name__)
    try:
        text = repr(value)
    except Exception:  # a subclass's own __repr__ may fail in any way
        text = _a(type(value).__name__)
    return _shorten(one_line(text), limit)


def _a(name: str) -> str:
    return f"{'an' if name[:1].lower() in ('a', 'e', 'i', 'o', 'u') else 'a'} {name}"


def _digits(n: int) -> int:
    """How many decimal digits ``n`` has, without str() (which refuses past 4,300)."""
    n = abs(n)
    k = int((n.bit_length() - 1) * 0.30102999566398120)   # 10**k <= 2**(bits - 1) <= n
    return k + 2 if n >= 10 ** (k + 1) else k + 1


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters turned into spaces."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else " " for c in text)


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` on one line and at most ``limit`` characters (cut with "...")."""
    return _shorten(one_line(text), limit)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def line(where: str, text: str) -> str:
    """The final problem line: ``WHERE: TEXT``, the text clipped to :data:`MAX_TEXT`."""
    return f"{one_line(where)}: {clip(text)}" if where else clip(text)


def _type_name(t) -> str:
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {bool: "true or false", str: "a string", int: "a whole number", float: "a number",
            type(None): "nothing"}.get(t, getattr(t, "__name__", str(t)))


def describe(exc: BaseException) -> str:
    """What went wrong, in words and on one line, for an exception raised while reading.

    attrs' own validators raise ``(message, Attribute, expected, value)``; that becomes
    ``KEY: expected bool, got 'up'``. The failures of number conversion and nesting become
    what they mean for the input. Anything else keeps its own text, clipped."""
    args = exc.args
    if len(args) >= 4 and isinstance(args[1], attrs.Attribute):
        name, expected, value = args[1].name, args[2], args[3]
        if isinstance(expected, (type, tuple)):
            return clip(f"{name}: expected {_type_name(expected)}, got {show(value)}")
        try:
            options = ", ".join(show(o, 20) for o in expected)
        except TypeError:
            options = show(expected)
        return clip(f"{name}: expected one of {options}, got {show(value)}")
    if isinstance(exc, RecursionError):
        return "nested too deeply (arrays or tables inside each other)"
    if isinstance(exc, OverflowError):
        return "a number too large"
    text = str(exc)
    if isinstance(exc, ValueError) and "integer string conversion" in text:
        return "a number with too many digits"
    if isinstance(exc, TypeError):
        text = _type_error(text)
    return clip(text or type(exc).__name__)


def _type_error(text: str) -> str:
    """A constructor's TypeError about its arguments, in terms of the input's keys."""
    m = re.search(r"missing \d+ required (?:keyword-only |positional )?arguments?: '(\w+)'", text)
    if m:
        return f"missing key {m.group(1)}"
    m = re.search(r"unexpected keyword argument '(\w+)'", text)
    if m:
        return f"unknown key {m.group(1)!r}"
    return text


_LONG_NUMBER = re.compile(r"[0-9_]{4000,}")
_BRACKETS = re.compile(r"[\[\]{}\n]")


def where_in_text(source: str, text: str, exc: BaseException) -> str:
    """``SOURCE:LINE`` for a parser that gave up without saying where: the line of the
    first number too long for Python's integer limit, or the line where arrays and tables
    first nest deeper than 100 (counted on the raw text). ``SOURCE`` alone if neither
    is found."""
    found = None
    if isinstance(exc, RecursionError):
        depth, no = 0, 1
        for m in _BRACKETS.finditer(text):
            c = m.group(0)
            if c == "\n":
                no += 1
            elif c in "[{":
                depth += 1
                if depth > 100:
                    found = no
                    break
            else:
                depth = max(depth - 1, 0)
    else:
        m = _LONG_NUMBER.search(text)
        if m:
            found = text.count("\n", 0, m.start()) + 1
    return f"{source}:{found}" if found else source
