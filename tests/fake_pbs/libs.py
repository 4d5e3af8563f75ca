"""The client libraries in front of the fake server, each returning what the real one does.

- :class:`FakeCLib`: the C library as vmsched-pbs's cffi backend sees it after ``dlopen``:
  the same function names, ``char *`` arguments, and real ``struct batch_status`` /
  ``struct attrl`` linked lists (built with the backend's own cdef, which is
  ``pbs_ifl.h``'s) that must be handed back to ``pbs_statfree`` exactly once. Torque's
  ``pbs_errno`` is a plain int, OpenPBS's sits behind ``__pbs_errno_location()``; Torque's
  ``pbs_geterrmsg`` hands over a copy the caller frees, OpenPBS's its own buffer that the
  caller must not free: :meth:`FakeCLib.free` fails the test on any wrong free, as the
  real thing would crash.
- :func:`fake_pbs_python`: SARA's pbs_python module (``import pbs``): stat calls take a
  Python list of wanted attributes (``[]``: all; ``None`` is a TypeError, as its SWIG
  typemap raises) and return a list of ``batch_status`` objects whose ``attribs`` are
  lists; ``new_attrl(n)`` gives attribute lists; errors through ``get_error()``.
- :func:`fake_pbs_ifl`: OpenPBS's SWIG module ``pbs_ifl``: linked proxies, ``None`` for
  NULL, ``get_pbs_errno()``.

This is "exposing the fake through the same interface" (the issue's second way): the
cffi backend's code runs unchanged, on real C structures, but the calls themselves are
Python methods, so symbol lookup and the C calling convention are not exercised; the C
shim (:mod:`tests.fake_pbs.shim`, the issue's first way) exercises those.
"""

from __future__ import annotations

import types

from vmsched_pbs.backend_cffi import ffi

from .codes import ECONNREFUSED, code, text
from .server import FakeServer, PbsErr

__all__ = ["FakeCLib", "fake_pbs_python", "fake_pbs_ifl"]


class _Connections:
    """The connection table and error state every library keeps."""

    def __init__(self, server: FakeServer):
        self.server = server
        self.kind = server.kind
        self.errno = 0
        self._conns: dict[int, dict] = {}
        self._next = 0 if self.kind == "torque" else 3      # Torque: a table index (0 is valid); OpenPBS: a socket

    def connect(self, name: str) -> int:
        self.errno = 0
        if not self.server.up:
            if self.kind == "torque":
                return -ECONNREFUSED                         # pbs_original_connect: rc = errno, negated
            self.errno = code("SYSTEM", self.kind)
            return -1
        h = self._next
        self._next += 1
        self._conns[h] = {"epoch": self.server.epoch, "errtxt": None}
        return h

    def disconnect(self, h: int) -> int:
        self._conns.pop(h, None)
        return 0

    def request(self, h: int, name: str, *args):
        """Serve a request; on refusal set errno and the connection's message, return None."""
        self.errno = 0
        conn = self._conns.get(h)
        if conn is None or conn["epoch"] != self.server.epoch or not self.server.up:
            self.errno = code("PROTOCOL", self.kind)
            if conn is not None:
                conn["errtxt"] = None
            return None
        conn["errtxt"] = None
        try:
            result = self.server.serve(name, *args)
        except PbsErr as e:
            self.errno = code(e.name, self.kind)
            conn["errtxt"] = e.text
            return None
        if conn["epoch"] != self.server.epoch:      # done, but the answer died with the server
            self.errno = code("PROTOCOL", self.kind)
            return None
        return result

    def errtxt(self, h: int) -> str | None:
        conn = self._conns.get(h)
        return None if conn is None else conn["errtxt"]


def _split(key: str) -> tuple[str, str | None]:
    attr, _, res = key.partition(".")
    return attr, res or None


# ---------------------------------------------------------------------------- the C library

def _b(p) -> str:
    if isinstance(p, bytes):
        return p.decode()
    if isinstance(p, ffi.CData):
        return "" if p == ffi.NULL else ffi.string(p).decode()
    raise TypeError(f"expected char *, got {type(p).__name__}")


