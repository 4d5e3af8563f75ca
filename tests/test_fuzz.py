"""Fuzzing every reader with mutated real inputs (issue 10): policy files (and ``vmsched
check`` on them), snapshots (and ``vmsched explain`` on them), PBS job and node attributes,
SWF traces (and their replay's mapping).

Each input must end in success or the documented error (PolicyError, ModelError,
TraceError: one line each, short, no Python internals), within 2 s of CPU time and 300 MB
of peak memory, and what is accepted must lie within the documented bounds and be taken by
the cycle and the C core. The default run tries a few hundred inputs; ``-m slow`` tries tens of
thousands and prints how many per target, and how each ended, when this module's tests are
done (``VMSCHED_FUZZ_REPORT=FILE`` also writes them as JSON).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import fuzz
from tests.fuzz import COUNTS, run
from vmsched import cli
from vmsched.cycle import Scheduler
from vmsched.model import Host, Job, ModelError, Snapshot
from vmsched.policyfile import PolicyError, initial_domains, load_policy
from vmsched.sim.engine import prepare
from vmsched.sim.swf import TraceError, read_trace
from vmsched.usage import UsageStore

#: Examples per target: the default run, and the slow (long) run.
SHORT = {"policy": 80, "snapshot": 50, "job": 80, "host": 60, "swf": 60, "cli": 2}
LONG = {"policy": 9000, "snapshot": 5000, "job": 12000, "host": 8000, "swf": 9000, "cli": 20}


def _settings(n: int):
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", autouse=True)
def report(request):
    """After this module's tests: how many inputs each target tried, and how they ended."""
    yield
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if terminal is not None and capture is not None and COUNTS:
        with capture.global_and_fixture_disabled():
            terminal.write_line("")
            terminal.section("fuzz inputs per target")
            for target in sorted(COUNTS):
                c = COUNTS[target]
                rest = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k != "tried")
                terminal.write_line(f"{target}: {c['tried']} tried ({rest})")
    if os.environ.get("VMSCHED_FUZZ_REPORT"):
        with open(os.environ["VMSCHED_FUZZ_REPORT"], "w", encoding="utf-8") as fh:
            json.dump({t: dict(c) for t, c in sorted(COUNTS.items())}, fh, indent=1, sort_keys=True)
            fh.write("\n")


@pytest.fixture(scope="module")
def plugin_module(tmp_path_factory):
    """The seed policy's plugins, in a private directory (plugins are refused from files
    others can write)."""
    where = tmp_path_factory.mktemp("fuzz_plugins")
    where.chmod(0o755)
    (where / "vmsched_fuzz_plugins.py").write_text(fuzz.PLUGIN_CODE)
    (where / "vmsched_fuzz_plugins.py").chmod(0o644)
    sys.path.insert(0, str(where))
    yield "vmsched_fuzz_plugins"
    sys.path.remove(str(where))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    where = tmp_path_factory.mktemp("fuzz")
    where.chmod(0o755)
    return where


@pytest.fixture(scope="module")
def seeds(plugin_module):
    return {"policy": fuzz.policy_seeds(plugin_module), "snapshot": fuzz.snapshot_seeds(), "swf": fuzz.swf_seeds()}


# --------------------------------------------------------------------------- targets

def _run_cycle(policy) -> None:
    """What the check accepted, the cycle (and the C core) must take: the policy's hosts
    with their domains, a job per queue."""
    queues = sorted(policy.queues)[:3]
    jobs = [Job(f"{i}.fuzz", "u", "g", "g", q, 1, 100, 3600, 1_000_000.0) for i, q in enumerate(queues)]
    snap = Snapshot(1_000_100.0, policy.hosts, initial_domains(policy), jobs)
    Scheduler(policy, store=UsageStore(":memory:")).on_cycle(snap)


def _policy_ok(policy) -> None:
    fuzz.check_policy(policy)
    if len(policy.hosts) <= 500:
        _run_cycle(policy)


def fuzz_policy(data: bytes, work) -> None:
    """One mutated policy file through what ``vmsched check`` runs on it (load_policy,
    whose errors it prints), then, if accepted, a cycle."""
    path = work / "site.toml"
    path.write_bytes(data)
    path.chmod(0o644)
    run("policy", lambda: load_policy(path), cli._bad_input_types(), where=str(path), on_ok=_policy_ok)


def fuzz_snapshot(data: bytes, work) -> None:
    """One mutated snapshot through Snapshot.load, then, if accepted, ``vmsched explain``
    in-process (exit 0, or 2 with one line: a snapshot the engine refuses)."""
    path = work / "snapshot.json"
    path.write_bytes(data)
    snap = run("snapshot", lambda: Snapshot.load(path), (ModelError,), where=str(path), on_ok=fuzz.check_snapshot)
    if snap is not None:
        policy = str(fuzz.EXAMPLES / "metacenter.toml")
        run("explain", lambda: _cli(["explain", str(path), "--policy", policy, "--json"], work), ())


def _cli(argv: list[str], work) -> int:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    COUNTS[argv[0]][f"exit {rc}"] += 1
    assert rc in (0, 2), (rc, err.getvalue())
    lines = err.getvalue().splitlines()
    assert (rc == 0) == (not lines), err.getvalue()
    for ln in lines:
        assert ln.startswith("vmsched: ") and len(ln) <= len(str(work)) + 40 + fuzz.MAX_LINE, ln
        assert "Traceback" not in ln
    return rc


