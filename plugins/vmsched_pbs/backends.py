"""Choosing and opening the IFL backend (``--backend auto|pbs_python|cffi``).

Only here are pbs_python and the cffi library loaded, and only when asked: ``--help`` and
a bad policy never touch either.
"""

from __future__ import annotations

__all__ = ["BackendError", "open_backend"]


class BackendError(RuntimeError):
    """No IFL backend could be opened; the message says why for each one tried."""


def open_backend(choice: str, library: str | None = None):
    """The IFL backend asked for; ``auto`` is pbs_python if it loads, else cffi."""
    why = []
    if choice in ("auto", "pbs_python"):
        from vmsched_pbs.backend_pbs_python import ModuleLoadError, PbsPythonBackend
        try:
            return PbsPythonBackend.load()
        except ModuleLoadError as e:
            why.append(f"pbs_python backend: {e}")
    if choice in ("auto", "cffi"):
        from vmsched_pbs.backend_cffi import CffiBackend, LibraryError
        try:
            return CffiBackend.load(library)
        except LibraryError as e:
            why.append(f"cffi backend: {e}")
    raise BackendError("; ".join(why))