class FakeCLib:
    """``ffi.dlopen("libtorque.so.2")`` (or ``libpbs.so``), served by a fake server."""

    def __init__(self, server: FakeServer):
        self._c = _Connections(server)
        self.kind = server.kind
        self._live: dict[int, list] = {}       # status lists handed out, not yet freed
        self._msgs: dict[int, object] = {}     # Torque error messages handed out, not yet freed
        self._buffers: dict[int, object] = {}  # OpenPBS: each connection's message buffer
        self.freed = 0
        if self.kind == "openpbs":
            self._errno_cell = ffi.new("int *")

    # errno, as each library exposes it
    def __getattr__(self, name):
        if name == "pbs_errno" and self.kind == "torque":
            return self._c.errno
        if name == "__pbs_errno_location" and self.kind == "openpbs":
            def location():
                self._errno_cell[0] = self._c.errno
                return self._errno_cell
            return location
        if name in ("pbs_strerror",) and self.kind == "torque" or name == "pbse_to_txt" and self.kind == "openpbs":
            return self._strerror
        if name == "pbs_statvnode" and self.kind == "openpbs":
            return lambda c, i, a, e: self._stat("statvnode", c, (i,), a, e)
        raise AttributeError(f"undefined symbol: {name}")

    def _strerror(self, err):
        from .codes import CODES
        for name, (t, o, tt, ot) in CODES.items():
            if (t if self.kind == "torque" else o) == err:
                return self._keep_static(tt if self.kind == "torque" else ot)
        return ffi.NULL

    def _keep_static(self, s):
        p = ffi.new("char[]", (s or "").encode())
        self._buffers[id(p)] = p
        return p

    @property
    def live(self) -> int:
        """Status lists not yet given back to pbs_statfree (a leak, at the end of a test)."""
        return len(self._live)

    # the IFL
    def pbs_connect(self, server):
        return self._c.connect(_b(server))

    def pbs_disconnect(self, c):
        return self._c.disconnect(c)

    def pbs_geterrmsg(self, c):
        t = self._c.errtxt(c)
        if t is None:
            return ffi.NULL
        if self.kind == "torque":          # strdup: the caller frees it
            p = ffi.new("char[]", t.encode())
            self._msgs[int(ffi.cast("uintptr_t", p))] = p
            return p
        p = ffi.new("char[]", t.encode())  # the connection's buffer: never freed by the caller
        self._buffers[c] = p
        return p

    def free(self, p):
        """libc's free, for what the library handed over to be freed."""
        key = int(ffi.cast("uintptr_t", p))
        if key not in self._msgs:
            raise AssertionError("free() of memory the library did not hand over (would crash)")
        del self._msgs[key]
        self.freed += 1

    def _build(self, records):
        """A linked ``struct batch_status`` list, as the library allocates it."""
        if not records:
            return ffi.NULL
        keep = []
        head = ffi.new("struct batch_status[]", len(records))
        keep.append(head)
        for i, (name, attrs) in enumerate(records):
            bs = head[i]
            s = ffi.new("char[]", name.encode())
            keep.append(s)
            bs.name = s
            items = list(attrs.items())
            if items:
                arr = ffi.new("struct attrl[]", len(items))
                keep.append(arr)
                for k, (key, value) in enumerate(items):
                    attr, res = _split(key)
                    for field, v in (("name", attr), ("resource", res), ("value", value)):
                        if v is not None:
                            cs = ffi.new("char[]", v.encode())
                            keep.append(cs)
                            setattr(arr[k], field, cs)
                    arr[k].next = arr + k + 1 if k + 1 < len(items) else ffi.NULL
                bs.attribs = arr
            bs.next = head + i + 1 if i + 1 < len(records) else ffi.NULL
        ptr = ffi.cast("struct batch_status *", head)     # what the C function returns
        self._live[int(ffi.cast("uintptr_t", ptr))] = keep
        return ptr

    def _stat(self, request, c, ids, attrib, extend):
        wanted = [a[0] for a in self._attrs(attrib)] if attrib != ffi.NULL else None
        res = self._c.request(c, request, *[_b(i) for i in ids], wanted, None if extend == ffi.NULL else _b(extend))
        return ffi.NULL if res is None else self._build(res)

    def pbs_statserver(self, c, attrib, extend):
        return self._stat("statserver", c, (), attrib, extend)

    def pbs_statque(self, c, id, attrib, extend):
        return self._stat("statque", c, (id,), attrib, extend)

    def pbs_statnode(self, c, id, attrib, extend):
        return self._stat("statnode", c, (id,), attrib, extend)

    def pbs_statjob(self, c, id, attrib, extend):
        return self._stat("statjob", c, (id,), attrib, extend)

    def pbs_statfree(self, bs):
        if bs == ffi.NULL:
            return
        key = int(ffi.cast("uintptr_t", bs))
        if key not in self._live:
            raise AssertionError("pbs_statfree() of a list the library did not hand out, or twice")
        del self._live[key]

    def _attrs(self, p):
        if ffi.typeof(p).kind == "array":      # what C receives is the pointer to its first item
            p = p + 0
        out = []
        while p != ffi.NULL:
            out.append((_b(p.name), None if p.resource == ffi.NULL else _b(p.resource),
                        None if p.value == ffi.NULL else _b(p.value), p.op))
            p = p.next
        return out

    def _rc(self, res):
        return -1 if res is None else 0

    def pbs_runjob(self, c, jobid, loc, extend):
        return self._rc(self._c.request(c, "runjob", _b(jobid), _b(loc)))

    def pbs_sigjob(self, c, jobid, sig, extend):
        return self._rc(self._c.request(c, "sigjob", _b(jobid), _b(sig)))

    def pbs_rerunjob(self, c, jobid, extend):
        return self._rc(self._c.request(c, "rerunjob", _b(jobid)))

    def pbs_movejob(self, c, jobid, dest, extend):
        return self._rc(self._c.request(c, "movejob", _b(jobid), _b(dest)))

    def pbs_alterjob(self, c, jobid, attrib, extend):
        assert ffi.typeof(attrib) in (ffi.typeof("struct attrl *"), ffi.typeof("struct attrl[]"))
        return self._rc(self._c.request(c, "alterjob", _b(jobid), self._attrs(attrib)))

    def pbs_manager(self, c, command, obj_type, name, attrib, extend):
        assert ffi.typeof(attrib) in (ffi.typeof("struct attropl *"), ffi.typeof("struct attropl[]"))
        return self._rc(self._c.request(c, "manager", command, obj_type, _b(name), self._attrs(attrib)))


