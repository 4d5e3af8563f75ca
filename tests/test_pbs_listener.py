"""Torque's scheduler port over a real local socket: commands from a privileged source
port of an allowed host are taken, bursts are gathered into one cycle, anything else is
refused as pbs_sched refuses it."""

from __future__ import annotations

import io
import os
import random
import socket
import struct
import threading
import time

import pytest

from vmsched_pbs import cli
from vmsched_pbs.listener import SCH_QUIT, SchedulerPort, parse_listen

from .fake_pbs import make_backend
from .test_pbs_cli import fake  # noqa: F401  (the fixture)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="binding a privileged source port needs root")


def send(port: int, cmd: int | bytes, *, source: str = "127.0.0.1", privileged: bool = True) -> None:
    """Connect as pbs_server does (from a privileged port unless told not to) and write."""
    for _ in range(100):       # a random privileged port may be taken or in TIME_WAIT: another
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((source, random.randrange(600, 1023) if privileged else 0))
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        s.sendall(struct.pack("!I", cmd) if isinstance(cmd, int) else cmd)
        s.close()
        return
    raise OSError("no source port to connect from")


@pytest.fixture
def port():
    with SchedulerPort("127.0.0.1", 0, coalesce_s=0.3) as p:
        yield p


def test_listen_option_parses():
    assert parse_listen("15004") == ("127.0.0.1", 15004)
    assert parse_listen("10.0.0.5:15004") == ("10.0.0.5", 15004)
    with pytest.raises(ValueError):
        parse_listen("pbs:port")


def test_nothing_comes_within_the_interval(port):
    t = time.monotonic()
    assert port.wait(0.2) == []
    assert time.monotonic() - t >= 0.19


@needs_root
def test_a_burst_of_commands_is_one_cycle(port):
    for cmd in (1, 1, 2, 1, 3):
        send(port.port, cmd)
    assert port.wait(5.0) == [1, 1, 2, 1, 3]
    assert port.wait(0.1) == []


@needs_root
def test_unprivileged_ports_other_hosts_and_short_messages_are_refused(port, caplog):
    send(port.port, 1, privileged=False)
    send(port.port, 1, source="127.0.0.2")            # a loopback alias that okclients lacks
    send(port.port, b"\x00\x00")
    assert port.wait(0.5) == []
    assert port.refused == 3
    assert "not from a privileged port" in caplog.text and "host not in okclients" in caplog.text
    assert "sent 2 bytes" in caplog.text


@needs_root
def test_okclients_lets_a_listed_host_in():
    with SchedulerPort("127.0.0.1", 0, okclients=["127.0.0.2"]) as p:
        send(p.port, 10, source="127.0.0.2")
        assert p.wait(5.0) == [10]


@needs_root
def test_the_daemon_cycles_when_the_server_asks_and_stops_on_quit(fake):
    server, policy = fake
    with socket.socket() as s:                        # a free port for --listen
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    jid = server.submit("alice", "meta", cores=2)
    cycles = []

    def server_side():
        time.sleep(0.5)                               # the daemon's first cycle runs at start
        cycles.append(len([c for c in server.calls if c[0] == "statjob"]))
        server.submit("alice", "meta", cores=2)
        send(free, 1)                                 # qsub: a job was queued
        time.sleep(0.8)
        cycles.append(len([c for c in server.calls if c[0] == "statjob"]))
        send(free, SCH_QUIT)

    t = threading.Thread(target=server_side)
    t.start()
    code = cli.main(["--policy", str(policy), "--listen", f"127.0.0.1:{free}", "--interval", "1h"],
                    backend=make_backend(server, "cffi"), out=io.StringIO(), err=io.StringIO())
    t.join()
    assert code == 0
    assert cycles == [1, 2], "one cycle at start, one when the server said a job was queued"
    assert all(j["job_state"] == "R" for j in server.jobs.values()) and server.jobs[jid]["job_state"] == "R"
