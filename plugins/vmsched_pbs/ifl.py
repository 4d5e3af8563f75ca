"""The one small interface vmsched-pbs needs of a PBS server, whatever library reaches it.

PBS's client API (IFL, ``pbs_ifl.h``) is the same dozen C functions on Torque and OpenPBS;
what differs is how Python reaches them (pbs_python's SWIG module, OpenPBS's ``pbs_ifl``
SWIG module, or the C library itself through cffi) and how each library hands back a
status (Python lists, or linked ``batch_status``/``attrl`` structures). :class:`IFLBackend`
keeps the calls and their error handling in one place; a backend supplies only the few
primitives that touch its library (:meth:`IFLBackend._call`, :meth:`_stat`, ...).

What the adapter sees is plain Python: a stat is ``{object name: {attribute[.resource]:
value}}``, a failed call an :class:`IFLError` naming the call, the error by name
(:mod:`vmsched_pbs.errors`) and the server's own message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

from vmsched_pbs.errors import describe, name_of

__all__ = ["IFLError", "IFLBackend", "Op", "Status", "MGR_CMD_SET", "MGR_OBJ_NODE", "key_of", "LOST"]

#: ``pbs_manager`` command and object numbers: equal in Torque (``#define``) and OpenPBS (``enum``)
MGR_CMD_SET = 2
MGR_OBJ_NODE = 3


class Op(enum.IntEnum):
    """``enum batch_op``: the first four are the same in both servers' headers."""

    SET = 0
    UNSET = 1
    INCR = 2
    DECR = 3


#: one status as the adapter reads it: object name -> attribute[.resource] -> value
Status = dict[str, dict[str, str]]


#: errors that mean the connection is gone (the server restarted, the network broke), not
#: that the server refused the request: the cycle stops, and the next one reconnects and
#: reads the server afresh rather than sending the rest of a plan made from a stale view
LOST = frozenset({"NOCONNECTION", "PROTOCOL", "DISPROTO", "NOCONNECTS", "NOSERVER", "TIMEOUT", "SOCKET_FAULT",
                  "SOCKET_WRITE", "SOCKET_READ", "SOCKET_CLOSE", "SOCKET_DATA", "SOCKET_INFORMATION",
                  "PREMATURE_EOF", "EOF", "SERVER_NOT_FOUND", "SERVER_BUSY", "SVRDOWN", "CONNECT",
                  "DOMAIN_SOCKET_FAULT", "CONNFULL", "ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT",
                  "EHOSTUNREACH", "ENETUNREACH"})


class IFLError(Exception):
    """A call the server (or the library) refused. ``name`` is the error's name on either
    server (UNKJOBID, UNKNODE, PERM, ...), ``code`` the number this server gave, ``text`` the
    server's message (``pbs_geterrmsg``), else the library's words for the code."""

    def __init__(self, call: str, code: int, name: str, text: str):
        self.call, self.code, self.name, self.text = call, code, name, text
        super().__init__(f"{call}: {name} ({code}): {text}" if text and text != name else f"{call}: {name} ({code})")

    @property
    def lost(self) -> bool:
        """The connection is gone (see :data:`LOST`), rather than the request refused."""
        return self.name in LOST


def key_of(attr: str, resource: str | None) -> str:
    """A resource is ``attribute.resource`` (``Resource_List.walltime``), the way ``qstat -f``
    prints it and ``Job.from_pbs`` reads it."""
    return f"{attr}.{resource}" if resource else attr


