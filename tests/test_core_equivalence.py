"""The C core (vmsched._core.CEngine) against the Python reference (vmsched.matching.PyEngine).

Both engines get the same operations: random clusters, jobs, state changes, policies, cycles
and preemption searches, valid and invalid. Every call must return the same thing in both,
or raise EngineError in both. Two drivers: a Hypothesis state machine (shrinks failures to a
short program) and a seeded random-program fuzzer (cheap, many programs). The default run
is fast; ``-m slow`` runs many more examples.

If the compiled core is missing the tests skip, unless VMSCHED_REQUIRE_C=1 (CI), where they fail.
"""

from __future__ import annotations

import math
import os
import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from vmsched import _core
from vmsched.matching import (SLOT_ACTIVE, SLOT_IDLE, SLOT_STARTING, SLOT_UNAVAILABLE,
                              UNLIMITED_CAP, EngineError, PyEngine)

REQUIRED = os.environ.get("VMSCHED_REQUIRE_C") == "1"
pytestmark = pytest.mark.skipif(
    not _core.AVAILABLE and not REQUIRED,
    reason=f"C core not built ({_core.load_error()}); run python csrc/build_core.py")

FAST = os.environ.get("VMSCHED_FAST_EQUIV") == "1"  # the sanitizer run: fewer examples


def test_core_is_built():
    assert _core.AVAILABLE, f"the C core did not load: {_core.load_error()}"
    assert _core.ENGINE_NAME == "c"


STAT_KEYS = ("hosts", "slots", "jobs", "pending", "running", "cycles")


class Pair:
    """Runs each call on both engines and asserts the same outcome."""

    def __init__(self) -> None:
        self.py = PyEngine()
        self.c = _core.CEngine()
        self.calls = 0

    def __call__(self, method: str, *args, **kw):
        self.calls += 1
        out = []
        for e in (self.py, self.c):
            try:
                out.append(("ok", getattr(e, method)(*args, **kw)))
            except EngineError as exc:
                out.append(("error", str(exc)))
        (kp, vp), (kc, vc) = out
        where = f"{method}{args}{kw}"
        assert kp == kc, f"{where}: python {kp} {vp!r}, c {kc} {vc!r}"
        if kp == "ok":
            if method == "priority":
                assert vp == vc or (math.isnan(vp) and math.isnan(vc)), f"{where}: {vp} != {vc}"
            else:
                assert vp == vc, f"{where}:\npython {vp}\nc      {vc}"
        return vp

    def check_stats(self) -> None:
        sp, sc = self.py.stats(), self.c.stats()
        assert {k: sp[k] for k in STAT_KEYS} == {k: sc[k] for k in STAT_KEYS}


# ------------------------------------------------------------------ value pools (ties on purpose)
HOSTS = 6
SLOTS = 28
JOBS = 60
KINDS = 4
MEMS = [0, 500, 1000, 1700, 2000, 3500, 4000, 7000, 8000, 14000, 16000]
TIMES = [0.0, 1.0, 60.0, 3600.0, 3601.5, 7200.0, 86400.0, -5.0]
WEIGHTS = [0.0, -0.0, 1.0, 0.5, 2.0, 1000.0, -1.0, 1e-9, 3.0]
FACTORS = [0.0, -0.0, 0.25, 0.5, 1.0, 1.5, -0.75, 1e-12]
CAPS = [1, 1, 2, 2, 3, UNLIMITED_CAP]
BAD_INTS = [-1, -(1 << 40), 1 << 26, 1 << 63, 1 << 70]
BAD_FLOATS = [math.nan, math.inf, -math.inf, 2.0 ** 41, 1e300]
# slot states: all four, and the booleans the older API passed (True = ACTIVE, False = IDLE)
STATES = [SLOT_IDLE, SLOT_ACTIVE, SLOT_ACTIVE, SLOT_ACTIVE, SLOT_STARTING, SLOT_UNAVAILABLE,
          True, False]
STATE_WEIGHTS = {SLOT_IDLE: 20, SLOT_ACTIVE: 60, SLOT_STARTING: 10, SLOT_UNAVAILABLE: 10}


def _rng_state(rng: random.Random) -> int:
    return rng.choices(list(STATE_WEIGHTS), weights=list(STATE_WEIGHTS.values()))[0]
BAD_STATES = [-1, 4, 255, 256, 1 << 31, 1 << 70, 1.0, None]


