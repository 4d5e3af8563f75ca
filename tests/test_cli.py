"""The vmsched command: explain, version, and bad input as one line with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def vmsched(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "vmsched.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_explain_bundled_example_prints_plan_and_every_reason():
    r = vmsched("explain")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "suspend-domain domain=skirit01-debian-meta-1 by=400.meta-pbs" in out
    assert "305.meta-pbs  [never] asks for 16 cores" in out
    assert "401.meta-pbs  [never] no image is open to VO nobody" in out
    snap = json.loads((ROOT / "vmsched/examples/metacenter-snapshot.json").read_text())
    queued = [j["id"] for j in snap["jobs"] if j["state"] == "Q"]
    started = [line.split("job=")[1].split()[0] for line in out.splitlines() if " run job=" in line]
    for jid in queued:
        assert jid in started or f"  {jid}  [" in out, jid


def test_explain_json_is_a_plan():
    r = vmsched("explain", "--json")
    plan = json.loads(r.stdout)
    assert plan["actions"] and plan["pending"]["305.meta-pbs"]["verdict"] == "never"


def test_explain_bad_snapshot_is_one_line(tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text('{"time": 1, "hosts": [], "domains": [], "jobs": [{"id": "1"}]}')
    r = vmsched("explain", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"vmsched: {bad}: jobs[0]: missing key")
    garbage = tmp_path / "g.json"
    garbage.write_bytes(b"\xff\xfe\x00garbage")
    r = vmsched("explain", str(garbage))
    assert r.returncode == 2 and "not a text file" in r.stderr


def test_version_names_the_engine():
    r = vmsched("--version")
    assert r.returncode == 0 and "matching engine:" in r.stdout


def test_no_command_is_usage_error():
    assert vmsched().returncode == 2


def test_simulate_bad_input_through_python_dash_m_is_one_line(tmp_path):
    """``python -m vmsched.cli`` runs the module twice (as __main__ and imported); the
    simulator's errors must still be caught as bad input, not escape as a traceback."""
    for args in (["simulate", str(tmp_path / "none.toml")],
                 ["simulate", str(ROOT / "vmsched/examples/metacentrum-sim.toml"), "--trace",
                  str(tmp_path / "none.swf")]):
        r = vmsched(*args, "--no-progress")
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "vmsched", "check", str(tmp_path / "none.toml")], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 2 and "no such file" in r.stderr