class IFLBackend:
    """The calls vmsched-pbs makes, in terms of a few library primitives.

    ``kind`` is "torque" or "openpbs": it decides the error numbering, how a job is placed
    on a node (:meth:`run_location`) and which node attribute carries a domain's state.
    """

    kind: str = "torque"
    #: which library this backend reached, for the log ("pbs_python 4.4 at /usr/lib/...")
    origin: str = ""

    def __init__(self) -> None:
        self._conn: int | None = None
        self.server_name: str | None = None

    # ----------------------------------------------------------------- primitives
    def _connect(self, server: str | None) -> int:
        raise NotImplementedError

    def _disconnect(self, conn: int) -> None:
        raise NotImplementedError

    def _call(self, fn: str, *args) -> int:
        """Call an IFL function that returns an int (0 = done)."""
        raise NotImplementedError

    def _stat(self, fn: str, conn: int, ids: tuple[str, ...], wanted: Sequence[str] | None,
              extend: str | None) -> tuple[bool, Status]:
        """Call a stat function (``ids``: its id argument, none for pbs_statserver;
        ``wanted``: the attribute names asked for, None for all), and give back whether it
        returned NULL and its records as a :data:`Status`, the library's memory freed."""
        raise NotImplementedError

    def _attrl(self, changes: Sequence[tuple[str, str | None, str, Op]], struct: str = "attrl"):
        """An attribute list from (name, resource, value, op): a ``struct attrl`` list for
        alterjob, ``struct attropl`` for manager."""
        raise NotImplementedError

    def _errno(self) -> int:
        raise NotImplementedError

    def _errmsg(self, conn: int) -> str | None:
        """The server's message for the last error on ``conn`` (``pbs_geterrmsg``)."""
        raise NotImplementedError

    def _strerror(self, code: int) -> str | None:
        return None

    # ----------------------------------------------------------------- errors
    def error(self, call: str, code: int | None = None) -> IFLError:
        """The error of the call just made, by name and with the server's message."""
        if code is None:
            code = self._errno()
        text = None
        if self._conn is not None and self._conn >= 0:
            try:
                text = self._errmsg(self._conn)
            except Exception:    # a library that cannot even say why: keep the number
                text = None
        text = (text or self._strerror(code) or describe(code, self.kind)).strip()
        return IFLError(call, code, name_of(code, self.kind), text)

    # ----------------------------------------------------------------- connection
    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn >= 0

    def connect(self, server: str | None = None) -> None:
        """Open the connection. Torque returns a negative error number on failure, OpenPBS
        -1 with ``pbs_errno`` set: both end as an :class:`IFLError`."""
        self.disconnect()
        conn = self._connect(server)
        if conn < 0:
            code = -conn if conn < -1 else self._errno()
            self._conn = None
            raise self.error(f"pbs_connect({server or 'default server'})", code)
        self._conn = conn
        self.server_name = server

    def reconnect(self) -> None:
        """A new connection to the server last connected to (after it restarted)."""
        self.connect(self.server_name)

    def disconnect(self) -> None:
        if self._conn is not None and self._conn >= 0:
            try:
                self._disconnect(self._conn)
            finally:
                self._conn = None
        self._conn = None

    def _c(self, call: str) -> int:
        if not self.connected:
            raise IFLError(call, 0, "NOCONNECTION", "not connected to a PBS server")
        return self._conn  # type: ignore[return-value]

    # ----------------------------------------------------------------- stat
    def _status(self, fn: str, ids: tuple[str, ...] = ("",), wanted: Sequence[str] | None = None,
                extend: str | None = None) -> Status:
        conn = self._c(fn)
        null, records = self._stat(fn, conn, ids, wanted, extend)
        if null:
            code = self._errno()
            if code != 0:
                raise self.error(fn, code)
        return records

    def stat_server(self) -> Status:
        return self._status("pbs_statserver", ())

    def stat_queues(self) -> Status:
        return self._status("pbs_statque")

    def stat_nodes(self) -> Status:
        """Every node; on OpenPBS every vnode (what its own scheduler reads)."""
        return self._status("pbs_statvnode" if self.kind == "openpbs" else "pbs_statnode")

    def stat_jobs(self, wanted: Sequence[str] | None = None) -> Status:
        """Every job the server lists, with only the ``wanted`` attributes (all if None):
        a large server answers far faster, and the adapter walks far less."""
        return self._status("pbs_statjob", ("",), wanted)

    def stat_job(self, job_id: str, wanted: Sequence[str] | None = None, *, history: bool = False) -> dict | None:
        """One job, or None if the server does not know it; ``history``: OpenPBS's finished
        jobs too (extend "x", with ``job_history_enable``)."""
        try:
            found = self._status("pbs_statjob", (job_id,), wanted, "x" if history and self.kind == "openpbs" else None)
        except IFLError as e:
            if e.name in ("UNKJOBID", "HISTJOBID", "JOBNOTFOUND"):
                return None
            raise
        return found.get(job_id)

    # ----------------------------------------------------------------- changes
    def _do(self, fn: str, *args) -> None:
        conn = self._c(fn)
        rc = self._call(fn, conn, *args)
        if rc != 0:
            raise self.error(f"{fn}({args[0]})", self._errno() or rc)

    def run_job(self, job_id: str, location: str) -> None:
        self._do("pbs_runjob", job_id, location)

    def sig_job(self, job_id: str, signal: str) -> None:
        """``signal`` is "suspend" or "resume" (both servers' names for the scheduler's use)."""
        self._do("pbs_sigjob", job_id, signal)

    def rerun_job(self, job_id: str) -> None:
        self._do("pbs_rerunjob", job_id)

    def move_job(self, job_id: str, destination: str) -> None:
        self._do("pbs_movejob", job_id, destination)

    def alter_job(self, job_id: str, attributes: Mapping[str, str]) -> None:
        self._do("pbs_alterjob", job_id,
                 self._attrl([(*_split(k), v, Op.SET) for k, v in attributes.items()]))

    def set_node(self, node: str, changes: Sequence[tuple[str, str, Op]]) -> None:
        """``pbs_manager(SET, NODE, node, ...)``: e.g. ``[("note", "vmsched: free", SET),
        ("state", "offline", DECR)]`` (Torque's pbsnodes -c is ``state -= offline``)."""
        conn = self._c("pbs_manager")
        rc = self._call("pbs_manager", conn, MGR_CMD_SET, MGR_OBJ_NODE, node,
                        self._attrl([(*_split(k), v, op) for k, v, op in changes], "attropl"))
        if rc != 0:
            raise self.error(f"pbs_manager(set node {node})", self._errno() or rc)

    # ----------------------------------------------------------------- placement
    def run_location(self, node: str, cores: int, memory_mb: int) -> str:
        """Where ``pbs_runjob`` is told to run a job of this size in the domain ``node``.

        Torque takes a node spec: the node's name gives one processor (``set_nodes``
        parses it like ``-l nodes``), so a wider job says ``node:ppn=N``. OpenPBS takes
        the chunk in its select form, ``(vnode:ncpus=N:mem=Mmb)``, and needs Manager or
        Operator rights for it."""
        if self.kind == "openpbs":
            mem = f":mem={memory_mb}mb" if memory_mb > 0 else ""
            return f"({node}:ncpus={cores}{mem})"
        return node if cores <= 1 else f"{node}:ppn={cores}"


def _split(key: str) -> tuple[str, str | None]:
    """``Resource_List.walltime`` -> (``Resource_List``, ``walltime``)."""
    attr, _, resource = key.partition(".")
    return attr, resource or None
