"""The IFL through cffi in ABI mode: the server's own C client library, no pbs_python.

``ffi.dlopen`` of Torque's ``libtorque.so.2`` or OpenPBS's ``libpbs.so``; the declarations
below are those of ``pbs_ifl.h`` (both servers declare the three structures alike: ``attrl``
and ``attropl`` = next, name, resource, value, op; ``batch_status`` = next, name, attribs,
text), so nothing is compiled and the library found at run time is the one used.

Two differences between the libraries matter here, both read off their sources:

- ``pbs_errno``: Torque exports it as a plain ``int`` (``PBS_data.c``); OpenPBS defines it
  as ``(*__pbs_errno_location())``, a per-thread value behind a function.
- ``pbs_geterrmsg``: Torque returns a ``strdup`` the caller frees (its ``pbsnodes`` does);
  OpenPBS returns the connection's own buffer, which must not be freed.
"""

from __future__ import annotations

import ctypes.util
import os
from collections.abc import Callable, Sequence

import cffi

from vmsched_pbs.ifl import IFLBackend, Op, key_of

__all__ = ["CDEF", "ffi", "CffiBackend", "open_library", "LIBRARIES"]

CDEF = """
struct attrl {
    struct attrl *next;
    char *name;
    char *resource;
    char *value;
    int op;                 /* enum batch_op: SET, UNSET, INCR, DECR, ... */
};
struct attropl {
    struct attropl *next;
    char *name;
    char *resource;
    char *value;
    int op;
};
struct batch_status {
    struct batch_status *next;
    char *name;
    struct attrl *attribs;
    char *text;
};
int pbs_connect(char *server);
int pbs_disconnect(int connect);
char *pbs_geterrmsg(int connect);
struct batch_status *pbs_statserver(int connect, struct attrl *attrib, char *extend);
struct batch_status *pbs_statque(int connect, char *id, struct attrl *attrib, char *extend);
struct batch_status *pbs_statnode(int connect, char *id, struct attrl *attrib, char *extend);
struct batch_status *pbs_statvnode(int connect, char *id, struct attrl *attrib, char *extend);
struct batch_status *pbs_statjob(int connect, char *id, struct attrl *attrib, char *extend);
void pbs_statfree(struct batch_status *stat);
int pbs_runjob(int connect, char *jobid, char *loc, char *extend);
int pbs_sigjob(int connect, char *job_id, char *signal, char *extend);
int pbs_rerunjob(int connect, char *job_id, char *extend);
int pbs_movejob(int connect, char *job_id, char *destination, char *extend);
int pbs_alterjob(int connect, char *job_id, struct attrl *attrib, char *extend);
int pbs_manager(int connect, int command, int obj_type, char *obj_name, struct attropl *attrib, char *extend);
/* Torque */
extern int pbs_errno;
char *pbs_strerror(int err);
/* OpenPBS */
int *__pbs_errno_location(void);
char *pbse_to_txt(int err);
"""

ffi = cffi.FFI()
ffi.cdef(CDEF)
ffi.cdef("void free(void *ptr);")

#: where each server's client library is usually found, in the order tried
LIBRARIES = {"torque": ("libtorque.so.2", "libtorque.so"), "openpbs": ("libpbs.so", "libpbs.so.0")}


class LibraryError(RuntimeError):
    """No usable IFL library: the message says which names and paths were tried."""


def open_library(path: str | None = None, kind: str | None = None):
    """``(lib, kind, origin)`` for the first library that loads: ``path`` if given (its
    kind from its name unless ``kind`` says), else the usual names of each server's
    library, in ``/opt/pbs/lib`` too (OpenPBS's prefix)."""
    tried = []
    candidates = []
    if path:
        guess = kind or ("openpbs" if "libpbs" in os.path.basename(path) else "torque")
        candidates.append((path, guess))
    else:
        for k in ([kind] if kind else ["torque", "openpbs"]):
            for name in LIBRARIES[k]:
                candidates.append((name, k))
                candidates.append((os.path.join("/opt/pbs/lib", name), k))
            found = ctypes.util.find_library(LIBRARIES[k][0][3:].split(".so")[0])
            if found:
                candidates.append((found, k))
    missing = []
    for name, k in candidates:
        try:
            return ffi.dlopen(name), k, name
        except OSError as e:
            text = str(e).split(".  Additionally")[0]
            if f"{name}: cannot open shared object file" in text:
                missing.append(name)            # not there: one word is enough
            else:                               # there, but it cannot load (a library it needs)
                tried.append(f"{name}: {text.splitlines()[0]}")
    if missing:
        tried.append(f"not found: {', '.join(missing)}")
    raise LibraryError("cannot load a PBS client library (" + "; ".join(tried) + "); give its path with --library")


