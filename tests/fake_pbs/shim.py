"""The fake server behind a real shared library: ``shim.c`` compiled in the test.

The cffi backend ``dlopen``s the compiled shim exactly as it would ``libtorque.so.2`` or
``libpbs.so`` (``CffiBackend.load(path, kind)``): symbol lookup, the C calling convention,
Torque's ``pbs_errno`` global and OpenPBS's ``__pbs_errno_location()``, C-allocated status
lists freed by the library's ``pbs_statfree``, and Torque's error messages freed by libc's
``free`` are then the real thing. Each call is served by the fake server through two
callbacks. Needs a C compiler (CI has gcc); :func:`available` says whether there is one.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import cffi

from .libs import _Connections
from .server import FakeServer

__all__ = ["available", "library_path", "attach"]

_SOURCE = Path(__file__).with_name("shim.c")
_built: Path | None = None

ffi = cffi.FFI()
ffi.cdef("""
struct attrl { struct attrl *next; char *name; char *resource; char *value; int op; };
struct batch_status { struct batch_status *next; char *name; struct attrl *attribs; char *text; };
typedef int (*connect_cb)(const char *server);
typedef int (*request_cb)(int connect, const char *request, const char *id, const char *arg,
                          const char *extend, void *attrs, int command, int objtype);
void shim_init(connect_cb c, request_cb r, int is_torque);
int shim_live(void);
struct batch_status *shim_status(const char *name);
void shim_attr(struct batch_status *bs, const char *name, const char *resource, const char *value);
void shim_error(int code, const char *text);
""")


def available() -> bool:
    return shutil.which("cc") is not None or shutil.which("gcc") is not None


def library_path() -> Path:
    """The compiled shim (built once per test process)."""
    global _built
    if _built is None:
        out = Path(tempfile.mkdtemp(prefix="vmsched-pbs-shim-")) / "libfakepbs.so"
        cc = shutil.which("cc") or shutil.which("gcc")
        subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", str(out), str(_SOURCE)], check=True)
        _built = out
    return _built


def _s(p) -> str | None:
    return None if p == ffi.NULL else ffi.string(p).decode()


def _attrs(p) -> list[tuple[str, str | None, str | None, int]]:
    out = []
    a = ffi.cast("struct attrl *", p)       # attropl has the same layout (pbs_ifl.h says so)
    while a != ffi.NULL:
        out.append((_s(a.name), _s(a.resource), _s(a.value), a.op))
        a = a.next
    return out


class _Shim:
    """The compiled library, bound to one fake server at a time."""

    def __init__(self):
        self.lib = ffi.dlopen(str(library_path()))
        self.errors: list[BaseException] = []
        self._callbacks = None

    def attach(self, server: FakeServer) -> None:
        conns = _Connections(server)
        lib = self.lib

        def onerror(exc, value, tb):
            self.errors.append(value)

        def error(c):
            """The request was refused: pbs_errno and the connection's message are set."""
            text = conns.errtxt(c)
            lib.shim_error(conns.errno, text.encode() if text is not None else ffi.NULL)
            return -1

        @ffi.callback("connect_cb", onerror=onerror, error=-1)
        def connect(name):
            h = conns.connect(_s(name) or "")
            if h < 0:
                lib.shim_error(conns.errno, ffi.NULL)
            return h

        @ffi.callback("request_cb", onerror=onerror, error=-1)
        def request(c, what, id_, arg, extend, attrs, command, objtype):
            what, id_, arg, extend = _s(what), _s(id_), _s(arg), _s(extend)
            if what == "disconnect":
                return conns.disconnect(c)
            if what.startswith("stat"):
                wanted = [a[0] for a in _attrs(attrs)] if attrs != ffi.NULL else None
                ids = () if what == "statserver" else (id_ or "",)
                res = conns.request(c, what, *ids, wanted, extend)
                if res is None:
                    return error(c)
                for name, values in res:
                    bs = lib.shim_status(name.encode())
                    for key, value in values.items():
                        attr, _, resource = key.partition(".")
                        lib.shim_attr(bs, attr.encode(), resource.encode() if resource else ffi.NULL,
                                      value.encode() if value is not None else ffi.NULL)
                return 0
            if what == "manager":
                res = conns.request(c, what, command, objtype, id_, _attrs(attrs))
            elif what == "alterjob":
                res = conns.request(c, what, id_, _attrs(attrs))
            elif what == "rerunjob":
                res = conns.request(c, what, id_)
            else:
                res = conns.request(c, what, id_, arg)
            return 0 if res is not None else error(c)

        self._callbacks = (connect, request)       # alive as long as the library calls them
        lib.shim_init(connect, request, 1 if server.kind == "torque" else 0)

    @property
    def live(self) -> int:
        return self.lib.shim_live()


_shim: _Shim | None = None


def attach(server: FakeServer) -> _Shim:
    """The shim, now serving ``server``."""
    global _shim
    if _shim is None:
        _shim = _Shim()
    _shim.attach(server)
    return _shim