class Program:
    """Draws one random operation at a time from a random source (an int chooser)."""

    def __init__(self, draw_int, draw_bool) -> None:
        self.i = draw_int      # i(lo, hi) -> int in [lo, hi]
        self.b = draw_bool     # b(p) -> bool with probability about p

    def pick(self, seq):
        return seq[self.i(0, len(seq) - 1)]

    def bad(self, value):
        """Sometimes (rarely) replace a value with an invalid one."""
        if self.b(0.03):
            return self.pick(BAD_INTS)
        return value

    def badf(self, value):
        if self.b(0.03):
            return self.pick(BAD_FLOATS)
        return value

    def state(self):
        return self.pick(BAD_STATES) if self.b(0.03) else self.pick(STATES)

    def step(self, pair: Pair) -> None:
        i, b, pick = self.i, self.b, self.pick
        op = i(0, 112)
        if op < 6:
            pair(pick(["add_host", "set_host"]), self.bad(i(0, HOSTS)),
                 self.bad(pick([0, 4, 8, 16, 16, 32])),
                 self.bad(pick([0, 8000, 16000, 32000, 64000])), self.bad(pick([1, 1, 2, 3])))
        elif op < 20:
            pair("add_slot", self.bad(i(0, SLOTS)), i(0, HOSTS), self.bad(i(0, KINDS)),
                 self.bad(pick([0, 1, 2, 4, 8, 8, 16])), self.bad(pick(MEMS)), self.state())
        elif op < 23:
            pair("set_slot_active", i(-1, SLOTS), b(0.6))
        elif op < 26:
            pair("set_slot_state", i(-1, SLOTS), self.state())
        elif op < 28:
            # many at once, as the image-share hold-back does; an unknown one changes none
            pair("set_slot_states", [i(-1, SLOTS) for _ in range(i(0, 4))], self.state())
        elif op < 31:
            pair("remove_slot", i(-1, SLOTS))
        elif op < 34:
            pair("remove_host", self.bad(i(-1, HOSTS)))
        elif op < 36:
            drain_host(pair, i(0, HOSTS), b(0.5))
        elif op < 41:
            # resize a host that (likely) exists: later domain-mode searches see the new size
            pair("set_host", i(0, HOSTS), pick([0, 8, 16, 24, 32, 64]),
                 pick([0, 8000, 16000, 32000, 64000, 128000]), pick([1, 1, 2, 3, 4]))
        elif op < 63:
            kinds = [i(0, KINDS) for _ in range(i(0, 3))]
            if b(0.02):
                kinds.append(pick(BAD_INTS))
            pair("add_job", self.bad(i(0, JOBS)), kinds, self.bad(pick([0, 1, 1, 2, 4, 8, 16])),
                 self.bad(pick(MEMS)), self.bad(pick(CAPS)), self.bad(i(0, 3)),
                 self.bad(i(0, 6)), self.badf(pick(TIMES)))
        elif op < 68:
            pair("remove_job", i(-1, JOBS))
        elif op < 76:
            pair("start_job", i(0, JOBS), i(0, SLOTS), self.badf(pick(TIMES)))
        elif op < 79:
            pair("suspend_job", i(-1, JOBS))
        elif op < 81:
            pair("resume_job", i(-1, JOBS))
        elif op < 85:
            pair("requeue_job", i(-1, JOBS))
        elif op < 88:
            pair("set_factors", [self.badf(pick(FACTORS)) for _ in range(i(0, 7))])
        elif op < 99:
            limit = pick([-1, -1, -5, 0, 1, 2, 5, 100, 1 << 70])
            pair("match", self.badf(pick(TIMES) + 100000.0), self.badf(pick(WEIGHTS)),
                 pick(WEIGHTS), pick(WEIGHTS), limit, dry_run=b(0.4))
        elif op < 104:
            pair("find_victims", i(-1, JOBS), pick([0, 1, 2, 0, 1, 2, 3, -1]),
                 self.badf(pick(TIMES) + 50000.0))
        elif op < 107:
            # the top-ranked pending jobs, as a scheduler asks: these do find victims
            top = sorted(pair.py._pending, key=lambda h: (-pair.py._jobs[h].rank, h))[:3]
            for h in top:
                pair("find_victims", h, pick([0, 1, 2, 2]), pick(TIMES) + 50000.0)
        elif op < 109:
            pair("best_slot", i(-1, JOBS))
        elif op < 111:
            pair("reasons", i(-1, JOBS))
        elif op < 112:
            pair("order", pick(TIMES), pick(WEIGHTS), pick(WEIGHTS), pick(WEIGHTS))
        else:
            pair("priority", i(-1, JOBS), pick(TIMES), pick(WEIGHTS), pick(WEIGHTS),
                 pick(WEIGHTS))


