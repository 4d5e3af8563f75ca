"""The simulator: conservation, time, capacity and report totals, on small made-up traces
under small policies of each preemption mode (hypothesis explores random ones)."""

from __future__ import annotations

import heapq
import json
import math

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from vmsched.policyfile import parse_policy
from vmsched.sim.baseline import static_split
from vmsched.sim.engine import ARRIVAL, END, TICK, Simulation, prepare
from vmsched.sim.report import format_compare, format_summary, plot_compare, plot_report, summarize, write_json
from vmsched.sim.swf import TraceJob, format_job

MAGRATHEA = """
[site]
name = "tiny-magrathea"
[scheduler]
cycle_interval = "60s"
default_queue = "normal"
[fairshare]
half_life = "1h"
[[fairshare.share]]
path = "meta"
share = 60
[[fairshare.share]]
path = "egee"
share = 40
[preemption]
classes = ["normal", "interactive"]
mode = "suspend-domain"
resume_time = "10s"
[[preemption.rule]]
interactive = true
class = "interactive"
[lifecycle]
dynamic_boot = false
idle_shutdown = "365d"
[[images]]
name = "deb"
vos = ["meta"]
[[images]]
name = "slc"
vos = ["egee"]
[[queues]]
name = "normal"
per_domain_jobs = 8
resources_max = { walltime = "10:00:00" }
[[hosts]]
name = "n[1-4]"
cores = 4
memory = "8gb"
max_active = 1
max_domains = 2
domains = [ { image = "deb", flavor = "whole-hard" }, { image = "slc", flavor = "whole-hard" } ]
[trace]
walltime = "queue-limit"
default_vo = "meta"
[[trace.map]]
user = "0-4"
vo = "meta"
[[trace.map]]
user = "5-9"
vo = "egee"
[[trace.map]]
queue = 2
interactive_below = "5m"
"""

DYNAMIC = """
[site]
name = "tiny-dynamic"
[scheduler]
cycle_interval = "30s"
default_queue = "grid"
[fairshare]
half_life = "1h"
[[fairshare.share]]
path = "cms"
share = 50
[[fairshare.share]]
path = "atlas"
share = 50
[preemption]
classes = ["low", "normal", "high"]
default_class = "normal"
mode = "MODE"
[[preemption.rule]]
queue = "fast"
class = "high"
[lifecycle]
dynamic_boot = true
max_concurrent_boots = 3
idle_shutdown = "5m"
shutdown_time = "20s"
bind_on_boot = BIND
[[images]]
name = "slc-cms"
vos = ["cms"]
boot_time = "60s"
size = 2
[[images]]
name = "slc-atlas"
vos = ["atlas"]
boot_time = "45s"
size = 3
[[queues]]
name = "grid"
per_domain_jobs = 2
[[queues]]
name = "fast"
per_domain_jobs = 1
[[hosts]]
name = "w[1-3]"
cores = 8
memory = "16gb"
max_active = 3
max_domains = 4
cached_images = ["slc-cms"]
[trace]
walltime = "oracle"
[[trace.map]]
user = "0-4"
vo = "cms"
[[trace.map]]
user = "5-9"
vo = "atlas"
[[trace.map]]
queue = 2
exec_queue = "fast"
"""


def dynamic(mode="requeue", bind=False) -> str:
    return DYNAMIC.replace("MODE", mode).replace("BIND", "true" if bind else "false")


def write_trace(path, jobs) -> None:
    lines = [format_job(TraceJob(i + 1, submit=s, wait=0, run=r, allocated_procs=p, uid=u, gid=1, queue=q,
                                 status=1))
             for i, (s, r, p, u, q) in enumerate(jobs)]
    path.write_text("\n".join(lines) + "\n")


def run(tmp_path, policy_text, jobs, *, strict=True, baseline=False, **kw):
    pol = parse_policy(policy_text, "tiny.toml")
    trace = tmp_path / "t.swf"
    write_trace(trace, jobs)
    replay = prepare(pol, trace)
    split = static_split(replay.policy, replay.vos) if baseline else None
    sim = replay.simulation(split.policy if split else replay.policy, job_map=split.job if split else None,
                            check=True, strict=strict, keep_jobs=True, **kw)
    return replay, sim


