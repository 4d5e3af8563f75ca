"""The IFL through a SWIG module: SARA's pbs_python (``import pbs``, Torque) or OpenPBS's own
``pbs_ifl`` (shipped with its client library).

Imported lazily, and only here: vmsched-pbs works without either (the cffi backend needs
neither), and ``vmsched-pbs --help`` never touches them.

Facts this module is written to (a real Torque 6.1.3 and the modules' sources):

- The package index's pbs_python wheels carry binaries for Python 2.7, 3.8 and 3.10 only,
  linked against ``libtorque.so.2`` and libssl 1.1; its SWIG wrapper imports ``imp``, gone
  in Python 3.12. So on a current Python ``import pbs`` fails in one of several ways (the
  wrong binary, a missing ``libtorque.so.2``, no ``imp``): :func:`load_module` turns each
  into one sentence that says what to do, never a bare ImportError.
- pbs_python's stat calls take a Python list for the attributes wanted and want ``[]``,
  not ``None``, for "all of them"; they return a Python list of ``batch_status`` objects
  whose ``attribs`` is a list of ``attrl`` objects. ``None`` is fine for ``extend``.
- OpenPBS's ``pbs_ifl`` is plain SWIG: stat calls take ``None`` and return the linked
  ``batch_status`` (``.next``), ``pbs_errno`` is read with ``get_pbs_errno()``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from vmsched_pbs.ifl import IFLBackend, Op, key_of

__all__ = ["ModuleLoadError", "load_module", "PbsPythonBackend"]


class ModuleLoadError(RuntimeError):
    """No usable SWIG module; the message is one sentence for the admin."""


_ADVICE = ("the package index's pbs_python carries binaries for Python 2.7, 3.8 and 3.10 only: "
           "build pbs_python from source against this site's libtorque, or use --backend cffi")


def load_module(name: str | None = None):
    """``(module, kind)``: pbs_python's ``pbs`` (Torque) or OpenPBS's ``pbs_ifl``, the first
    that loads (or only ``name``). Raises :class:`ModuleLoadError` saying why none did."""
    why = []
    for mod_name, kind in (("pbs", "torque"), ("pbs_ifl", "openpbs")):
        if name is not None and mod_name != name:
            continue
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name == mod_name:
                why.append(f"{mod_name}: not installed")
            else:
                why.append(f"{mod_name}: installed but cannot be loaded: it needs the module {e.name!r}, "
                           f"which this Python lacks ({_ADVICE})")
            continue
        except (ImportError, OSError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            why.append(f"{mod_name}: installed but cannot be loaded: {first} ({_ADVICE})")
            continue
        if not hasattr(mod, "pbs_connect"):
            why.append(f"{mod_name}: the module of that name found at {getattr(mod, '__file__', '?')} "
                       "is not a PBS IFL module (no pbs_connect)")
            continue
        return mod, kind
    raise ModuleLoadError("; ".join(why) or f"unknown module {name!r} (expected pbs or pbs_ifl)")


def _walk(head):
    """The items of a status or attribute list: a Python list (pbs_python) or a linked
    list of SWIG proxies (``pbs_ifl``)."""
    if head is None:
        return
    if isinstance(head, (list, tuple)):
        yield from head
        return
    node = head
    while node is not None:
        yield node
        node = node.next


class PbsPythonBackend(IFLBackend):
    """IFL calls through a SWIG module (``pbs`` or ``pbs_ifl``, or the tests' fake of it)."""

    def __init__(self, module, kind: str | None = None):
        super().__init__()
        self.pbs = module
        self.kind = kind or ("openpbs" if hasattr(module, "get_pbs_errno") else "torque")
        self.origin = f"{module.__name__} ({getattr(module, '__file__', 'built in')})"
        # pbs_python wants [] for "all attributes"; pbs_ifl a NULL pointer
        self._all = [] if hasattr(module, "new_attrl") else None

    @classmethod
    def load(cls, name: str | None = None) -> "PbsPythonBackend":
        mod, kind = load_module(name)
        return cls(mod, kind)

    def _connect(self, server):
        return self.pbs.pbs_connect(server or self.pbs.pbs_default() or "")

    def _disconnect(self, conn):
        self.pbs.pbs_disconnect(conn)

    def _call(self, fn, conn, *args):
        return getattr(self.pbs, fn)(conn, *args, None)

    def _stat(self, fn, conn, ids, wanted, extend):
        attrib = self._attrl([(name, None, None, Op.SET) for name in wanted]) if wanted else self._all
        head = getattr(self.pbs, fn)(conn, *ids, attrib, extend)
        if head is None or (isinstance(head, list) and not head):
            return head is None or self._errno() != 0, {}
        try:
            return False, {bs.name: {key_of(a.name, a.resource or None): a.value or "" for a in _walk(bs.attribs)}
                           for bs in _walk(head)}
        finally:
            self.pbs.pbs_statfree(head)

    def _attrl(self, changes: Sequence[tuple[str, str | None, str, Op]], struct: str = "attrl"):
        if hasattr(self.pbs, "new_attrl"):          # pbs_python: an array of n entries
            items = getattr(self.pbs, f"new_{struct}")(len(changes))
        else:                                       # pbs_ifl: proxies linked by hand
            items = [getattr(self.pbs, struct)() for _ in changes]
            for a, b in zip(items, items[1:]):
                a.next = b
        for item, (name, resource, value, op) in zip(items, changes):
            item.name, item.op = name, int(op)
            if value is not None:
                item.value = value
            if resource:
                item.resource = resource
        return items if hasattr(self.pbs, "new_attrl") else (items[0] if items else None)

    def _errno(self):
        if hasattr(self.pbs, "get_pbs_errno"):
            return self.pbs.get_pbs_errno()
        return self.pbs.get_error()

    def _errmsg(self, conn):
        return self.pbs.pbs_geterrmsg(conn) or None

    def _strerror(self, code):
        fn = getattr(self.pbs, "pbs_strerror", None) or getattr(self.pbs, "pbse_to_txt", None)
        return fn(code) if fn else None