def _s(text: str | None):
    return ffi.NULL if text is None else text.encode()


def _str(p) -> str | None:
    return None if p == ffi.NULL else ffi.string(p).decode("utf-8", "replace")


def _walk(head) -> dict[str, dict[str, str]]:
    """The ``batch_status`` list as dicts. The hot loop of a large server's stat (a
    hundred thousand jobs of a dozen attributes each): a key is made once per distinct
    attribute (and resource) name, and NULL pointers are tested by truth, cffi's fastest."""
    string = ffi.string
    plain: dict[bytes, str] = {}
    dotted: dict[tuple[bytes, bytes], str] = {}
    out = {}
    bs = head
    while bs:
        d = {}
        a = bs.attribs
        while a:
            name = string(a.name)
            r = a.resource
            if r:
                res = string(r)
                key = dotted.get((name, res))
                if key is None:
                    key = dotted[(name, res)] = key_of(name.decode(), res.decode())
            else:
                key = plain.get(name)
                if key is None:
                    key = plain[name] = name.decode()
            v = a.value
            d[key] = string(v).decode("utf-8", "replace") if v else ""
            a = a.next
        out[string(bs.name).decode("utf-8", "replace")] = d
        bs = bs.next
    return out


class CffiBackend(IFLBackend):
    """IFL calls on a dlopen'd library (or anything with the same functions and
    structures: the tests' fake library). ``free`` is the C library's ``free``, for the
    messages Torque's ``pbs_geterrmsg`` hands over."""

    def __init__(self, lib, kind: str, *, free: Callable | None = None, origin: str = ""):
        super().__init__()
        if kind not in ("torque", "openpbs"):
            raise ValueError(f"kind must be torque or openpbs, got {kind!r}")
        self.lib, self.kind, self.origin = lib, kind, origin
        self._free = free if free is not None else ffi.dlopen(None).free
        self._keep: list = []        # C strings an attribute list points to, alive while it is

    @classmethod
    def load(cls, path: str | None = None, kind: str | None = None) -> "CffiBackend":
        lib, k, origin = open_library(path, kind)
        return cls(lib, k, origin=origin)

    def _connect(self, server):
        return self.lib.pbs_connect(_s(server or ""))

    def _disconnect(self, conn):
        self.lib.pbs_disconnect(conn)

    def _call(self, fn, conn, *args):
        # every call that changes something ends with ``char *extend``: NULL
        c_args = [_s(a) if isinstance(a, str) else a for a in args] + [ffi.NULL]
        try:
            return getattr(self.lib, fn)(conn, *c_args)
        finally:
            self._keep.clear()

    def _stat(self, fn, conn, ids, wanted, extend):
        attrib = self._attrl([(name, None, None, Op.SET) for name in wanted]) if wanted else ffi.NULL
        try:
            head = getattr(self.lib, fn)(conn, *[_s(i) for i in ids], attrib, _s(extend))
        finally:
            self._keep.clear()
        if head == ffi.NULL:
            return True, {}
        try:
            return False, _walk(head)
        finally:
            self.lib.pbs_statfree(head)

    def _attrl(self, changes: Sequence[tuple[str, str | None, str, Op]], struct: str = "attrl"):
        """A linked ``struct attrl`` (or ``attropl``, for ``pbs_manager``) array."""
        arr = ffi.new(f"struct {struct}[]", len(changes))
        for i, (name, resource, value, op) in enumerate(changes):
            strings = [ffi.new("char[]", name.encode())]
            arr[i].name = strings[0]
            if value is not None:
                strings.append(ffi.new("char[]", value.encode()))
                arr[i].value = strings[-1]
            if resource:
                strings.append(ffi.new("char[]", resource.encode()))
                arr[i].resource = strings[-1]
            arr[i].op = int(op)
            arr[i].next = arr + i + 1 if i + 1 < len(changes) else ffi.NULL
            self._keep.extend(strings)
        self._keep.append(arr)
        return arr

    def _errno(self):
        if self.kind == "openpbs":
            # (getattr: a literal "__pbs..." here would be mangled to _CffiBackend__pbs...)
            return getattr(self.lib, "__pbs_errno_location")()[0]
        return self.lib.pbs_errno

    def _errmsg(self, conn):
        p = self.lib.pbs_geterrmsg(conn)
        if p == ffi.NULL:
            return None
        text = _str(p)
        if self.kind == "torque":
            self._free(p)
        return text

    def _strerror(self, code):
        try:
            p = self.lib.pbse_to_txt(code) if self.kind == "openpbs" else self.lib.pbs_strerror(code)
        except AttributeError:          # an older library without it
            return None
        return _str(p)