def step_all(sim: Simulation) -> list[float]:
    """Step to the end, recording the time of every step."""
    times = []
    while sim.step():
        times.append(sim.now)
    times.append(sim.now)
    return times


def assert_conserved(replay, sim) -> None:
    ids = {sj.job.id for sj in replay.jobs} | {u.job_id for u in replay.unrunnable}
    ended = {sj.job.id for sj in sim.order if sj.state == "done"}
    never = [u.job_id for u in sim.never]
    assert len(never) == len(set(never)), "a job reported never-runnable twice"
    assert not ended & set(never)
    assert ended | set(never) == ids
    assert sim.ended == len(ended) and sim.never_count == len(never)   # each job ended once
    assert all(u.reason for u in sim.never)
    for sj in sim.order:
        if sj.state == "done":
            assert sj.end is not None and sj.first_start is not None
            assert sj.arrival <= sj.first_start <= sj.end
            assert math.isclose(sj.executed, sj.work, abs_tol=1e-6), (sj.job.id, sj.executed, sj.work)


def busy_load(n=12, users=(1, 6)):
    """n 4-core jobs from two VOs, 1 h each, all at t=0, plus late short ones."""
    jobs = [(0, 3600, 4, users[i % 2], 1) for i in range(n)]
    jobs += [(600 + 60 * i, 120, 1, users[i % 2], 2) for i in range(4)]
    return jobs


# --------------------------------------------------------------------------- the heap

def test_step_handles_one_instant_and_coalesces_events(tmp_path):
    replay, sim = run(tmp_path, MAGRATHEA, [(0, 100, 1, 1, 1), (0, 100, 1, 6, 1), (0, 50, 1, 2, 1)])
    assert sim.step()
    # three arrivals at t=0 made one cycle
    assert sim.now == 0 and sim.cycles == 1 and sim.events[ARRIVAL] == 3
    sim.run()
    assert sim.done and sim.ended == 3


def test_time_never_runs_backwards(tmp_path):
    replay, sim = run(tmp_path, MAGRATHEA, busy_load())
    times = step_all(sim)
    assert times == sorted(times)
    assert sim.time_went_back == 0


def test_pushing_into_the_past_is_refused(tmp_path):
    replay, sim = run(tmp_path, MAGRATHEA, [(100, 10, 1, 1, 1)])
    sim.step()
    with pytest.raises(Exception, match="before now"):
        sim._push(sim.now - 1, END, ("x", 0))


def test_heap_orders_same_instant_events_state_changes_first():
    heap = []
    for kind in (TICK, ARRIVAL, END):
        heapq.heappush(heap, (5.0, kind, 0, None))
    assert [heapq.heappop(heap)[1] for _ in range(3)] == [END, ARRIVAL, TICK]


# --------------------------------------------------------------------------- conservation, capacity

# These modes once found a Scheduler bug (a domain filled earlier in the cycle looked idle to
# lifecycle); they stay as its regression tests.
DYNAMIC_MODES = [pytest.param(dynamic("requeue"), id="dynamic-requeue"),
                 pytest.param(dynamic("suspend-jobs"), id="dynamic-suspend-jobs"),
                 pytest.param(dynamic("requeue", True), id="dynamic-bind"),
                 pytest.param(dynamic("none"), id="dynamic-no-preemption")]


@pytest.mark.parametrize("text", [pytest.param(MAGRATHEA, id="magrathea")] + DYNAMIC_MODES)
def test_conservation_and_capacity_under_each_mode(tmp_path, text):
    replay, sim = run(tmp_path, text, busy_load())
    times = step_all(sim)
    assert times == sorted(times)
    assert sim.violation_count == 0, sim.violations
    assert_conserved(replay, sim)


