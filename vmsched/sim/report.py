"""What a replay measured: a summary (dict, the JSON report), a text table, PNG plots.

Definitions (also in the JSON under ``definitions``):

* utilisation: core-seconds of running jobs / (host cores x makespan), makespan from the
  first arrival to the last job end; *during arrivals*: the same from the first to the
  last arrival (the long tail of a trace's last jobs leaves a cluster nearly idle);
* achieved share of a VO: its share of all core-seconds used; *under saturation*: the same,
  counted only while every VO with a share had jobs waiting and at least 90 % of the cores
  were busy, which is when fair share has to choose between VOs; *contended*: saturated,
  and every VO with a share had a job waiting that any host could run (no wider than the
  smallest host), so that each would use any core fair share gave it (a VO whose waiting
  jobs all need the few big hosts competes for those hosts, not for its share), and its
  error is against the VO's *fair* part at each instant rather than the configured share:
  the share, or all the VO asked for (running, frozen and queued cores) if that is less,
  with what it leaves split among the others by share (max-min fairness, as the scheduler
  itself computes targets); *all waiting*: counted
  whenever every VO with a share had jobs waiting, whatever the load (on a cluster with
  idle cores this mostly measures which job shapes each VO submits: wide jobs wait for the
  few hosts they fit while narrow ones run at once); the error is achieved minus target,
  in percentage points;
* wait: first start (after any resume delay) minus arrival, for jobs that ran;
* bounded slowdown: max(1, (end - arrival) / max(work, 10 s));
* interactive start latency: wait of interactive jobs; *under full load*: those that
  arrived while at least 90 % of the cores were busy.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vmsched import __version__
from vmsched.sim.figures import BSLD_TAU, FULL_LOAD

__all__ = ["summarize", "format_summary", "format_compare", "write_json", "plot_report", "plot_compare",
           "credit_for", "FULL_LOAD", "BSLD_TAU"]

_CREDITS = (
    ("metacentrum", "Trace: Parallel Workloads Archive log METACENTRUM-2009-2 (Dror Feitelson, Hebrew University "
                    "of Jerusalem, https://www.cs.huji.ac.il/labs/parallel/workload/), provided by MetaCentrum "
                    "(CESNET), the Czech National Grid Infrastructure."),
    ("wagap", "Trace: wagap-2013 workload of CERIT-SC and MetaCentrum (CESNET), from the sample data sets of the "
              "Alea simulator: D. Klusacek, M. Soysal, F. Suter, \"Alea - Complex Job Scheduling Simulator\", "
              "PPAM 2019."),
)


def credit_for(trace_name: str, header: dict | None = None) -> str:
    name = trace_name.lower()
    for key, text in _CREDITS:
        if key in name:
            return text
    ack = (header or {}).get("Acknowledge")
    if ack:
        acks = ack if isinstance(ack, tuple) else (ack,)   # a repeated header key keeps every value
        return "Trace acknowledgement (from its header): " + "; ".join(" ".join(str(a).split()) for a in acks)
    return "Trace: " + trace_name + " (no acknowledgement in its header; credit its source)."


def _stats(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "p95": None, "max": None}
    v = sorted(values)
    return {"n": len(v), "mean": statistics.fmean(v), "median": statistics.median(v),
            "p95": v[min(len(v) - 1, int(math.ceil(0.95 * len(v))) - 1)], "max": v[-1]}


def summarize(sim, *, policy_path: str, trace_info: dict, hosts_desc: str, assumptions, mapping_choices,
              wall_s: float | None = None) -> dict[str, Any]:
    """The whole report as plain data (what ``--json`` writes)."""
    pol = sim.policy
    fig = sim.figures
    t0 = sim.first_arrival
    t_end = fig.last_end if fig.last_end is not None else t0
    makespan = max(0.0, t_end - t0)
    capacity = sim.capacity_cores * makespan
    used_by_vo = {vo: v for vo, v in sorted(sim.busy_core_s_by_vo.items()) if v > 0}
    used_total = sum(used_by_vo.values())

    # shares
    top = {p[0]: s for p, s in pol.fairshare.shares if len(p) == 1}
    present = sorted(sim.vos)
    tot_share = sum(s for vo, s in top.items() if vo in present)
    share = {}
    for vo in sorted(set(present) | set(top)):
        target = top.get(vo, 0.0) / tot_share if tot_share and vo in present else None
        achieved = used_by_vo.get(vo, 0.0) / used_total if used_total else None
        share[vo] = {"target": target, "achieved": achieved}
        for name, core_s in (("saturated", sim.sat_core_s_by_vo), ("contended", sim.contended_core_s_by_vo),
                             ("all_waiting", sim.all_waiting_core_s_by_vo)):
            total = sum(core_s.values())
            got = core_s.get(vo, 0.0) / total if total else None
            share[vo][f"achieved_{name}"] = got
            if name == "contended":
                # against the VO's fair part at each instant, not the configured share
                fair = sim.contended_fair_core_s_by_vo.get(vo, 0.0) / total if total else None
                share[vo]["fair_contended"] = fair
                share[vo]["error_contended_pp"] = 100.0 * (got - fair) if got is not None and fair is not None \
                    and vo in top else None
                continue
            share[vo][f"error_{name}_pp"] = 100.0 * (got - target) if got is not None and target is not None else None
        share[vo]["core_s"] = used_by_vo.get(vo, 0.0)

    inter = fig.interactive
    never_reasons, by_stage = fig.never_reasons, fig.never_by_stage

    out = {
        "vmsched": __version__,
        "policy": {"path": policy_path, "site": pol.site, "source": pol.source},
        "trace": trace_info,
        "credit": credit_for(trace_info.get("name", ""), trace_info.get("header")),
        "hosts": {"count": len(pol.hosts), "cores": sim.capacity_cores,
                  "memory_mb": sum(h.memory_mb for h in pol.hosts), "description": hosts_desc},
        "engine": sim.sched.engine.name,
        "simulation": {
            "cycles": sim.cycles, "ticks_skipped": sim.ticks_skipped,
            "events": {"arrivals": sim.events[3], "ends": sim.events[0], "boots_done": sim.events[2],
                       "shutdowns_done": sim.events[1], "ticks": sim.events[4]},
            "actions": dict(sorted(sim.actions.items())),
            "start_s": t0, "end_s": t_end, "makespan_s": makespan, "wall_s": wall_s,
            "violations": sim.violation_count, "violation_examples": list(sim.violations),
            "stalled": sim.stalled, "warnings": list(getattr(sim, "warnings", [])),
        },
        "jobs": {
            "in_trace": trace_info.get("jobs", sim.total + by_stage["mapping"]),
            "replayed": sim.total,
            "ended": sim.ended,
            "never_ran": fig.never,
            "never_by_stage": dict(sorted(by_stage.items())),
            "never_reasons": [{"stage": st, "reason": r, "jobs": n}
                              for (st, r), n in sorted(never_reasons.items(), key=lambda kv: (-kv[1], kv[0]))],
            "killed_at_walltime": sim.killed_at_walltime,
            "skipped_trace_lines": trace_info.get("skipped", 0),
        },
        "utilisation": {"value": sim.busy_core_s / capacity if capacity else None,
                        "during_arrivals": (sim.busy_core_s_arrivals / (sim.capacity_cores * (sim.arrivals_end - t0))
                                            if sim.arrivals_end > t0 and sim.capacity_cores else None),
                        "busy_core_s": sim.busy_core_s, "capacity_core_s": capacity,
                        "active_domains_value": sim.active_core_s / capacity if capacity else None,
                        "executed_core_s": fig.executed_core_s,
                        "held_in_resume_delay_core_s": sim.held_idle_core_s},
        "share": {"per_vo": share, "saturated_s": sim.saturated_s, "full_load": FULL_LOAD,
                  "saturated_fraction": sim.saturated_s / makespan if makespan else None,
                  "max_abs_error_saturated_pp": _max_abs(share, "error_saturated_pp"),
                  "contended_s": sim.contended_s,
                  "contended_fraction": sim.contended_s / makespan if makespan else None,
                  "max_abs_error_contended_pp": _max_abs(share, "error_contended_pp"),
                  "all_waiting_s": sim.all_waiting_s,
                  "all_waiting_fraction": sim.all_waiting_s / makespan if makespan else None,
                  "max_abs_error_all_waiting_pp": _max_abs(share, "error_all_waiting_pp")},
        "wait_s": {"all": _stats(fig.waits()), "by_vo": {k: _stats(v) for k, v in sorted(fig.wait_by_vo.items())},
                   "by_class": {k: _stats(v) for k, v in sorted(fig.wait_by_class.items())}},
        "bounded_slowdown": {**_stats(fig.bsld), "tau_s": BSLD_TAU},
        "preemptions": {"events": fig.preemptions, "jobs_preempted": fig.jobs_preempted,
                        "requeues": fig.requeues, "domain_suspensions": sim.domain_suspensions,
                        "lost_work_core_s": fig.lost_work_core_s},
        "boots": {"boots": sim.actions.get("boot", 0), "shutdowns": sim.actions.get("shutdown", 0),
                  "domain_resumes": sim.actions.get("resume-domain", 0),
                  "domain_suspends": sim.actions.get("suspend-domain", 0)},
        # the resume time and what it bounds, only if a job waited for a resumed domain
        "interactive": {"resume_s": pol.preemption.resume_s if sim.resumed_starts else None,
                        "resumed_starts": sim.resumed_starts, "latency_s": _stats(inter),
                        "under_full_load": {"load_at_least": FULL_LOAD, "latency_s": _stats(fig.interactive_full)},
                        "within_resume_time": sum(1 for w in inter if w <= pol.preemption.resume_s + 1e-6)
                        if sim.resumed_starts else None},
        "assumptions": [{"what": k, "jobs": v} for k, v in assumptions if v],
        "mapping": mapping_choices,
        "series": {"bin_s": sim.bin_s, "start_s": t0,
                   "busy_cores": [b / sim.bin_s for b in sim.bins_busy],
                   "queued_jobs": [q / sim.bin_s for q in sim.bins_queued],
                   "busy_cores_by_vo": {vo: [b / sim.bin_s for b in lst] for vo, lst in sorted(sim.bins_by_vo.items())}},
        "definitions": __doc__.split("Definitions (also in the JSON under ``definitions``):", 1)[1].strip(),
    }
    return out


def _max_abs(per_vo: dict[str, dict], key: str) -> float | None:
    return max((abs(v[key]) for v in per_vo.values() if v[key] is not None), default=None)


# --------------------------------------------------------------------------- text

def _fmt_s(v) -> str:
    if v is None:
        return "-"
    if v < 120:
        return f"{v:.0f}s"
    if v < 7200:
        return f"{v / 60:.1f}m"
    if v < 172800:
        return f"{v / 3600:.1f}h"
    return f"{v / 86400:.1f}d"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def format_summary(s: dict[str, Any]) -> str:
    L = []
    j, sim = s["jobs"], s["simulation"]
    L.append(f"vmsched simulate: {s['policy']['site']} ({s['policy']['path']}) on {s['trace']['name']}")
    L.append(f"  hosts: {s['hosts']['description']} = {s['hosts']['cores']} cores; engine {s['engine']}")
    for line in (s.get("baseline") or {}).get("lines", ()):
        L.append("  " + line)
    wall = f", wall {sim['wall_s']:.1f}s" if sim.get("wall_s") is not None else ""
    L.append(f"  simulated {_fmt_s(sim['makespan_s'])}: {sim['cycles']} cycles ({sim['ticks_skipped']} idle ticks "
             f"skipped){wall}")
    L.append(f"  jobs: {j['in_trace']} in trace, {j['replayed']} replayed, {j['ended']} ended, {j['never_ran']} never "
             f"ran, {j['killed_at_walltime']} killed at walltime, {j['skipped_trace_lines']} bad lines skipped")
    L.append("")
    L.append(f"  utilisation            {_pct(s['utilisation']['value'])} of cores busy over the makespan, "
             f"{_pct(s['utilisation']['during_arrivals'])} while jobs arrived "
             f"({_pct(s['utilisation']['active_domains_value'])} of cores in active domains)")
    bs = s["bounded_slowdown"]
    L.append("  bounded slowdown       " + ("-" if not bs["n"] else
                                          f"mean {bs['mean']:.2f}, median {bs['median']:.2f}, p95 {bs['p95']:.2f}"))
    p = s["preemptions"]
    L.append(f"  preemptions            {p['events']} ({p['jobs_preempted']} jobs; {p['domain_suspensions']} domain "
             f"suspensions, {p['requeues']} requeues)")
    b = s["boots"]
    L.append(f"  boots                  {b['boots']} boots, {b['shutdowns']} shutdowns, {b['domain_resumes']} domain "
             f"resumes")
    it = s["interactive"]
    lat, full = it["latency_s"], it["under_full_load"]["latency_s"]
    # the resume time only where a job waited for a resumed domain: with none, it did not apply
    resume = f" (resume time {_fmt_s(it['resume_s'])})" if it.get("resume_s") is not None else ""
    L.append("  interactive start      " + ("no interactive jobs" if not lat["n"] else
             f"{lat['n']} jobs: median {_fmt_s(lat['median'])}, p95 {_fmt_s(lat['p95'])}, "
             f"max {_fmt_s(lat['max'])}; under full load ({full['n']} jobs) max {_fmt_s(full['max'])}") + resume)
    L.append("")
    sh = s["share"]
    L.append(f"  {'VO':<10} {'target':>7} {'achieved':>9} {'saturated':>10} {'error':>7} {'contended':>10} "
             f"{'error':>7} {'all waiting':>12} {'error':>7}   {'jobs':>6} {'wait mean':>10} {'median':>8} {'p95':>8}")

    def err(v, name):
        e = v.get(f"error_{name}_pp")
        return "-" if e is None else f"{e:+.1f}pp"

    for vo, v in sh["per_vo"].items():
        w = s["wait_s"]["by_vo"].get(vo, {"n": 0, "mean": None, "median": None, "p95": None})
        L.append(f"  {vo:<10} {_pct(v['target']):>7} {_pct(v['achieved']):>9} {_pct(v['achieved_saturated']):>10} "
                 f"{err(v, 'saturated'):>7} {_pct(v.get('achieved_contended')):>10} {err(v, 'contended'):>7} "
                 f"{_pct(v.get('achieved_all_waiting')):>12} {err(v, 'all_waiting'):>7}   "
                 f"{w['n']:>6} {_fmt_s(w['mean']):>10} {_fmt_s(w['median']):>8} {_fmt_s(w['p95']):>8}")
    L.append(f"  (saturated: every VO with a share had jobs waiting and >= {_pct(sh.get('full_load', FULL_LOAD))} "
             f"of the cores were busy, {_pct(sh['saturated_fraction'])} of the time; contended: saturated, and "
             f"every such VO had a job waiting that any host could run, {_pct(sh.get('contended_fraction'))}, "
             f"error against the fair part given demand; "
             f"all waiting: every VO with a share had jobs waiting, {_pct(sh.get('all_waiting_fraction'))})")
    L.append("")
    L.append(f"  {'class':<12} {'jobs':>6} {'wait mean':>10} {'median':>8} {'p95':>8}")
    for k, w in s["wait_s"]["by_class"].items():
        L.append(f"  {k:<12} {w['n']:>6} {_fmt_s(w['mean']):>10} {_fmt_s(w['median']):>8} {_fmt_s(w['p95']):>8}")
    w = s["wait_s"]["all"]
    L.append(f"  {'all':<12} {w['n']:>6} {_fmt_s(w['mean']):>10} {_fmt_s(w['median']):>8} {_fmt_s(w['p95']):>8}")
    if s["jobs"]["never_reasons"]:
        L.append("")
        L.append("  never ran:")
        for r in s["jobs"]["never_reasons"][:8]:
            L.append(f"    {r['jobs']:>6}  [{r['stage']}] {r['reason']}")
    L.append("")
    L.append("  assumptions (what stands in for what the trace lacks; jobs affected):")
    for m in s["mapping"]:
        L.append(f"    {'note':>6}  {m}")
    for a in s["assumptions"]:
        if a["jobs"]:
            L.append(f"    {a['jobs']:>6}  {a['what']}")
    if sim["violations"]:
        L.append("")
        L.append(f"  PLAN VIOLATIONS: {sim['violations']} (first: {sim['violation_examples'][0]})")
    L.append("")
    L.append("  " + s["credit"])
    return "\n".join(L)


def _compare_cells(s: dict[str, Any], vos: list[str]) -> list[tuple[str, str]]:
    """One run's column of ``vmsched compare``: (row label, figure)."""
    w = s["wait_s"]["all"]
    rows = [("", s["policy"]["site"]),
            ("utilisation (makespan)", _pct(s["utilisation"]["value"])),
            ("utilisation (while jobs arrive)", _pct(s["utilisation"]["during_arrivals"])),
            ("mean wait", _fmt_s(w["mean"])), ("median wait", _fmt_s(w["median"])), ("p95 wait", _fmt_s(w["p95"])),
            ("bounded slowdown (mean)", f"{s['bounded_slowdown']['mean'] or 0:.2f}"),
            ("makespan", _fmt_s(s["simulation"]["makespan_s"])),
            ("jobs ended / never ran", f"{s['jobs']['ended']} / {s['jobs']['never_ran']}"),
            ("preemptions", str(s["preemptions"]["events"])), ("boots", str(s["boots"]["boots"])),
            ("interactive latency (max)", _fmt_s(s["interactive"]["latency_s"]["max"]))]
    for vo in vos:
        v, wv = s["share"]["per_vo"].get(vo, {}), s["wait_s"]["by_vo"].get(vo, {})
        rows += [("share " + vo, _pct(v.get("achieved"))), ("  under saturation", _pct(v.get("achieved_saturated"))),
                 ("  contended", _pct(v.get("achieved_contended"))), (f"mean wait {vo}", _fmt_s(wv.get("mean")))]
    return rows