def drain_host(pair: Pair, host: int, remove: bool) -> None:
    """Take every job off the host's slots (requeue), remove the slots, then (if remove)
    the host, so that remove_host also succeeds, not only fails on a busy host."""
    for s in list(pair.py._host_slots.get(host, ())):
        for h in list(pair.py._slots[s].jobs):
            pair("requeue_job", h)
        pair("remove_slot", s)
    if remove:
        pair("remove_host", host)


def _seed_cluster(pair: Pair, rng: random.Random) -> None:
    """A populated start, so that short programs reach interesting states."""
    for h in range(rng.randint(1, HOSTS)):
        pair("add_host", h, rng.choice([8, 16, 32]), rng.choice([16000, 32000, 64000]),
             rng.choice([1, 2, 3]))
    for s in range(rng.randint(1, SLOTS)):
        pair("add_slot", s, rng.randint(0, HOSTS), rng.randint(0, KINDS),
             rng.choice([1, 2, 4, 8, 8, 16]), rng.choice(MEMS), _rng_state(rng))
    for j in range(rng.randint(0, JOBS)):
        pair("add_job", j, [rng.randint(0, KINDS) for _ in range(rng.randint(1, 2))],
             rng.choice([1, 1, 2, 4, 8]), rng.choice(MEMS[:8]), rng.choice(CAPS),
             rng.randint(0, 3), rng.randint(0, 6), rng.choice(TIMES))
    pair("set_factors", [rng.choice(FACTORS) for _ in range(rng.randint(0, 7))])


# ------------------------------------------------------------------ driver 1: seeded fuzzer
def _fuzz(programs: int, steps: int, seed: int) -> int:
    total = 0
    for k in range(programs):
        rng = random.Random(seed * 1_000_003 + k)
        pair = Pair()
        _seed_cluster(pair, rng)
        prog = Program(rng.randint, lambda p: rng.random() < p)
        for _ in range(steps):
            prog.step(pair)
        pair.check_stats()
        total += pair.calls
    return total


def test_equivalence_fuzz():
    assert _fuzz(150 if FAST else 1500, 60, seed=1) > 0


@pytest.mark.slow
def test_equivalence_fuzz_slow():
    assert _fuzz(15000, 100, seed=2) > 0


# ------------------------------------------------------------------ driver 2: hypothesis
class EngineMachine(RuleBasedStateMachine):
    """Hypothesis drives the same Program, so a failure shrinks to few operations."""

    def __init__(self) -> None:
        super().__init__()
        self.pair = Pair()
        self.seeded = False

    @rule(data=st.data())
    def seed(self, data):
        if not self.seeded:
            self.seeded = True
            _seed_cluster(self.pair, random.Random(data.draw(st.integers(0, 2 ** 32))))

    @rule(data=st.data())
    def operation(self, data):
        prog = Program(lambda lo, hi: data.draw(st.integers(lo, hi)),
                       lambda p: data.draw(st.integers(0, 999)) < int(p * 1000))
        prog.step(self.pair)

    @rule(now=st.sampled_from(TIMES), w=st.tuples(*[st.sampled_from(WEIGHTS)] * 3),
          limit=st.integers(-1, 6), dry=st.booleans())
    def cycle(self, now, w, limit, dry):
        res = self.pair("match", now + 100000.0, *w, limit, dry_run=dry)
        # a cycle's placements feed the preemption search, as a scheduler would
        for h, _ in res.pending[:3]:
            for mode in (0, 1, 2):
                self.pair("find_victims", h, mode, now + 200000.0)

    @rule(slot=st.integers(-1, SLOTS),
          state=st.sampled_from(STATES) | st.sampled_from(BAD_STATES))
    def slot_state(self, slot, state):
        self.pair("set_slot_state", slot, state)

    @rule(slots=st.lists(st.integers(-1, SLOTS), max_size=5),
          state=st.sampled_from(STATES) | st.sampled_from(BAD_STATES))
    def slot_states(self, slots, state):
        self.pair("set_slot_states", slots, state)

    @rule(host=st.integers(-1, HOSTS), cores=st.sampled_from([0, 8, 16, 32, 1 << 21]),
          memory=st.sampled_from([0, 16000, 64000]), max_active=st.integers(0, 4))
    def host_change(self, host, cores, memory, max_active):
        self.pair("set_host", host, cores, memory, max_active)

    @rule(host=st.integers(-1, HOSTS), drain=st.booleans())
    def host_goes(self, host, drain):
        if drain:
            drain_host(self.pair, host, True)
        else:
            self.pair("remove_host", host)

    @invariant()
    def same_counters(self):
        self.pair.check_stats()