def test_magrathea_interactive_preempts_by_domain_and_starts_after_resume_time(tmp_path):
    # egee fills all four hosts; a meta interactive job then arrives
    jobs = [(0, 7200, 4, 6, 1) for _ in range(4)] + [(0, 7200, 4, 1, 1)] + [(300, 60, 1, 1, 2)]
    replay, sim = run(tmp_path, MAGRATHEA, jobs)
    sim.run()
    assert_conserved(replay, sim)
    inter = [sj for sj in sim.order if sj.interactive]
    assert len(inter) == 1
    assert inter[0].first_start - inter[0].arrival == pytest.approx(sim.policy.preemption.resume_s)
    assert sim.domain_suspensions >= 1
    victims = [sj for sj in sim.order if sj.preemptions]
    assert victims and all(sj.state == "done" for sj in victims)


def test_dynamic_boot_waits_for_boot_and_download(tmp_path):
    replay, sim = run(tmp_path, dynamic(), [(0, 100, 2, 6, 1)])   # atlas: image not cached
    sim.run()
    sj = sim.order[0]
    img = sim.policy.images["slc-atlas"]
    assert sj.first_start == pytest.approx(img.boot_s + img.size_gb * sim.policy.lifecycle.image_download_s_per_gb)
    assert sim.actions["boot"] == 1
    # the image is cached on the host once downloaded
    assert any("slc-atlas" in h.cached_images for h in sim.hosts.values())


def test_requeued_jobs_lose_their_work_and_still_end_once(tmp_path):
    jobs = [(0, 3600, 8, 1, 1) for _ in range(3)] + [(300, 60, 8, 2, 2)]
    replay, sim = run(tmp_path, dynamic("requeue"), jobs)
    sim.run()
    assert_conserved(replay, sim)
    assert sum(sj.requeues for sj in sim.order) >= 1
    assert sum(sj.lost_work for sj in sim.order) > 0


def test_walltime_kills_the_job_at_the_limit(tmp_path):
    replay, sim = run(tmp_path, MAGRATHEA, [(0, 11 * 3600, 1, 1, 1)])
    sim.run()
    sj = sim.order[0]
    assert sj.killed and sj.end - sj.first_start == pytest.approx(10 * 3600)
    assert sim.killed_at_walltime == 1


def test_never_runnable_jobs_are_reported_with_a_reason(tmp_path):
    text = MAGRATHEA.replace('oversize', 'x') + '\noversize = "refuse"\n'
    text = text.replace('[trace]\n', '[trace]\noversize = "refuse"\n').replace('\noversize = "refuse"\n', '\n', 1) \
        if False else MAGRATHEA.replace('default_vo = "meta"', 'default_vo = "meta"\noversize = "refuse"')
    replay, sim = run(tmp_path, text, [(0, 10, 16, 1, 1), (0, 10, 1, 1, 1), (0, 10, 1, 77, 1)])
    sim.run()
    assert_conserved(replay, sim)
    reasons = {u.job_id: u.reason for u in sim.never}
    assert "j1" in reasons and "largest domain" in reasons["j1"]
    # uid 77 maps to no VO rule: default_vo meta, so it runs
    assert sim.ended == 2


def test_a_vo_without_an_image_is_never_runnable_by_the_scheduler(tmp_path):
    text = MAGRATHEA.replace('user = "5-9"\nvo = "egee"', 'user = "5-9"\nvo = "nobody"')
    replay, sim = run(tmp_path, text, [(0, 10, 1, 6, 1), (0, 10, 1, 1, 1)])
    sim.run()
    assert_conserved(replay, sim)
    (u,) = sim.never
    assert u.stage == "scheduler" and "nobody" in u.reason


def test_static_baseline_replays_the_same_jobs_on_the_same_hosts(tmp_path):
    replay, sim = run(tmp_path, MAGRATHEA, busy_load(), baseline=True)
    sim.run()
    assert sim.violation_count == 0, sim.violations
    assert_conserved(replay, sim)
    assert sim.capacity_cores == sum(h.cores for h in replay.policy.hosts)
    assert all(h.max_active == 1 and h.max_domains == 1 for h in sim.policy.hosts)


# --------------------------------------------------------------------------- report totals