def format_compare(a: dict[str, Any], b: dict[str, Any] | None) -> str:
    """Two runs side by side; ``b`` None when the comparison could not differ (a static split
    of one VO), which is said instead of printing a second, equal column."""
    vos = sorted(set(a["share"]["per_vo"]) | set(b["share"]["per_vo"] if b else ()))
    ca = _compare_cells(a, vos)
    cb = _compare_cells(b, vos) if b is not None else [("", "")] * len(ca)
    # the share rows name the target, which is the policy's (A's)
    labels = [f"{lab} (target {_pct(a['share']['per_vo'].get(lab[6:], {}).get('target'))})"
              if lab.startswith("share ") else lab for lab, _ in ca]
    rows = [(lab, x, y) for lab, (_, x), (_, y) in zip(labels, ca, cb)]
    # Every column as wide as its widest cell: a site name cut short ("(stati") hides
    # which run is which.
    w0, w1, w2 = (max([n] + [len(r[i]) for r in rows]) for i, n in ((0, 34), (1, 24), (2, 24)))
    L = [f"vmsched compare on {a['trace']['name']} ({a['hosts']['cores']} cores)"]
    L += [f"  {label:<{w0}} {fa:>{w1}} {fb:>{w2}}".rstrip() for label, fa, fb in rows]
    if b is None:
        L.append("")
        L.append(f"  no second column: {a.get('baseline_not_run') or 'B was not run'}")
    else:
        if all(x == y for _, x, y in rows[1:]):
            L.append("")
            L.append("  the two runs gave the same figures on every line above")
        if b.get("baseline"):
            L.append("")
            L += ["  " + line for line in b["baseline"]["lines"]]
    L.append("")
    L.append("  " + a["credit"])
    return "\n".join(L)


