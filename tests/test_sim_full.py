"""Replays of the full traces in ../shared/data/traces (skipped when that folder is absent;
whole replays are @pytest.mark.slow: run them with -m slow)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest

from vmsched.policyfile import load_policy
from vmsched.sim.engine import prepare

TRACES = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "traces"
META = TRACES / "METACENTRUM-2009-2.swf.gz"
WAGAP = TRACES / "wagap-2013.swf"

needs_traces = pytest.mark.skipif(not META.exists() or not WAGAP.exists(),
                                  reason=f"full traces not found in {TRACES} (the shared data folder is absent)")
# A whole replay takes minutes (on a 2-core machine: METACENTRUM-2009-2 about 1 min,
# wagap-2013 with its booted-on-demand domains about 1.5 min; see benchmarks/bench_sim.py),
# so even -m slow runs it only on request.
full_replay = pytest.mark.skipif(os.environ.get("VMSCHED_FULL_REPLAY") != "1",
                                 reason="whole-trace replays run only with VMSCHED_FULL_REPLAY=1 (minutes)")


def example(name):
    return load_policy(str(resources.files("vmsched") / "examples" / name))


@needs_traces
def test_full_metacentrum_maps_every_job():
    r = prepare(example("metacentrum-sim.toml"), META)
    assert r.stream.total == 103656 and r.stream.unrunnable == 0 and r.stream.order is None
    counts = dict(r.assumptions)
    assert counts["cores capped to the largest domain (32)"] == 2
    assert sum(sj.interactive for sj in r.jobs) == counts["interactive: run time below the map rule's "
                                                          "interactive_below"]


@needs_traces
def test_full_wagap_maps_every_job_and_counts_the_two_bad_lines():
    r = prepare(example("wagap-sim.toml"), WAGAP, skip_bad=True)
    assert r.stream.total + r.stream.unrunnable == 17898
    assert r.trace_info["skipped"] == 2
    assert all(":4186:" in p or ":4200:" in p for p in r.trace_info["problems"])


def _conserved(sim, replay):
    """Every job ended or never ran, once, and the streaming replay holds none at the end."""
    assert sim.ended + sim.never_count == replay.trace_info["jobs"]
    assert sim.figures.done == sim.ended and not sim.jobs


@pytest.mark.slow
@needs_traces
@full_replay
def test_full_metacentrum_replay_conserves_every_job():
    r = prepare(example("metacentrum-sim.toml"), META)
    sim = r.simulation()
    sim.run()
    _conserved(sim, r)
    assert sim.violation_count == 0, sim.violations


@pytest.mark.slow
@needs_traces
@full_replay
def test_full_wagap_replay_conserves_every_job():
    r = prepare(example("wagap-sim.toml"), WAGAP, skip_bad=True)
    sim = r.simulation()
    sim.run()
    _conserved(sim, r)
