"""Extension points of the cycle: one small interface each, named in the policy's
``[plugins]`` section, Kubernetes-style.

``pre_filter`` (may a job be considered at all this cycle), ``filter`` (may it run in this
domain), ``queue_sort`` and ``score`` (order jobs, rank domains: these take the Python path,
since a site plugin is Python), ``preempt`` (may these victims be displaced). A plugin answers
with a :class:`Status` whose code tells *not now* from *never*, as OpenPBS does for pending
reasons; the reason becomes the job's comment.

A plugin is code the policy file names, run with the scheduler's privileges (those of the
batch system), so it is loaded only from files nobody but their owner or root can change,
as sshd's StrictModes does: see :func:`plugin_class`.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import os
import stat
from pathlib import Path
from typing import Any, Protocol

import attrs

from vmsched.errors import clip
from vmsched.model import Domain, Host, Job

__all__ = ["Code", "Status", "PreFilterPlugin", "FilterPlugin", "QueueSortPlugin", "ScorePlugin", "PreemptPlugin",
           "PLUGIN_METHODS", "PluginError", "load_plugin", "plugin_class", "owner_only"]


class Code(enum.Enum):
    SUCCESS = "success"
    UNSCHEDULABLE = "unschedulable"            # not now
    UNSCHEDULABLE_NEVER = "unschedulable-never"  # never, as asked


@attrs.frozen(slots=True)
class Status:
    code: Code = Code.SUCCESS
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.code is Code.SUCCESS


class PreFilterPlugin(Protocol):
    def pre_filter(self, job: Job, now: float) -> Status: ...


class FilterPlugin(Protocol):
    def filter(self, job: Job, domain: Domain, host: Host) -> Status: ...


class QueueSortPlugin(Protocol):
    def sort_key(self, job: Job, priority: float) -> Any: ...


class ScorePlugin(Protocol):
    def score(self, job: Job, domain: Domain, host: Host) -> float: ...


class PreemptPlugin(Protocol):
    def allow(self, preemptor: Job, victims: list[Job]) -> Status: ...


#: Each ``[plugins]`` key, and the method (with its arguments) its class must have.
PLUGIN_METHODS: dict[str, tuple[str, str]] = {
    "pre_filter": ("pre_filter", "job, now"),
    "filter": ("filter", "job, domain, host"),
    "queue_sort": ("sort_key", "job, priority"),
    "score": ("score", "job, domain, host"),
    "preempt": ("allow", "preemptor, victims"),
}


class PluginError(ValueError):
    """A plugin that may not or cannot be loaded. ``reason`` says why in one line;
    ``str()`` is ``plugin SPEC: cannot load: REASON``."""

    def __init__(self, spec: str, reason: str):
        self.spec = spec
        self.reason = clip(reason, 160)
        super().__init__(f"plugin {clip(spec, 80)}: cannot load: {self.reason}")


def owner_only(path: Path) -> str | None:
    """Why ``path`` (a file or a directory) could be changed by someone other than its
    owner or root, or None: it is group- or world-writable, or it belongs to a user other
    than root and the one running vmsched."""
    try:
        st = os.stat(path)
    except OSError as e:
        return f"cannot check {path}: {e.strerror}"
    if st.st_uid not in (0, os.geteuid()):
        return f"{path}: owned by uid {st.st_uid}, not root or the user running vmsched"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "group- and world-" if st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IWOTH else \
            "group-" if st.st_mode & stat.S_IWGRP else "world-"
        return f"{path}: {who}writable (mode {stat.S_IMODE(st.st_mode):o}; chmod go-w)"
    return None


def _check_code(module: str, spec: str) -> None:
    """Refuse ``module`` unless the files importing it would run (each package's ``__init__``,
    the module, their cached bytecode) and their directories pass :func:`owner_only`. Each
    level is looked up only once the levels above it have passed, so a lookup imports only
    checked code."""
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        try:
            found = importlib.util.find_spec(name)
        except Exception as e:  # a finder, or a package above, may fail in any way
            raise PluginError(spec, f"cannot import {name}: {type(e).__name__}: {e}") from None
        if found is None:
            raise PluginError(spec, f"no module named {name}")
        paths = [Path(p) for p in (found.origin if found.has_location else None, found.cached) if p]
        paths = [p for p in paths if p.exists()] or [Path(d) for d in found.submodule_search_locations or ()]
        for p in paths:
            for q in (p, p.parent):
                why = owner_only(q)
                if why:
                    raise PluginError(spec, f"refused: {why}")


def plugin_class(spec: str, kind: str | None = None) -> type:
    """The class a ``[plugins]`` entry (``package.module:Class``) names, imported but not
    made, and checked against the interface of ``kind`` (``PLUGIN_METHODS``).

    Like sshd's StrictModes, nothing is imported from a file that someone other than its
    owner or root could change: every file the import would run (the module, each package's
    ``__init__.py``, their bytecode caches) and the directory holding it must be owned by
    root or the user running vmsched and be neither group- nor world-writable. Built-in
    modules have no file and pass."""
    module, _, name = spec.partition(":")
    _check_code(module, spec)
    try:
        mod = importlib.import_module(module)
    except (Exception, SystemExit) as e:  # a site plugin can fail in any way; name it, don't crash the server
        raise PluginError(spec, f"cannot import {module}: {type(e).__name__}: {e}") from None
    cls = getattr(mod, name, None)
    if cls is None:
        raise PluginError(spec, f"module {module} has no {name}")
    if not isinstance(cls, type):
        raise PluginError(spec, f"{name} is a {type(cls).__name__}, expected a class")
    if kind is not None:
        method, args = PLUGIN_METHODS[kind]
        if not callable(getattr(cls, method, None)):
            raise PluginError(spec, f"class {name} has no method {method}({args}), which a {kind} plugin needs")
    return cls


def load_plugin(spec: str, kind: str | None = None):
    """A plugin object: :func:`plugin_class`, then the class called with no arguments."""
    cls = plugin_class(spec, kind)
    try:
        return cls()
    except Exception as e:  # a site plugin can fail in any way; name it, don't crash the server
        raise PluginError(spec, f"{type(e).__name__}: {e}") from None