def write_json(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- plots

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)   # pyplot keeps every figure until it is closed
    return path


def _hours(s: dict[str, Any]) -> list[float]:
    w = s["series"]["bin_s"]
    return [(i + 0.5) * w / 3600.0 for i in range(len(s["series"]["busy_cores"]))]


_CDF_POINTS = 2000


def _wait_cdfs(sim) -> list[tuple[str, int, list[float], list[float]]]:
    """Per VO: (vo, jobs, waits, fraction of jobs) of the wait-time CDF to draw, waits under
    1 s at 1 s. At most 2000 points a VO: an 800-pixel plot shows no more, and matplotlib
    holds every point it is given (the issue's 480 MB with plots)."""
    out = []
    for vo, arr in sorted(sim.figures.wait_by_vo.items()):
        w = sorted(max(1.0, x) for x in arr)
        n = len(w)
        idx = range(n) if n <= _CDF_POINTS else \
            sorted({round(k * (n - 1) / (_CDF_POINTS - 1)) for k in range(_CDF_POINTS)})
        out.append((vo, n, [w[i] for i in idx], [(i + 1) / n for i in idx]))
    return out


def plot_report(s: dict[str, Any], sim, outdir: Path) -> list[Path]:
    plt = _plt()
    out = []
    x = _hours(s)
    cap = s["hosts"]["cores"]
    fig, ax = plt.subplots(figsize=(10, 4))
    vos = list(s["series"]["busy_cores_by_vo"])
    if x and vos:
        ax.stackplot(x, *[[v / cap * 100 for v in s["series"]["busy_cores_by_vo"][vo][:len(x)] +
                           [0.0] * (len(x) - len(s["series"]["busy_cores_by_vo"][vo]))] for vo in vos],
                     labels=vos, alpha=0.8)
    ax.set_ylim(0, 105)
    ax.set_xlabel("hours since the first arrival")
    ax.set_ylabel("busy cores (% of capacity)")
    ax.set_title(f"Utilisation by VO: {s['policy']['site']} on {s['trace']['name']}")
    if vos:
        ax.legend(loc="upper right")
    out.append(_save(fig, outdir / "utilisation.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    tot = s["series"]["busy_cores"]
    for vo in vos:
        ser = s["series"]["busy_cores_by_vo"][vo]
        y = [100 * ser[i] / tot[i] if i < len(ser) and tot[i] > 0 else float("nan") for i in range(len(tot))]
        line, = ax.plot(x, y, label=f"{vo} achieved")
        t = s["share"]["per_vo"].get(vo, {}).get("target")
        if t is not None:
            ax.axhline(100 * t, color=line.get_color(), linestyle="--", label=f"{vo} target")
    ax.set_ylim(0, 100)
    ax.set_xlabel("hours since the first arrival")
    ax.set_ylabel("share of busy cores (%)")
    ax.set_title("Per-VO share over time")
    if vos:
        ax.legend(loc="upper right")
    out.append(_save(fig, outdir / "share.png"))

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for vo, n, w, frac in _wait_cdfs(sim):
        ax.plot(w, frac, label=f"{vo} ({n} jobs)")
    ax.set_xscale("log")
    ax.set_xlabel("wait time (s, log; waits under 1 s drawn at 1 s)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title("Wait-time distribution by VO")
    if ax.lines:
        ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    out.append(_save(fig, outdir / "waits.png"))
    return out


def plot_compare(a: dict[str, Any], sim_a, b: dict[str, Any], sim_b, outdir: Path) -> list[Path]:
    plt = _plt()
    out = []
    fig, ax = plt.subplots(figsize=(10, 4))
    for s in (a, b):
        x = _hours(s)
        ax.plot(x, [100 * v / s["hosts"]["cores"] for v in s["series"]["busy_cores"]], label=s["policy"]["site"])
    ax.set_ylim(0, 105)
    ax.set_xlabel("hours since the first arrival")
    ax.set_ylabel("busy cores (% of capacity)")
    ax.set_title(f"Utilisation on {a['trace']['name']}")
    ax.legend(loc="upper right")
    out.append(_save(fig, outdir / "compare-utilisation.png"))

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for s, sim, style in ((a, sim_a, "-"), (b, sim_b, "--")):
        for vo, _n, w, frac in _wait_cdfs(sim):
            ax.plot(w, frac, style, label=f"{s['policy']['site']}: {vo}")
    ax.set_xscale("log")
    ax.set_xlabel("wait time (s, log)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title("Wait-time distributions")
    if ax.lines:
        ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    out.append(_save(fig, outdir / "compare-waits.png"))
    return out
