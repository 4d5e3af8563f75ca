"""The durable usage store: decay, idempotence, crash safety and refusal of bad files."""

from __future__ import annotations

import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmsched.usage import SCHEMA_VERSION, UsageStore, UsageStoreError, decay_factor, decayed_usage

REPO = Path(__file__).resolve().parents[1]
ALICE = ("atlas", "prod", "alice")
DAVE = ("cms", "prod", "dave")


# ---------------------------------------------------------------------------------------
# Basics
# ---------------------------------------------------------------------------------------

def test_record_and_read_back(tmp_path):
    path = tmp_path / "usage.db"
    with UsageStore(path) as store:
        assert store.record("1.server", ALICE, 100.0, 1000.0)
        assert store.record("2.server", DAVE, 50.0, 1000.0)
        assert store.has_job("1.server") and not store.has_job("3.server")
        assert store.usage(1000.0, 3600.0) == {ALICE: 100.0, DAVE: 50.0}
        # one half-life later, half of it
        assert store.usage(4600.0, 3600.0)[ALICE] == pytest.approx(50.0)
    with UsageStore(path) as store:  # survives reopening
        assert store.jobs() == {"1.server", "2.server"}
        assert store.usage(4600.0, 3600.0) == {ALICE: pytest.approx(50.0), DAVE: pytest.approx(25.0)}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_same_job_twice_is_charged_once(tmp_path):
    with UsageStore(tmp_path / "usage.db") as store:
        assert store.record("7.server", ALICE, 10.0, 0.0) is True
        assert store.record("7.server", ALICE, 10.0, 0.0) is False
        assert store.record("7.server", DAVE, 99.0, 5.0) is False  # nothing changes
        assert store.usage(0.0, 60.0) == {ALICE: 10.0}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), -1.0, "12", True, None])
def test_bad_amount_is_refused_naming_the_job(tmp_path, bad):
    with UsageStore(tmp_path / "usage.db") as store:
        with pytest.raises(ValueError, match="job 42.server"):
            store.record("42.server", ALICE, bad, 0.0)
        assert not store.has_job("42.server")
        assert store.usage(0.0, 60.0) == {}


def test_bad_arguments_are_refused(tmp_path):
    with UsageStore(tmp_path / "usage.db") as store:
        for path in [(), ("atlas", ""), ["atlas"], "atlas"]:
            with pytest.raises(ValueError, match="job 1.server"):
                store.record("1.server", path, 1.0, 0.0)
        with pytest.raises(ValueError):
            store.record("", ALICE, 1.0, 0.0)
        with pytest.raises(ValueError):
            store.record("1.server", ALICE, 1.0, float("nan"))
        for now, half_life, floor in [(float("nan"), 1, 0), (0, 0, 0), (0, -1, 0), (0, 1, -1), (0, 1, float("inf"))]:
            with pytest.raises(ValueError):
                store.usage(now, half_life, floor)


def test_closed_store_says_so(tmp_path):
    store = UsageStore(tmp_path / "usage.db")
    store.close()
    store.close()
    with pytest.raises(UsageStoreError, match="closed"):
        store.record("1.server", ALICE, 1.0, 0.0)


def test_floor_and_time_that_runs_backwards(tmp_path):
    with UsageStore(tmp_path / "usage.db") as store:
        store.record("1.server", ALICE, 8.0, 100.0)
        assert store.usage(100.0 + 10 * 60, 60.0, floor=0.5)[ALICE] == 0.5
        # asking before the last charge gives the usage at the charge: no growth backwards
        assert store.usage(0.0, 60.0)[ALICE] == 8.0
        # a late report (dated before the last update) is decayed to that update
        store.record("2.server", ALICE, 8.0, 40.0)
        assert store.usage(100.0, 60.0)[ALICE] == pytest.approx(8.0 + 4.0)


