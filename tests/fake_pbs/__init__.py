"""A fake PBS server (Torque or OpenPBS semantics) and the client libraries in front of it.

``make_backend(server, "cffi")`` gives vmsched-pbs's cffi backend on the fake C library
(Python standing in for the ``dlopen``ed library), ``"cffi-shim"`` the same backend on a
real shared library compiled from ``shim.c`` (where a C compiler is found),
``"pbs_python"`` its pbs_python backend on the fake SWIG module (pbs_python's ``pbs`` for a
Torque server, OpenPBS's ``pbs_ifl`` for an OpenPBS one).
"""

from __future__ import annotations

from .libs import FakeCLib, fake_pbs_ifl, fake_pbs_python
from .server import FakeServer, PbsErr

__all__ = ["FakeServer", "PbsErr", "FakeCLib", "fake_pbs_python", "fake_pbs_ifl", "make_backend", "BACKENDS"]

from . import shim

BACKENDS = ("cffi", "pbs_python") + (("cffi-shim",) if shim.available() else ())


def make_backend(server: FakeServer, which: str):
    if which == "cffi-shim":
        from vmsched_pbs.backend_cffi import CffiBackend
        library = shim.attach(server)
        b = CffiBackend.load(str(shim.library_path()), server.kind)
        b.fake_shim = library
        return b
    if which == "cffi":
        from vmsched_pbs.backend_cffi import CffiBackend
        lib = FakeCLib(server)
        b = CffiBackend(lib, server.kind, free=lib.free, origin=f"fake {server.kind} library")
        b.fake_lib = lib
        return b
    from vmsched_pbs.backend_pbs_python import PbsPythonBackend
    module = fake_pbs_python(server) if server.kind == "torque" else fake_pbs_ifl(server)
    return PbsPythonBackend(module, server.kind)
