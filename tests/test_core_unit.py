"""Unit tests of the wrapper vmsched._core: C codes become EngineError with a useful message,
the lazy match result behaves like a MatchResult, and best_engine falls back with a warning."""

from __future__ import annotations

import os
import pickle
import warnings

import pytest

from vmsched import _core
from vmsched import matching
from vmsched.matching import UNLIMITED_CAP, EngineError, MatchResult, PyEngine

REQUIRED = os.environ.get("VMSCHED_REQUIRE_C") == "1"
needs_c = pytest.mark.skipif(not _core.AVAILABLE and not REQUIRED,
                             reason=f"C core not built ({_core.load_error()})")


def small(engine):
    engine.add_host(0, 16, 16000, 1)
    engine.add_slot(0, 0, 0, 8, 8000, True)
    engine.add_slot(1, 0, 1, 8, 8000, False)
    engine.add_job(0, [0], 4, 4000, 1, 0, 0, 0.0)
    engine.add_job(1, [0, 1], 2, 1000, 2, 1, 1, 10.0)
    return engine


@needs_c
@pytest.mark.parametrize("call, pattern", [
    (lambda e: e.add_slot(0, 0, 0, 1, 1, True), r"add_slot\(0, host 0\): handle already exists"),
    (lambda e: e.add_slot(5, 9, 0, 1, 1, True), r"add_slot\(5, host 9\): unknown handle"),
    (lambda e: e.add_slot(5, 0, -2, 1, 1, True), r"argument out of range"),
    (lambda e: e.remove_slot(7), r"remove_slot\(7\): unknown handle"),
    (lambda e: e.add_job(0, [0], 1, 1, 1, 0, 0, 0.0), r"add_job\(0\): handle already exists"),
    (lambda e: e.add_job(3, [0], 1, 1, 0, 0, 0, 0.0), r"add_job\(3\): argument out of range"),
    (lambda e: e.add_job(3, [0], 1, 1, 1, 0, 0, float("nan")), r"argument out of range"),
    (lambda e: e.add_job(3, [1 << 70], 1, 1, 1, 0, 0, 0.0), r"add_job\(3\): kinds"),
    (lambda e: e.add_job(1 << 70, [0], 1, 1, 1, 0, 0, 0.0), r"add_job"),
    (lambda e: e.start_job(0, 0, 1.0) or e.start_job(1, 0, 1.0), r"start_job\(1, slot 0\): slot is full"),
    (lambda e: e.start_job(0, 0, 1.0) or e.start_job(0, 0, 1.0), r"job already runs"),
    (lambda e: e.start_job(0, 0, 1.0) or e.remove_slot(0), r"remove_slot\(0\): slot still holds jobs"),
    (lambda e: e.suspend_job(0), r"suspend_job\(0\): job is not running"),
    (lambda e: e.resume_job(9), r"resume_job\(9\): unknown handle"),
    (lambda e: e.find_victims(0, 7, 0.0), r"find_victims\(0, mode 7\): argument out of range"),
    (lambda e: e.set_factors([float("inf")]), r"set_factors: argument out of range"),
    (lambda e: e.match(float("nan"), 1, 1, 1), r"match: argument out of range"),
    (lambda e: e.priority(9, 0.0, 1, 1, 1), r"priority\(9\): unknown handle"),
    (lambda e: e.add_host(-1, 1, 1, 1), r"add_host\(-1\): argument out of range"),
    (lambda e: e.set_host(0, 1, 1, 0), r"set_host\(0\): argument out of range"),
    (lambda e: e.remove_host(0), r"remove_host\(0\): .*host still holds slots"),
    (lambda e: e.remove_host(3), r"remove_host\(3\): unknown handle"),
    (lambda e: e.remove_host(-1), r"remove_host\(-1\): unknown handle"),
    (lambda e: e.remove_slot(0) or e.remove_slot(1) or e.remove_host(0) or e.add_slot(0, 0, 0, 1, 1, 1),
     r"add_slot\(0, host 0\): unknown handle"),
    # slot states: 0..3 (True/False as 1/0); anything else is a bad argument
    (lambda e: e.add_slot(5, 0, 0, 1, 1, 4), r"add_slot\(5, host 0\): argument out of range"),
    (lambda e: e.add_slot(5, 0, 0, 1, 1, -1), r"add_slot\(5, host 0\): argument out of range"),
    (lambda e: e.add_slot(5, 0, 0, 1, 1, 1 << 70), r"add_slot\(5, host 0\)"),
    (lambda e: e.add_slot(5, 0, 0, 1, 1, 1.0), r"add_slot\(5, host 0\)"),
    (lambda e: e.add_slot(5, 0, 0, 1, 1, None), r"add_slot\(5, host 0\)"),
    (lambda e: e.set_slot_state(0, 4), r"set_slot_state\(0, 4\): argument out of range"),
    (lambda e: e.set_slot_state(0, -1), r"set_slot_state\(0, -1\): argument out of range"),
    (lambda e: e.set_slot_state(0, 2.0), r"set_slot_state\(0, 2.0\)"),
    (lambda e: e.set_slot_state(9, 1), r"set_slot_state\(9, 1\): unknown handle"),
    (lambda e: e.set_slot_states([0, 9], 1), r"set_slot_states\(2 slots, 1\): unknown handle"),
    (lambda e: e.set_slot_states([0], 4), r"set_slot_states\(1 slots, 4\): argument out of range"),
])
def test_codes_become_engine_errors(call, pattern):
    e = small(_core.CEngine())
    with pytest.raises(EngineError, match=pattern):
        call(e)
    # and the reference agrees that it is an error
    with pytest.raises(EngineError):
        call(small(PyEngine()))