def test_report_totals_add_up(tmp_path):
    replay, sim = run(tmp_path, MAGRATHEA, busy_load(16))
    sim.run()
    s = summarize(sim, policy_path="tiny.toml", trace_info=replay.trace_info, hosts_desc=replay.hosts_desc,
                  assumptions=replay.assumptions, mapping_choices=replay.mapping_choices, wall_s=1.0)
    j = s["jobs"]
    assert j["ended"] + j["never_ran"] == j["in_trace"] == 20
    assert sum(j["never_by_stage"].values()) == j["never_ran"]
    assert sum(r["jobs"] for r in j["never_reasons"]) == j["never_ran"]
    assert sum(w["n"] for w in s["wait_s"]["by_vo"].values()) == s["wait_s"]["all"]["n"] == j["ended"]
    assert sum(w["n"] for w in s["wait_s"]["by_class"].values()) == j["ended"]
    u = s["utilisation"]
    assert u["busy_core_s"] == pytest.approx(u["executed_core_s"] + u["held_in_resume_delay_core_s"])
    assert u["busy_core_s"] == pytest.approx(sum(v["core_s"] for v in s["share"]["per_vo"].values()))
    assert 0 < u["value"] <= 1
    achieved = [v["achieved"] for v in s["share"]["per_vo"].values() if v["achieved"] is not None]
    assert sum(achieved) == pytest.approx(1.0)
    series = s["series"]
    assert sum(series["busy_cores"]) * series["bin_s"] == pytest.approx(u["busy_core_s"])
    assert s["preemptions"]["events"] == sum(sj.preemptions for sj in sim.order)
    text = format_summary(s)
    assert "utilisation" in text and "meta" in text and "egee" in text
    write_json(s, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["jobs"]["ended"] == j["ended"]
    files = plot_report(s, sim, tmp_path)
    assert all(f.exists() and f.stat().st_size > 1000 for f in files)
    _r2, sim2 = run(tmp_path, MAGRATHEA, busy_load(16), baseline=True)
    sim2.run()
    s2 = summarize(sim2, policy_path="b", trace_info=replay.trace_info, hosts_desc="", assumptions=[],
                   mapping_choices=[])
    assert "static" in format_compare(s, s2)
    assert all(f.exists() for f in plot_compare(s, sim, s2, sim2, tmp_path))


def test_share_under_saturation_counts_only_a_full_cluster(tmp_path):
    """Both VOs waiting on an idle cluster is not saturation: a VO whose only waiting job is
    too wide for any free host says nothing about fair share. The report keeps both measures,
    and the full-cluster one is a part of the all-waiting one."""
    # n1..n4 have 4 cores: two 4-core jobs per VO fill the cluster for an hour while one
    # more job per VO waits behind them (saturated); later, short jobs on an idle cluster.
    jobs = [(0, 3600, 4, 1, 1), (0, 3600, 4, 6, 1), (0, 3600, 4, 1, 1), (0, 3600, 4, 6, 1),
            (10, 600, 4, 1, 1), (10, 600, 4, 6, 1),
            (5000, 60, 1, 1, 1), (5000, 9000, 1, 6, 1)]
    replay, sim = run(tmp_path, MAGRATHEA, jobs)
    sim.run()
    assert 0 < sim.saturated_s <= sim.all_waiting_s
    for vo in sim.share_vos:
        assert sim.sat_core_s_by_vo[vo] <= sim.all_waiting_core_s_by_vo[vo] + 1e-6
    s = summarize(sim, policy_path="tiny.toml", trace_info=replay.trace_info, hosts_desc=replay.hosts_desc,
                  assumptions=replay.assumptions, mapping_choices=replay.mapping_choices)
    per_vo = s["share"]["per_vo"]
    assert sum(v["achieved_saturated"] for v in per_vo.values()) == pytest.approx(1.0)
    assert sum(v["achieved_all_waiting"] for v in per_vo.values()) == pytest.approx(1.0)
    # saturated: the first hour, 8 cores each way (two 4-core jobs per VO), so 50/50
    assert per_vo["meta"]["achieved_saturated"] == pytest.approx(0.5)
    assert per_vo["meta"]["error_saturated_pp"] == pytest.approx(50.0 - 60.0)
    assert s["share"]["all_waiting_fraction"] >= s["share"]["saturated_fraction"] > 0
    assert "all waiting" in format_summary(s)
    # contended: the same hour (each VO's waiting job fits a 4-core host); both VOs want more
    # than their share, so the fair part is the configured share
    assert 0 < sim.contended_s <= sim.saturated_s
    assert per_vo["meta"]["fair_contended"] == pytest.approx(0.6)
    assert per_vo["meta"]["error_contended_pp"] == pytest.approx(50.0 - 60.0)


def test_contended_share_is_measured_against_what_each_vo_asks(tmp_path):
    """A VO that asks for less than its share is owed only what it asks: egee wants 5 of 16
    cores (one 4-core job running, a 1-core one waiting), so meta's fair part is 11/16, not
    60 %. Meta running 12 cores is 6.25 points over fair, 15 over its configured share."""
    jobs = [(0, 3600, 4, 1, 1), (0, 3600, 4, 1, 1), (0, 3600, 4, 1, 1), (0, 3600, 4, 6, 1),
            (10, 600, 1, 1, 1), (10, 600, 1, 6, 1)]
    replay, sim = run(tmp_path, MAGRATHEA, jobs)
    sim.run()
    assert sim.contended_s > 3000
    s = summarize(sim, policy_path="tiny.toml", trace_info=replay.trace_info, hosts_desc=replay.hosts_desc,
                  assumptions=replay.assumptions, mapping_choices=replay.mapping_choices)
    meta = s["share"]["per_vo"]["meta"]
    assert meta["achieved_contended"] == pytest.approx(0.75)
    assert meta["fair_contended"] == pytest.approx(11 / 16)
    assert meta["error_contended_pp"] == pytest.approx(100 * (0.75 - 11 / 16))
    assert meta["error_saturated_pp"] == pytest.approx(15.0)
    assert "contended" in format_summary(s)


# --------------------------------------------------------------------------- hypothesis

job_st = st.tuples(st.integers(0, 4000), st.integers(0, 5000), st.sampled_from([1, 1, 1, 2, 4, 8]),
                   st.integers(0, 9), st.sampled_from([1, 1, 2]))


def check_random(tmp_path, jobs, text, baseline):
    replay, sim = run(tmp_path, text, jobs, baseline=baseline)
    times = step_all(sim)
    assert times == sorted(times)
    assert sim.violation_count == 0, sim.violations
    assert_conserved(replay, sim)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(job_st, min_size=1, max_size=25), baseline=st.booleans())