EngineMachine.TestCase.settings = settings(
    max_examples=50 if FAST else 300, stateful_step_count=40, deadline=None,
    suppress_health_check=list(HealthCheck))
test_equivalence_stateful = EngineMachine.TestCase


class SlowEngineMachine(EngineMachine):
    pass


SlowEngineMachine.TestCase.settings = settings(
    max_examples=2000, stateful_step_count=80, deadline=None,
    suppress_health_check=list(HealthCheck))
test_equivalence_stateful_slow = pytest.mark.slow(SlowEngineMachine.TestCase)


# ------------------------------------------------------------------ targeted cases
def test_negative_zero_priority_ties():
    """-0.0 and 0.0 priorities tie and fall back to submit time, then handle."""
    pair = Pair()
    pair("add_host", 0, 8, 8000, 1)
    pair("add_slot", 0, 0, 0, 1, 1000, True)
    pair("set_factors", [-0.0, 0.0])
    pair("add_job", 1, [0], 1, 100, 1, 0, 0, 10.0)
    pair("add_job", 0, [0], 1, 100, 1, 0, 1, 10.0)
    pair("add_job", 2, [0], 1, 100, 1, 0, 0, 5.0)
    res = pair("match", 10.0, 1.0, 0.0, 0.0)
    assert res.order == (2, 0, 1)
    assert res.placed == ((2, 0),)


def test_slot_states_in_domain_mode():
    """Magrathea: only an IDLE empty slot is activated; STARTING slots take host room and are
    never suspended; UNAVAILABLE ones are never chosen, even when their handle is lower."""
    pair = Pair()
    pair("set_host", 0, 16, 16000, 2)
    pair("add_slot", 0, 0, 1, 8, 8000, SLOT_ACTIVE)       # runs a low-rank job
    pair("add_slot", 1, 0, 1, 8, 8000, SLOT_STARTING)     # booting: takes room
    pair("add_slot", 2, 0, 0, 8, 8000, SLOT_UNAVAILABLE)  # down: never the target
    pair("add_slot", 3, 0, 0, 8, 8000, SLOT_IDLE)         # the one to activate
    pair("add_job", 0, [1], 4, 4000, 1, 0, 0, 0.0)
    pair("start_job", 0, 0, 0.0)
    pair("add_job", 9, [0], 1, 1000, 1, 1, 0, 0.0)
    v = pair("find_victims", 9, 2, 100.0)
    assert (v.slot, v.jobs, v.suspend_slots) == (3, (0,), (0,))
    for state in (SLOT_STARTING, SLOT_ACTIVE, SLOT_UNAVAILABLE):
        pair("set_slot_state", 3, state)   # not IDLE: no target left
        assert pair("find_victims", 9, 2, 100.0) is None
    pair("set_slot_state", 3, SLOT_IDLE)
    pair("set_slot_state", 1, SLOT_UNAVAILABLE)  # no host room taken: activation, no victims
    assert pair("find_victims", 9, 2, 100.0) is None
    pair("set_slot_state", 1, SLOT_STARTING)
    pair("set_host", 0, 24, 24000, 3)           # a bigger host: room without preemption
    assert pair("find_victims", 9, 2, 100.0) is None
    pair("set_host", 0, 16, 16000, 2)
    pair("remove_job", 0)
    pair("add_job", 0, [1], 4, 4000, 1, 5, 0, 0.0)  # now the active slot's job ranks higher
    pair("start_job", 0, 0, 0.0)
    assert pair("find_victims", 9, 2, 100.0) is None  # and STARTING slot 1 is no victim
    # the job modes use ACTIVE slots only; reasons count every non-ACTIVE slot as NOT_ACTIVE
    pair("add_job", 10, [1], 8, 8000, 1, 9, 0, 0.0)
    assert pair("find_victims", 10, 0, 100.0).slot == 0
    pair("set_slot_state", 0, SLOT_STARTING)
    assert pair("find_victims", 10, 0, 100.0) is None
    assert pair("reasons", 9) == (2, 2, 0, 0, 0)
    res = pair("match", 100.0, 1.0, 1.0, 1.0)
    assert res.placed == ()


