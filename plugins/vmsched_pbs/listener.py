"""Torque's scheduler port: the server's nudges that a cycle is due.

While ``scheduling = True``, Torque's ``pbs_server`` opens a TCP connection to the
scheduler (port 15004), writes one 4-byte big-endian integer and closes (``sched_cmds.h``):
1 a job was queued, 2 a job ended, 3 the ``scheduler_iteration`` timer, 4 recycle, 5 a
qmgr command, 7 configure, 8 quit, 10 first contact after the server started. Torque's
own ``pbs_sched`` (``server_command`` in ``pbs_sched.c``) accepts such a connection only
from a privileged source port (< 1024, so only root on the server's host can send one)
and from a host in its ``okclients``; so does :class:`SchedulerPort`.

A busy server sends bursts (a hundred ``qsub`` are a hundred connections): the port
gathers what arrives within ``coalesce_s`` of the first and the adapter runs one cycle
for all of them. OpenPBS >= 22.05 registers its schedulers with an internal call that is
not in ``pbs_ifl.h``; there vmsched-pbs runs on its interval alone.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import time
from collections.abc import Iterable

__all__ = ["SchedulerPort", "COMMANDS", "SCH_QUIT", "parse_listen"]

log = logging.getLogger("vmsched_pbs")

COMMANDS = {1: "a job was queued", 2: "a job ended", 3: "scheduler_iteration", 4: "recycle",
            5: "a qmgr command", 7: "configure", 8: "quit", 9: "ruleset", 10: "first contact"}
SCH_QUIT = 8
#: ports below this are privileged (``IPPORT_RESERVED``)
RESERVED = 1024


def parse_listen(text: str) -> tuple[str, int]:
    """``15004`` or ``ADDR:15004`` -> (address, port); loopback when no address is given."""
    host, sep, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected [ADDRESS:]PORT like 127.0.0.1:15004, got {text!r}")
    return (host or "127.0.0.1") if sep else "127.0.0.1", int(port)


def _addresses(host: str) -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)}
    except socket.gaierror as e:
        raise ValueError(f"okclients: cannot resolve {host!r}: {e.strerror}") from None


class SchedulerPort:
    """The scheduler's listening socket. ``okclients`` are host names or addresses allowed
    to connect (loopback and the listening address always are, as for pbs_sched)."""

    def __init__(self, address: str = "127.0.0.1", port: int = 15004, okclients: Iterable[str] = (),
                 coalesce_s: float = 0.2, read_timeout_s: float = 2.0):
        self.address, self.port = address, port
        self.coalesce_s, self.read_timeout_s = coalesce_s, read_timeout_s
        allowed = {"127.0.0.1"}
        if address not in ("0.0.0.0", ""):
            allowed |= _addresses(address)
        for host in okclients:
            allowed |= _addresses(host)
        self.okclients = frozenset(allowed)
        self.refused = 0
        self._sock: socket.socket | None = None

    def open(self) -> "SchedulerPort":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.address, self.port))
        except OSError as e:
            s.close()
            raise OSError(e.errno, f"cannot listen on {self.address}:{self.port}: {e.strerror}") from None
        s.listen(128)
        s.setblocking(False)
        self._sock = s
        self.port = s.getsockname()[1]
        return self

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "SchedulerPort":
        return self.open() if self._sock is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def wait(self, timeout: float) -> list[int]:
        """The commands that arrive within ``timeout`` seconds, gathered from the first one
        for ``coalesce_s`` more; [] when none came (the interval is up)."""
        assert self._sock is not None, "open() first"
        commands: list[int] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return commands
            ready, _, _ = select.select([self._sock], [], [], left)
            if not ready:
                return commands
            while True:
                try:
                    conn, (host, port) = self._sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                cmd = self._one(conn, host, port)
                if cmd is not None:
                    commands.append(cmd)
                    if cmd == SCH_QUIT:
                        return commands
            if commands:
                deadline = min(deadline, time.monotonic() + self.coalesce_s)

    def _one(self, conn: socket.socket, host: str, port: int) -> int | None:
        """One connection: checked as pbs_sched checks it, its 4 bytes read, closed."""
        with conn:
            if port >= RESERVED:
                return self._refuse(host, port, "not from a privileged port")
            if host not in self.okclients:
                return self._refuse(host, port, "host not in okclients")
            conn.settimeout(self.read_timeout_s)
            data = b""
            try:
                while len(data) < 4:
                    chunk = conn.recv(4 - len(data))
                    if not chunk:
                        break
                    data += chunk
            except OSError as e:
                return self._refuse(host, port, f"read failed: {e}")
            if len(data) != 4:
                return self._refuse(host, port, f"sent {len(data)} bytes, not a 4-byte command")
            cmd = struct.unpack("!I", data)[0]
            log.debug("server command %d (%s) from %s", cmd, COMMANDS.get(cmd, "unknown"), host)
            return cmd

    def _refuse(self, host: str, port: int, why: str) -> None:
        self.refused += 1
        log.warning("refused a connection to the scheduler port from %s port %d: %s", host, port, why)
        return None