def test_random_traces_keep_every_invariant(tmp_path, jobs, baseline):
    check_random(tmp_path, jobs, MAGRATHEA, baseline)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.generate])
@given(jobs=st.lists(job_st, min_size=1, max_size=25),
       text=st.sampled_from([dynamic("requeue"), dynamic("suspend-jobs"), dynamic("requeue", True)]))
def test_random_traces_keep_every_invariant_with_dynamic_boot(tmp_path, jobs, text):
    check_random(tmp_path, jobs, text, False)


MAGRATHEA_SHARE = MAGRATHEA.replace('resume_time = "10s"\n', 'resume_time = "10s"\nshare_after = "2m"\n')


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=st.lists(job_st, min_size=1, max_size=25))
def test_random_traces_keep_every_invariant_with_share_preemption(tmp_path, jobs):
    check_random(tmp_path, jobs, MAGRATHEA_SHARE, False)


def test_share_preemption_gives_a_starved_vo_a_host_in_the_simulator(tmp_path):
    """egee fills all four hosts with hour-long jobs; meta's narrow jobs arrive a minute
    later. Without share preemption they wait the hour; with it, one host is frozen for meta
    after share_after (2 min) and the frozen egee jobs finish later by as much."""
    # (an egee job ending at 150 s triggers a cycle between the tick grid's: share preemption,
    # paced to once a minute, then looks again at 210 s, and the simulator must wake then)
    jobs = [(0, 3600, 3, 6, 1), (0, 150, 1, 6, 1)] + [(0, 3600, 4, 6, 1)] * 3 + [(60, 600, 1, 1, 1)] * 4
    _r, plain = run(tmp_path, MAGRATHEA, jobs)
    plain.run()
    _r, share = run(tmp_path, MAGRATHEA_SHARE, jobs)
    share.run()
    assert share.violation_count == 0 and share.ended == plain.ended == 9
    def meta_wait(sim):
        return max(sj.first_start - sj.arrival for sj in sim.order if sj.job.vo == "meta")
    assert meta_wait(plain) >= 3500
    assert 120 <= meta_wait(share) <= 120 + 2 * 60 + 10 + 5     # share_after, a cycle or two, resume
    assert share.domain_suspensions >= 1


