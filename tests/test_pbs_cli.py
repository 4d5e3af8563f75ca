"""The ``vmsched-pbs`` command: help without any PBS library, one-line errors with exit 2
for a bad policy or bad server data, and ``--once --dry-run`` printing the plan against
the fake server while changing nothing."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from vmsched.model import ModelError
from vmsched_pbs import cli
from vmsched_pbs.view import ServerReader

from .fake_pbs import FakeServer, make_backend
from .pbs_site import SMALL, domain_node

ROOT = Path(__file__).resolve().parents[1]


def run(argv, backend=None):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, backend=backend, out=out, err=err, sleep=lambda s: None)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def fake(tmp_path):
    server = FakeServer("torque")
    server.add_queue("batch")
    for h in ("wn1", "wn2"):
        for im in ("deb", "slc"):
            domain_node(server, f"{h}-{im}-1", h, im)
    policy = tmp_path / "site.toml"
    policy.write_text(SMALL)
    return server, policy


def test_help_needs_no_pbs_library():
    # a fresh interpreter: nothing of pbs_python, the cffi backend or the adapter is loaded
    code = ("import sys; sys.path.insert(0, 'plugins'); from vmsched_pbs.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "bad = [m for m in ('pbs', 'pbs_ifl', 'vmsched_pbs.backend_cffi', 'vmsched_pbs.backend_pbs_python',"
            " 'vmsched_pbs.adapter') if m in sys.modules]\nassert not bad, bad\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    for option in ("--policy", "--server", "--once", "--dry-run", "--interval", "--log-level", "--backend"):
        assert option in p.stdout


def test_once_dry_run_prints_the_plan_and_changes_nothing(fake):
    server, policy = fake
    jobs = [server.submit("alice", "meta", cores=2) for _ in range(3)]
    bad = server.submit("bob", "meta", walltime="soon")
    before = {j: dict(server.jobs[j]) for j in server.jobs}
    nodes = {n: dict(x) for n, x in server.nodes.items()}
    code, out, err = run(["--policy", str(policy), "--once", "--dry-run"], make_backend(server, "cffi"))
    assert code == 0, err
    assert "plan (3 actions):" in out
    for j in jobs:
        assert f"run job={j} domain=" in out
    assert f"unreadable jobs (1):\n  {bad}  Resource_List.walltime: " in out
    assert server.jobs == before and server.nodes == nodes
    assert {c[0] for c in server.calls} <= {"statserver", "statnode", "statjob"}


def test_once_applies_the_plan(fake):
    server, policy = fake
    j = server.submit("alice", "meta", cores=2)
    code, out, err = run(["--policy", str(policy), "--once", "--log-level", "warning"], make_backend(server, "pbs_python"))
    assert code == 0 and out == ""
    assert server.jobs[j]["job_state"] == "R"


@pytest.mark.parametrize("text, words", [
    (SMALL.replace('name = "batch"', 'nmae = "batch"'), "queues[0].nmae: unknown key"),
    (SMALL.replace('comment_period = "5m"', 'comment_period = "soon"'), ":12: pbs.comment_period: expected"),
    (SMALL.replace('comment_period = "5m"', 'comment_perod = "5m"'), ":12: pbs.comment_perod: unknown key"),
    (SMALL + 'domain_name = "(?P<host>"\n', "pbs.domain_name: not a regular expression"),
    (SMALL.replace("[pbs]", "[pbs]\nserver_kind = \"slurm\""), "pbs.server_kind: expected"),
    ("[site\n", "not valid TOML"),
], ids=["policy-key", "pbs-duration", "pbs-key", "pbs-regex", "pbs-kind", "toml"])
def test_a_bad_policy_is_one_line_per_problem_and_exit_2(tmp_path, text, words):
    p = tmp_path / "site.toml"
    p.write_text(text)
    code, out, err = run(["--policy", str(p), "--once"], make_backend(FakeServer(), "cffi"))
    assert code == 2
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("vmsched-pbs: ") for line in lines)
    assert any(words in line for line in lines), err
    assert "Traceback" not in err


def test_policy_line_numbers_survive_the_pbs_table(tmp_path):
    # [pbs] first: the policy reader still names the right line of what follows
    p = tmp_path / "site.toml"
    p.write_text('[pbs]\nmax_active = 1\n\n[site]\nname = "x"\n[scheduler]\ncycle_interval = "never"\n')
    code, out, err = run(["--policy", str(p), "--once"], make_backend(FakeServer(), "cffi"))
    assert code == 2 and ":7: scheduler.cycle_interval" in err, err


def test_the_example_site_file_checks():
    code, out, err = run(["--policy", str(ROOT / "plugins" / "vmsched_pbs" / "examples" / "site-pbs.toml"), "--check"])
    assert code == 0 and ": ok (example-pbs: 2 images, 3 queues" in out, err


def test_missing_policy_file(tmp_path):
    code, out, err = run(["--policy", str(tmp_path / "nope.toml"), "--once"])
    assert code == 2 and "no such file" in err


def test_bad_server_data_is_one_line_and_exit_2(fake, monkeypatch):
    server, policy = fake

    def refuse(self, nodes, jobs, driver, now):
        raise ModelError(["node wn1-deb-1: np = 'x': expected a whole number"])

    monkeypatch.setattr(ServerReader, "read", refuse)
    code, out, err = run(["--policy", str(policy), "--once"], make_backend(server, "cffi"))
    assert code == 2
    assert err.strip() == "vmsched-pbs: bad data from the server: node wn1-deb-1: np = 'x': expected a whole number"


def test_unreachable_server_is_exit_1(fake):
    server, policy = fake
    server.up = False
    code, out, err = run(["--policy", str(policy), "--once"], make_backend(server, "cffi"))
    assert code == 1 and "ECONNREFUSED" in err and "Traceback" not in err


def test_no_backend_at_all_is_exit_1(fake, monkeypatch):
    server, policy = fake
    monkeypatch.setattr(cli, "open_backend", lambda choice, library: (_ for _ in ()).throw(
        cli.BackendError("pbs_python backend: pbs: not installed; cffi backend: cannot load a PBS client library")))
    code, out, err = run(["--policy", str(policy), "--once", "--backend", "auto"])
    assert code == 1 and err.count("\n") == 1 and "not installed" in err


def test_a_node_that_is_no_valid_domain_is_skipped(fake):
    server, policy = fake
    domain_node(server, "wn3-deb-1", "wn 3", "deb")
    server.nodes["wn2-slc-1"]["np"] = "four"
    code, out, err = run(["--policy", str(policy), "--once", "--dry-run"], make_backend(server, "cffi"))
    assert code == 0, err
    assert "unreadable nodes (2):" in out and "wn2-slc-1  node wn2-slc-1: np = 'four'" in out


class Stop(Exception):
    pass


def test_the_daemon_reconnects_with_backoff_after_a_restart_and_reads_afresh(fake, caplog):
    server, policy = fake
    first = server.submit("alice", "meta", cores=2)
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        if len(waits) == 1:                 # after the first cycle: the server restarts and is down
            server.restart()
            server.up = False
            server.submit("alice", "meta", cores=2)
        elif len(waits) == 3:               # back after two failed attempts
            server.up = True
        elif len(waits) == 5:
            raise Stop

    backend = make_backend(server, "cffi")
    with pytest.raises(Stop):
        cli.main(["--policy", str(policy), "--interval", "30s"], backend=backend, out=io.StringIO(),
                 err=io.StringIO(), sleep=sleep)
    assert waits[:4] == [30.0, 1.0, 2.0, 30.0], "backoff doubles from 1 s while the server is away"
    assert all(j["job_state"] == "R" for j in server.jobs.values()) and server.started[first] == 1
    assert "PROTOCOL" in caplog.text and "ECONNREFUSED" in caplog.text