def test_changing_the_half_life_rebuilds_from_the_ledger(tmp_path):
    with UsageStore(tmp_path / "usage.db") as store:
        store.record("1.server", ALICE, 16.0, 0.0)
        assert store.usage(60.0, 60.0)[ALICE] == pytest.approx(8.0)
        assert store.usage(60.0, 30.0)[ALICE] == pytest.approx(4.0)
        for half_life in (1.0, 2.0, 3.0, 4.0, 5.0):  # evicts the 60 s cache
            store.usage(0.0, half_life)
        store.record("2.server", ALICE, 16.0, 60.0)
        assert store.usage(120.0, 60.0)[ALICE] == pytest.approx(4.0 + 8.0)


# ---------------------------------------------------------------------------------------
# Decay properties
# ---------------------------------------------------------------------------------------

GAPS = st.floats(min_value=0, max_value=1e12)
HALF_LIVES = st.floats(min_value=1e-3, max_value=1e9)
FLOORS = st.floats(min_value=0, max_value=1e6)
AMOUNTS = st.floats(min_value=0, max_value=1e300)


@settings(max_examples=500, deadline=None)
@given(usage=AMOUNTS, gap=GAPS, half_life=HALF_LIVES, floor=FLOORS)
def test_decay_is_finite_and_never_below_floor(usage, gap, half_life, floor):
    value = decayed_usage(usage, 1000.0, 1000.0 + gap, half_life, floor)
    assert math.isfinite(value)
    assert floor <= value <= max(usage, floor)
    assert 0.0 <= decay_factor(gap, half_life) <= 1.0


@settings(max_examples=40, deadline=None)
@given(amount=AMOUNTS, gap=GAPS, half_life=HALF_LIVES, floor=FLOORS)
def test_store_decay_is_finite_and_never_below_floor(amount, gap, half_life, floor):
    with tempfile.TemporaryDirectory() as tmp, UsageStore(Path(tmp) / "usage.db") as store:
        store.record("1.server", ALICE, amount, 0.0)
        value = store.usage(gap, half_life, floor)[ALICE]
        assert math.isfinite(value)
        assert floor <= value <= max(amount, floor)


CHARGES = st.lists(
    st.tuples(st.sampled_from([ALICE, DAVE]),
              st.floats(min_value=0, max_value=1e6),
              st.floats(min_value=0, max_value=1e5)),
    min_size=1, max_size=12)


@settings(max_examples=30, deadline=None)
@given(charges=CHARGES, half_life=st.floats(min_value=1.0, max_value=1e6),
       reads=st.lists(st.booleans(), min_size=12, max_size=12))
def test_decay_is_the_same_whether_read_often_or_rarely(charges, half_life, reads):
    # Any interleaving of reads gives the closed form sum(a_i * 2^(-(now - t_i)/h)),
    # even when charges arrive out of time order.
    now = 2e5
    expected: dict[tuple[str, ...], float] = {}
    for path, amount, at in charges:
        expected[path] = expected.get(path, 0.0) + amount * 2.0 ** (-(now - at) / half_life)
    with tempfile.TemporaryDirectory() as tmp:
        with UsageStore(Path(tmp) / "often.db") as often, UsageStore(Path(tmp) / "rarely.db") as rarely:
            for number, ((path, amount, at), read) in enumerate(zip(charges, reads)):
                often.record(f"{number}.server", path, amount, at)
                rarely.record(f"{number}.server", path, amount, at)
                if read:
                    often.usage(at, half_life)
            for store in (often, rarely):
                got = store.usage(now, half_life)
                assert set(got) == set(expected)
                for path, value in expected.items():
                    assert got[path] == pytest.approx(value, rel=1e-9, abs=1e-300)


@settings(max_examples=30, deadline=None)
@given(deliveries=st.lists(
    st.tuples(st.sampled_from(["1.s", "2.s", "3.s", "4.s"]), st.sampled_from([ALICE, DAVE]),
              st.floats(min_value=0, max_value=1e6)),
    max_size=10))