def test_every_tick_runs_periodic_cycles_and_default_skips_quiet_ones(tmp_path):
    jobs = [(0, 3000, 1, 1, 1)]
    _r, quiet = run(tmp_path, MAGRATHEA, jobs)
    quiet.run()
    _r, every = run(tmp_path, MAGRATHEA, jobs, every_tick=True)
    every.run()
    assert quiet.ended == every.ended == 1
    assert every.cycles >= 3000 // 60 and quiet.cycles < 5
    assert quiet.order[0].end == every.order[0].end


def test_jobs_left_waiting_when_the_run_ends_are_reported_with_the_schedulers_reason(tmp_path):
    # five 4-core egee jobs for four hosts: stop while the fifth waits
    replay, sim = run(tmp_path, MAGRATHEA, [(0, 3600, 4, 6, 1) for _ in range(5)])
    sim.run(until=100)
    waiting = [sj for sj in sim.order if sj.state == "queued"]
    assert len(waiting) == 1
    sim.finish()
    assert sim.done
    (u,) = [u for u in sim.never if "still waiting" in u.reason]
    assert u.job_id == waiting[0].job.id and "still waiting" in u.reason and "not now" in u.reason
    running = [u for u in sim.never if "still running" in u.reason]
    assert len(running) == 4 and all(u.stage == "end" for u in running)
    assert_conserved(replay, sim)


def test_dynamic_boot_placement_never_overfills_a_domain(tmp_path):
    # Scheduler bug 1: at t=171 one cycle runs a job in a domain the same cycle already
    # filled; cycle.py _apply_placement -> _mark_running raises EngineError.
    replay, sim = run(tmp_path, dynamic("requeue"), busy_load())
    sim.run()
    assert_conserved(replay, sim)


def test_bind_on_boot_never_shuts_down_the_domain_it_just_ran_a_job_in(tmp_path):
    # Scheduler bug 2: at t=60 one plan is "run j1 in w1-slc-cms-1", then "suspend-domain
    # w1-slc-cms-1" and "shutdown w1-slc-cms-1" (the domain holds j1).
    replay, sim = run(tmp_path, dynamic("requeue", bind=True), [(0, 0, 1, 0, 1)] * 4 + [(0, 0, 1, 5, 1)])
    sim.run()
    assert_conserved(replay, sim)


def test_an_impossible_action_is_a_violation_with_plan_errors_reason(tmp_path):
    """The simulator refuses what plan.apply_action refuses, counts it, and goes on (or,
    strict, stops); the refused action changes nothing."""
    from vmsched.plan import Plan, ResumeDomain, RunJob, ShutdownDomain
    from vmsched.sim.engine import SimulationError
    _, sim = run(tmp_path, MAGRATHEA, [(0, 600, 1, 1, 1)], strict=False)
    sim.step()
    free = next(d for d in sim.domains.values() if d.state.active)
    before = {n: (d.state, set(d.jobs)) for n, d in sim.domains.items()}
    sim._apply(Plan(sim.now, (RunJob("nope", free.name), ResumeDomain(free.name), ShutdownDomain("gone")), ()))
    assert sim.violation_count == 3
    assert "run job=nope" in sim.violations[0] and "job nope is unknown" in sim.violations[0]
    assert f"domain {free.name} is {free.state.value}, not suspended or occupied" in sim.violations[1]
    assert {n: (d.state, set(d.jobs)) for n, d in sim.domains.items()} == before
    sim.strict = True
    with pytest.raises(SimulationError, match="domain gone is unknown"):
        sim._apply(Plan(sim.now, (ShutdownDomain("gone"),), ()))
