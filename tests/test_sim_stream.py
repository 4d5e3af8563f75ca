"""Issue 17: a streaming replay reads the trace lazily and forgets jobs that ended, and
reports the very figures of a replay that holds every job (the old way, kept with
``keep_jobs=True``), whether it reads its jobs back from the spool or maps the trace again,
whatever the order of the trace's lines."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmsched.policyfile import parse_policy
from vmsched.sim.engine import Simulation, prepare
from vmsched.sim.report import summarize

from .test_sim_engine import MAGRATHEA, MAGRATHEA_SHARE, busy_load, dynamic, job_st, write_trace


def figures(replay, sim) -> dict:
    s = summarize(sim, policy_path="p", trace_info=replay.trace_info, hosts_desc=replay.hosts_desc,
                  assumptions=replay.assumptions, mapping_choices=replay.mapping_choices)
    s["trace"] = {k: v for k, v in s["trace"].items() if k not in ("path", "name")}
    s.pop("credit")
    return s


def three_ways(tmp_path, text, jobs, **kw):
    """The figures of one trace replayed streaming (from the spool, and mapping the trace
    again), keeping every job, and from a list."""
    trace = tmp_path / "t.swf"
    write_trace(trace, jobs)
    policy = parse_policy(text, "p.toml")
    replay, reread = prepare(policy, trace), prepare(policy, trace, spool=False)
    assert replay.stream.spool is not None and reread.stream.spool is None
    out = []
    for how in ("stream", "reread", "keep", "list"):
        if how == "list":
            sim = Simulation(replay.policy, replay.jobs, replay.unrunnable, **kw)
        else:
            sim = (reread if how == "reread" else replay).simulation(keep_jobs=how == "keep", **kw)
        sim.run()
        out.append(figures(replay, sim))
    return out


@pytest.mark.parametrize("text", [MAGRATHEA, MAGRATHEA_SHARE, dynamic("requeue"), dynamic("suspend-jobs")],
                         ids=["magrathea", "share-preemption", "dynamic-requeue", "dynamic-suspend"])
def test_streaming_gives_the_figures_of_a_replay_holding_every_job(tmp_path, text):
    jobs = busy_load(16) + [(900, None, 1, 1, 1)]       # and one without a run time: never runs
    stream, reread, keep, listed = three_ways(tmp_path, text, jobs)
    assert stream == reread == keep == listed
    assert stream["jobs"]["ended"] == 16 + 4 and stream["jobs"]["never_ran"] == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(job_st, min_size=1, max_size=20),
       text=st.sampled_from([MAGRATHEA, MAGRATHEA_SHARE, dynamic("requeue"), dynamic("requeue", True)]))
def test_random_traces_stream_to_the_same_figures(tmp_path, jobs, text):
    stream, reread, keep, _ = three_ways(tmp_path, text, jobs)
    assert stream == reread == keep


def test_a_trace_out_of_order_replays_as_if_sorted(tmp_path):
    """Lines shuffled: the replay still takes jobs in arrival order (buffering the ones
    read early), so every figure is that of the sorted trace."""
    jobs = sorted(busy_load(12) + [(30 * i, 200 + i, 1 + i % 3, i % 10, 1) for i in range(20)])
    policy = parse_policy(MAGRATHEA, "p.toml")
    write_trace(tmp_path / "sorted.swf", jobs)
    lines = (tmp_path / "sorted.swf").read_text().splitlines()
    first, rest = lines[0], lines[1:]
    random.Random(7).shuffle(rest)      # the first line stays: arrivals count from its submit
    (tmp_path / "shuffled.swf").write_text("\n".join([first] + rest) + "\n")
    runs = []
    for name, spool in (("sorted.swf", True), ("shuffled.swf", True), ("shuffled.swf", False)):
        replay = prepare(policy, tmp_path / name, spool=spool)
        assert (replay.stream.order is None) == (name == "sorted.swf")
        sim = replay.simulation()
        sim.run()
        runs.append(figures(replay, sim))
    assert runs[0] == runs[1] == runs[2]


def test_a_streaming_replay_holds_only_the_jobs_alive(tmp_path):
    # 60 one-core jobs a minute apart, each running 90 s: never more than a few alive
    write_trace(tmp_path / "t.swf", [(60 * i, 90, 1, i % 10, 1) for i in range(60)])
    replay = prepare(parse_policy(MAGRATHEA, "p.toml"), tmp_path / "t.swf")
    sim = replay.simulation()
    most = 0
    while sim.step():
        most = max(most, len(sim.jobs))
    assert sim.ended == 60 and not sim.jobs and most <= 4
    with pytest.raises(AttributeError, match="keep_jobs"):
        sim.order


def test_stopping_early_reports_the_jobs_not_yet_read(tmp_path):
    jobs = [(0, 3600, 4, 6, 1) for _ in range(5)] + [(7200 + 60 * i, 60, 1, 1, 1) for i in range(10)]
    write_trace(tmp_path / "t.swf", jobs)
    replay = prepare(parse_policy(MAGRATHEA, "p.toml"), tmp_path / "t.swf")
    out = []
    for keep in (False, True):
        sim = replay.simulation(keep_jobs=keep)
        sim.run(until=100)
        sim.finish()
        out.append(figures(replay, sim))
    assert out[0] == out[1]
    reasons = {r["reason"]: r["jobs"] for r in out[0]["jobs"]["never_reasons"]}
    assert out[0]["jobs"]["never_ran"] == 15
    assert reasons["still waiting at the end of the simulation (never started)"] == 10


def test_a_trace_that_changes_during_the_replay_is_a_trace_error(tmp_path):
    """Without a spool the trace is mapped again by each replay, and must not have changed.
    (A TraceError is bad input: the command prints its one line and exits 2.)"""
    from vmsched.sim.swf import TraceError
    write_trace(tmp_path / "t.swf", busy_load())
    replay = prepare(parse_policy(MAGRATHEA, "p.toml"), tmp_path / "t.swf", spool=False)
    write_trace(tmp_path / "t.swf", busy_load()[:5])
    with pytest.raises(TraceError, match=r"t.swf: the trace changed during the replay: 5 jobs read, 16 counted"):
        replay.simulation().run()


def test_without_a_temporary_file_the_trace_is_mapped_again(tmp_path, monkeypatch):
    import tempfile

    def refuse(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    write_trace(tmp_path / "t.swf", busy_load())
    replay = prepare(parse_policy(MAGRATHEA, "p.toml"), tmp_path / "t.swf")
    assert replay.stream.spool is None
    sim = replay.simulation()
    sim.run()
    assert sim.ended == 16