def fuzz_job(attrs_: dict) -> None:
    run("job", lambda: Job.from_pbs("7.srv", attrs_), (ModelError,), on_ok=fuzz.check_job)


def fuzz_host(attrs_: dict) -> None:
    run("host", lambda: Host.from_pbs("wn01", attrs_), (ModelError,), on_ok=fuzz.check_host)


def fuzz_swf(policy_name: str, data: bytes, work) -> None:
    """One mutated run of trace lines through the reader, then, if read, the replay's
    mapping of every job (prepare)."""
    path = work / "t.swf"
    path.write_bytes(data)
    trace = run("swf", lambda: read_trace(path), (TraceError,), where=str(path), on_ok=fuzz.check_trace)
    if trace is not None:
        policy = _sim_policy(policy_name)
        run("swf-replay", lambda: prepare(policy, path), (TraceError, PolicyError), where=str(path))


_SIM_POLICIES: dict = {}


def _sim_policy(name: str):
    if name not in _SIM_POLICIES:
        _SIM_POLICIES[name] = load_policy(fuzz.EXAMPLES / name)
    return _SIM_POLICIES[name]


# --------------------------------------------------------------------------- the runs

def _mutated(data, seeds: list):
    """One seed (drawn by index, so that a failing example prints short), mutated."""
    seed = seeds[data.draw(st.integers(0, len(seeds) - 1), label="seed")]
    return seed, fuzz.mutate(seed[-1] if isinstance(seed, tuple) else seed, data.draw(fuzz.mutations))


def fuzz_run(target: str, n: int, seeds, work) -> None:
    """``n`` inputs for ``target``: hypothesis draws them, the target function runs each."""
    @_settings(n)
    @given(data=st.data())
    def files(data):
        seed, mutated = _mutated(data, seeds["policy" if target == "cli" else target])
        if target == "policy":
            fuzz_policy(mutated, work)
        elif target == "snapshot":
            if data.draw(st.booleans(), label="by structure"):   # else bytes, which mostly break the JSON
                mutated = fuzz.mutate_json(seed, data.draw(fuzz.json_mutations))
            fuzz_snapshot(mutated, work)
        elif target == "swf":
            fuzz_swf(seed[0], mutated, work)
        else:
            _check_cli(mutated, work)

    @_settings(n)
    @given(attrs_=fuzz.pbs_attributes(fuzz.JOB_SEEDS, fuzz.JOB_KEYS))
    def jobs(attrs_):
        fuzz_job(attrs_)

    @_settings(n)
    @given(attrs_=fuzz.pbs_attributes(fuzz.HOST_SEEDS, fuzz.HOST_KEYS))
    def hosts(attrs_):
        fuzz_host(attrs_)

    {"job": jobs, "host": hosts}.get(target, files)()


def _check_cli(data: bytes, work) -> None:
    """``vmsched check FILE`` as a process: exit 0, 1 or 2, no traceback, one line each."""
    path = work / "cli.toml"
    path.write_bytes(data)
    path.chmod(0o644)
    env_path = ":".join(p for p in sys.path if p)
    r = subprocess.run([sys.executable, "-m", "vmsched", "check", str(path)], capture_output=True, text=True,
                       cwd=fuzz.ROOT, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, timeout=60)
    COUNTS["cli check"]["tried"] += 1
    COUNTS["cli check"][f"exit {r.returncode}"] += 1
    assert r.returncode in (0, 1, 2) and "Traceback" not in r.stderr, r.stderr[-2000:]
    for ln in r.stderr.splitlines():
        assert ln.startswith("vmsched: ") and len(ln) <= len(str(path)) + 9 + fuzz.MAX_LINE, ln


@pytest.mark.parametrize("target", sorted(SHORT))
def test_fuzz(target, seeds, work):
    fuzz_run(target, SHORT[target], seeds, work)


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(LONG))
def test_fuzz_long(target, seeds, work):
    fuzz_run(target, LONG[target], seeds, work)


# --------------------------------------------------------------------------- the harness itself

def test_the_harness_fails_what_the_readers_must_not_do():
    try:
        with pytest.raises(KeyError):                   # an undocumented exception
            run("selftest", lambda: {}["x"], (ModelError,))
        with pytest.raises(AssertionError):             # a two-line message
            run("selftest", lambda: (_ for _ in ()).throw(ModelError(["a\nb"])), (ModelError,))
        with pytest.raises(AssertionError):             # Python internals in a message
            run("selftest", lambda: (_ for _ in ()).throw(ModelError(["x: Attribute(name='up')"])), (ModelError,))
        host = Host("h", 1, 1)
        object.__setattr__(host, "max_active", 2 ** 31)
        with pytest.raises(AssertionError):             # silent acceptance of an out-of-range value
            run("selftest", lambda: host, (), on_ok=fuzz.check_host)
        assert fuzz.mutate(b"a = 12\n", [("number", 0, fuzz.TOKENS.index(b"9" * 400))]) == b"a = " + b"9" * 400 + b"\n"
        assert fuzz.mutate(b'{"a": "x"}', [("value", 0, fuzz.TOKENS.index(b"null"))]) == b'{"a": null}'
    finally:
        COUNTS.pop("selftest", None)