def test_hosts_change_and_go():
    pair = Pair()
    pair("set_host", 0, 8, 8000, 1)
    pair("add_host", 0, 16, 16000, 2)    # add_host is set_host: an update, no error
    pair("add_slot", 0, 0, 0, 8, 8000, True)
    with pytest.raises(EngineError):
        pair.py.remove_host(0)           # still holds a slot
    pair("remove_host", 0)               # (the pair checks that C agrees)
    pair("remove_host", 5)               # unknown
    pair("remove_slot", 0)
    pair("remove_host", 0)
    assert pair.py.stats()["hosts"] == 0
    pair("add_slot", 1, 0, 0, 8, 8000, SLOT_IDLE)  # the host is gone
    pair("set_host", 0, 8, 8000, 1)
    pair("add_slot", 1, 0, 0, 8, 8000, SLOT_IDLE)
    pair.check_stats()


def test_fuzzer_reaches_domain_mode_victims():
    """The random programs do find domain-mode victims (with all four states about)."""
    found = 0
    for k in range(200):
        rng = random.Random(k)
        pair = Pair()
        _seed_cluster(pair, rng)
        for h in range(JOBS):
            if h in pair.py._jobs:
                found += pair("find_victims", h, 2, 1e5) is not None
    assert found > 0


def test_dry_run_leaves_state():
    pair = Pair()
    rng = random.Random(7)
    _seed_cluster(pair, rng)
    before = pair("match", 1e5, 1.0, 1.0, 1.0, dry_run=True)
    again = pair("match", 1e5, 1.0, 1.0, 1.0, dry_run=True)
    assert before == again
    real = pair("match", 1e5, 1.0, 1.0, 1.0)
    assert real == before


def test_many_victims_grow_the_buffer():
    """A slot with more victims than the wrapper's first buffer holds."""
    pair = Pair()
    pair("add_host", 0, 1 << 20, 1 << 30, 1)
    pair("add_slot", 0, 0, 0, 200, 200000, True)
    for j in range(150):
        pair("add_job", j, [0], 1, 1000, UNLIMITED_CAP, 0, 0, 0.0)
        pair("start_job", j, 0, 0.0)
    pair("add_job", 1000, [0], 200, 200000, 1, 1, 0, 0.0)
    v = pair("find_victims", 1000, 1, 100.0)
    assert v is not None and len(v.jobs) == 150


def _large(seed: int, slots: int, jobs: int, cycles: int) -> None:
    """Bigger clusters with many free-core levels, churn between cycles."""
    rng = random.Random(seed)
    pair = Pair()
    hosts = max(1, slots // 4)
    for h in range(hosts):
        pair("add_host", h, 64, 256000, rng.choice([1, 2, 4]))
    for s in range(slots):
        pair("add_slot", s, s % hosts, rng.randrange(6), rng.choice([1, 3, 8, 12, 16, 24, 32, 64]),
             rng.randrange(0, 128000, 250), _rng_state(rng))
    pair("set_factors", [rng.uniform(-1, 1) for _ in range(20)])
    alive = []
    for j in range(jobs):
        pair("add_job", j, rng.sample(range(7), rng.randint(1, 3)), rng.randint(0, 24),
             rng.randrange(0, 40000, 500), rng.choice(CAPS), rng.randint(0, 4), rng.randint(0, 25),
             float(rng.randrange(0, 50000, 7)))
        alive.append(j)
    for c in range(cycles):
        now = 60000.0 + 300 * c
        res = pair("match", now, rng.choice(WEIGHTS), rng.choice(WEIGHTS), rng.choice(WEIGHTS),
                   rng.choice([-1, -1, 50]), dry_run=rng.random() < 0.3)
        for h, _ in res.pending_head(15):
            pair("find_victims", h, rng.randrange(3), now)
        running = [h for h, _ in res.placed]
        for h in rng.sample(running, len(running) // 3):
            pair(rng.choice(["remove_job", "requeue_job", "suspend_job"]), h)
        for s in rng.sample(range(slots), slots // 20):
            if rng.random() < 0.5:
                pair("set_slot_active", s, rng.random() < 0.6)
            else:
                pair("set_slot_state", s, _rng_state(rng))
        for h in rng.sample(range(hosts), max(1, hosts // 25)):
            pair("set_host", h, rng.choice([32, 64, 96]), rng.choice([128000, 256000]),
                 rng.choice([1, 2, 4]))
    pair.check_stats()


def test_equivalence_larger_clusters():
    for seed in range(2 if FAST else 6):
        _large(seed, slots=300, jobs=900, cycles=6)


@pytest.mark.slow
def test_equivalence_larger_clusters_slow():
    for seed in range(100, 110):
        _large(seed, slots=1200, jobs=3000, cycles=6)