# ---------------------------------------------------------------------------- SWIG modules

class _Obj:
    """A SWIG proxy: plain attributes."""

    def __init__(self, **kw):
        self.next = None
        self.name = self.resource = self.value = None
        self.op = 0
        self.__dict__.update(kw)


def _swig_module(server: FakeServer, name: str, linked: bool) -> types.ModuleType:
    conns = _Connections(server)
    m = types.ModuleType(name)
    m.__file__ = f"<fake {name} for {server.kind} server {server.name}>"
    m.statfreed = []

    def status(records):
        items = []
        for oname, attrs in records:
            alist = [_Obj(name=_split(k)[0], resource=_split(k)[1], value=v) for k, v in attrs.items()]
            if linked:
                for a, b in zip(alist, alist[1:]):
                    a.next = b
            items.append(_Obj(name=oname, attribs=(alist[0] if alist else None) if linked else alist, text=None))
        if linked:
            for a, b in zip(items, items[1:]):
                a.next = b
            return items[0] if items else None
        return items

    def want(attribs):
        if linked:
            if attribs is not None and not isinstance(attribs, _Obj):
                raise TypeError("in method 'pbs_stat', argument 3 of type 'struct attrl *'")
        elif not isinstance(attribs, list):
            raise TypeError("pbs_python: the attribute list must be a Python list ([] for all), "
                            f"got {type(attribs).__name__}")

    def stat(request, *args):
        def call(c, *rest):
            *ids, attribs, extend = rest
            want(attribs)
            wanted = [a[0] for a in attr_list(attribs)] or None
            res = conns.request(c, request, *ids, wanted, extend)
            if res is None:
                return None if linked else []
            return status(res)
        return call

    def attr_list(attribs):
        items = attribs if isinstance(attribs, list) else []
        if linked:
            items, p = [], attribs
            while p is not None:
                items.append(p)
                p = p.next
        return [(a.name, a.resource or None, a.value, a.op) for a in items]

    def rc(res):
        return -1 if res is None else 0

    m.pbs_default = lambda: server.name
    m.pbs_connect = lambda s: conns.connect(s)
    m.pbs_disconnect = lambda c: conns.disconnect(c)
    m.pbs_geterrmsg = lambda c: conns.errtxt(c)
    m.pbs_statserver = stat("statserver")
    m.pbs_statque = stat("statque")
    m.pbs_statnode = stat("statnode")
    m.pbs_statjob = stat("statjob")
    if server.kind == "openpbs":
        m.pbs_statvnode = stat("statvnode")
    m.pbs_statfree = lambda bs: m.statfreed.append(bs)
    m.pbs_runjob = lambda c, j, loc, e: rc(conns.request(c, "runjob", j, loc))
    m.pbs_sigjob = lambda c, j, s, e: rc(conns.request(c, "sigjob", j, s))
    m.pbs_rerunjob = lambda c, j, e: rc(conns.request(c, "rerunjob", j))
    m.pbs_movejob = lambda c, j, d, e: rc(conns.request(c, "movejob", j, d))
    m.pbs_alterjob = lambda c, j, a, e: rc(conns.request(c, "alterjob", j, attr_list(a)))
    m.pbs_manager = lambda c, cmd, obj, n, a, e: rc(conns.request(c, "manager", cmd, obj, n, attr_list(a)))

    def strerror(err):
        from .codes import CODES
        for nm, (t, o, tt, ot) in CODES.items():
            if (t if server.kind == "torque" else o) == err:
                return tt if server.kind == "torque" else ot
        return None

    if linked:
        m.attrl = lambda: _Obj()
        m.attropl = lambda: _Obj()
        m.get_pbs_errno = lambda: conns.errno
        m.pbse_to_txt = strerror
    else:
        m.new_attrl = lambda n: [_Obj() for _ in range(n)]
        m.new_attropl = lambda n: [_Obj() for _ in range(n)]
        m.get_error = lambda: conns.errno
        m.pbs_strerror = strerror
        m.error = lambda: (conns.errno, strerror(conns.errno))
    return m


def fake_pbs_python(server: FakeServer) -> types.ModuleType:
    """SARA's pbs_python (``import pbs``) in front of the fake server."""
    return _swig_module(server, "pbs", linked=False)


def fake_pbs_ifl(server: FakeServer) -> types.ModuleType:
    """OpenPBS's ``pbs_ifl`` SWIG module in front of the fake server."""
    return _swig_module(server, "pbs_ifl", linked=True)