def test_record_is_idempotent_by_job_id(deliveries):
    first: dict[str, tuple[tuple[str, ...], float]] = {}
    with tempfile.TemporaryDirectory() as tmp, UsageStore(Path(tmp) / "usage.db") as store:
        for job_id, path, amount in deliveries:
            assert store.record(job_id, path, amount, 0.0) is (job_id not in first)
            first.setdefault(job_id, (path, amount))
        expected: dict[tuple[str, ...], float] = {}
        for path, amount in first.values():
            expected[path] = expected.get(path, 0.0) + amount
        assert store.jobs() == set(first)
        got = store.usage(0.0, 60.0)
        assert set(got) == set(expected)
        for path, value in expected.items():
            assert got[path] == pytest.approx(value)


# ---------------------------------------------------------------------------------------
# kill -9 at any moment
# ---------------------------------------------------------------------------------------

CHILD = """
import sys
from vmsched.usage import UsageStore
path, number = sys.argv[1], int(sys.argv[2])
with UsageStore(path) as store:
    while True:
        job_id = f"{number}.server"
        store.record(job_id, ("atlas", "prod", "alice"), 1.0, float(number))
        print(job_id, flush=True)
        number += 1
"""


@pytest.mark.parametrize("seed", [1, 2])
def test_every_job_printed_before_kill_9_is_there_after_reopen(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "usage.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    printed: set[str] = set()
    unprinted: set[str] = set()
    next_number = 0
    # 0 lines: killed while opening (possibly while creating the schema)
    for wanted in (0, 1, 5, 40, 150, 3):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(next_number)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            for _ in range(wanted):
                line = child.stdout.readline()
                assert line, f"child stopped early: {child.stderr.read()}"
                printed.add(line.strip())
            time.sleep(rng.choice([0.0, 0.0005, 0.002, 0.01, 0.05]))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        # lines still in the pipe were printed after their commit too
        printed.update(line.strip() for line in child.stdout.read().splitlines() if line.strip())
        child.stdout.close()
        child.stderr.close()
        with UsageStore(path) as store:
            stored = store.jobs()
            missing = printed - stored
            assert not missing, f"committed jobs lost after kill -9: {sorted(missing)[:5]}"
            # per kill, at most one job committed whose line never got out
            unprinted_now = stored - printed
            assert len(unprinted_now - unprinted) <= 1
            unprinted = set(unprinted_now)
            numbers = sorted(int(job.split(".")[0]) for job in stored)
            assert numbers == list(range(len(numbers)))
            if stored:  # each job charged 1.0 at time = its number; no decay at a 1e12 s half-life
                assert store.usage(float(len(numbers)), 1e12)[ALICE] == pytest.approx(len(stored), rel=1e-6)
            next_number = len(numbers)
    assert len(printed) >= 199


# ---------------------------------------------------------------------------------------
# Files that are not usage stores
# ---------------------------------------------------------------------------------------

def _assert_refused(path: Path, *fragments: str) -> str:
    with pytest.raises(UsageStoreError) as info:
        UsageStore(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    # no chained SQLite traceback behind the one-line message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__
    return message


def test_text_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "usage.db"
    content = b"this is my shopping list\n" * 50
    path.write_bytes(content)
    _assert_refused(path, "not a usable SQLite database")
    assert path.read_bytes() == content
    assert not (tmp_path / "usage.db-wal").exists()


def test_short_text_file_is_refused(tmp_path):
    path = tmp_path / "usage.db"
    path.write_text("hi\n")
    _assert_refused(path)


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "usage.db"
    path.write_bytes(random.Random(0).randbytes(8192))
    _assert_refused(path, "not a usable SQLite database")


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE accounts (name TEXT)")
    conn.close()
    _assert_refused(path, "not a vmsched usage store")


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "usage.db"
    UsageStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    _assert_refused(path, "newer vmsched")


def test_directory_is_refused(tmp_path):
    _assert_refused(tmp_path)


def test_empty_file_becomes_a_store(tmp_path):
    path = tmp_path / "usage.db"
    path.touch()
    with UsageStore(path) as store:
        assert store.record("1.server", ALICE, 1.0, 0.0)