@needs_c
@pytest.mark.parametrize("state", [0, 1, 2, 3, True, False])
def test_good_states_are_accepted(state):
    for e in (small(_core.CEngine()), small(PyEngine())):
        e.add_slot(5, 0, 0, 1, 1, state)
        e.set_slot_state(5, state)
        e.set_slot_state(0, state)
        e.set_slot_active(1, bool(state))


@needs_c
def test_slot_states_all_or_none():
    for e in (small(_core.CEngine()), small(PyEngine())):
        with pytest.raises(EngineError):
            e.set_slot_states([0, 9], 2)     # 9 unknown: slot 0 stays ACTIVE
        assert e.best_slot(1) == 0
        e.set_slot_states([0, 1], 2)
        assert e.best_slot(1) is None
        e.set_slot_states([0], 1)
        assert e.best_slot(1) == 0


@needs_c
def test_bad_state_leaves_the_slot_as_it_was():
    for e in (small(_core.CEngine()), small(PyEngine())):
        with pytest.raises(EngineError):
            e.set_slot_state(0, 7)
        assert e.best_slot(1) == 0  # slot 0 still ACTIVE and indexed
        with pytest.raises(EngineError):
            e.add_slot(5, 0, 0, 1, 1, 9)
        assert e.stats()["slots"] == 2


@needs_c
def test_state_constants_match_the_header():
    lib = _core._lib
    assert (matching.SLOT_IDLE, matching.SLOT_ACTIVE, matching.SLOT_STARTING,
            matching.SLOT_UNAVAILABLE) == (lib.CORE_SLOT_IDLE, lib.CORE_SLOT_ACTIVE,
                                           lib.CORE_SLOT_STARTING, lib.CORE_SLOT_UNAVAILABLE)
    assert matching.SLOT_STATES == (0, 1, 2, 3)


@needs_c
def test_hosts_set_and_remove():
    for e in (small(_core.CEngine()), small(PyEngine())):
        e.set_host(0, 32, 32000, 4)          # an update keeps the slots
        e.add_host(0, 32, 32000, 4)          # add_host is the same upsert
        e.set_host(7, 8, 8000, 1)
        assert e.stats()["hosts"] == 2 and e.stats()["slots"] == 2
        e.remove_host(7)
        assert e.stats()["hosts"] == 1
        e.remove_slot(0)
        e.remove_slot(1)
        e.remove_host(0)
        assert e.stats()["hosts"] == 0


@needs_c
def test_does_not_fit():
    e = small(_core.CEngine())
    e.add_job(5, [0], 16, 1, UNLIMITED_CAP, 0, 0, 0.0)
    with pytest.raises(EngineError, match=r"start_job\(5, slot 0\): job does not fit the slot"):
        e.start_job(5, 0, 0.0)


def test_check_maps_every_code():
    for rc, text in _core._MESSAGES.items():
        with pytest.raises(EngineError, match=f"{text}.*code {rc}"):
            _core._check(rc, "op")
    with pytest.raises(MemoryError):
        _core._check(-3, "op")
    with pytest.raises(EngineError, match="error -42"):
        _core._check(-42, "op")
    _core._check(0, "op")


@needs_c
def test_lazy_result_is_a_match_result():
    c, p = small(_core.CEngine()), small(PyEngine())
    rc, rp = c.match(100.0, 1.0, 1.0, 1.0, dry_run=True), p.match(100.0, 1.0, 1.0, 1.0, dry_run=True)
    assert isinstance(rc, MatchResult)
    assert rc == rp and rp == rc and not (rc != rp)
    assert hash(rc) == hash(rp)
    assert rc.pending_head(1) == rp.pending_head(1) == rp.pending[:1]
    assert rc.materialize() == rp and type(rc.materialize()) is MatchResult
    assert pickle.loads(pickle.dumps(rc)) == rp
    assert repr(rc) == repr(rp)
    assert c.stats()["pending"] == 2  # dry run: nothing stayed placed


@needs_c
def test_stats_and_name():
    e = small(_core.CEngine())
    st = e.stats()
    assert st["hosts"] == 1 and st["slots"] == 2 and st["jobs"] == 2 and st["pending"] == 2
    assert st["shapes"] == 2 and st["bytes"] > 0
    assert e.name == "c" and _core.ENGINE_NAME == "c"
    assert {k: st[k] for k in PyEngine().stats()} == small(PyEngine()).stats()


@needs_c
def test_sanitizer_build_is_the_one_loaded():
    path = os.environ.get("VMSCHED_CORE_LIB")
    if not path:
        pytest.skip("VMSCHED_CORE_LIB not set")
    assert os.path.samefile(_core._mod.__file__, path)


@needs_c
def test_best_engine_is_c():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(_core.best_engine(), _core.CEngine)


def test_best_engine_falls_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(_core, "AVAILABLE", False)
    monkeypatch.setattr(_core, "_LOAD_ERROR", "ImportError: not built")
    with pytest.warns(RuntimeWarning, match="not available.*not built"):
        engine = _core.best_engine()
    assert isinstance(engine, PyEngine)


def test_cengine_without_module_says_why(monkeypatch):
    monkeypatch.setattr(_core, "_lib", None)
    monkeypatch.setattr(_core, "_LOAD_ERROR", "ImportError: gone")
    with pytest.raises(ImportError, match="not built.*gone"):
        _core.CEngine()
