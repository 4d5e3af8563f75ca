"""Issue 17: every line of a replay's report is true of the run. One regression test per
defect the issue found (repeated header keys, truncated compare columns, assumptions
listed against every job, settings printed that did not apply)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmsched.cli import main
from vmsched.sim import swf

from .test_sim_cli import POLICY, TRACE  # two VOs, a and b, on three 4-core hosts

SHARED_TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"

HEADER = """; Version: 2.2
; Installation: first site
; Installation: second site
; MaxQueues: 2
; Queue:  1 short
; Queue:  2 long
; Partition: 1 DEFAULT
; Partition: 2 ALL
;       (continued)
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "p.toml").write_text(POLICY)
    (tmp_path / "t.swf").write_text(HEADER + TRACE)
    return tmp_path


def simulate(files, *extra, policy="p.toml", trace="t.swf"):
    out = files / "rep"
    rc = main(["simulate", str(files / policy), "--trace", str(files / trace), "--out", str(out), "--no-plots",
               "--no-progress", *extra])
    assert rc == 0
    return json.loads((out / "summary.json").read_text())


def test_repeated_header_keys_keep_every_value(files, capsys):
    s = simulate(files)
    h = s["trace"]["header"]
    assert h["Installation"] == ["first site", "second site"]
    assert h["Queue"] == ["1 short", "2 long"]
    assert h["Partition"] == ["1 DEFAULT", "2 ALL\n(continued)"]
    assert h["Version"] == "2.2"


@pytest.mark.skipif(not (SHARED_TRACES / "HPC2N-2002-2.2-cln.swf.gz").exists(), reason="shared traces absent")
def test_a_real_pwa_header_keeps_both_partitions():
    with swf.iter_trace(SHARED_TRACES / "HPC2N-2002-2.2-cln.swf.gz") as reader:
        next(reader)
        assert reader.header["Partition"] == ("1  DEFAULT", "2  ALL")
        assert reader.header["Queue"] == "1  [fque:1]"


def test_compare_never_cuts_a_column_header(files, capsys):
    long_name = "a-site-whose-policy-has-a-long-name"
    (files / "long.toml").write_text(POLICY.replace('name = "cli-tiny"', f'name = "{long_name}"'))
    rc = main(["compare", str(files / "long.toml"), "--trace", str(files / "t.swf"), "--out", str(files / "c"),
               "--no-plots", "--no-progress"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    head = lines[1].split()
    assert head == [long_name, f"{long_name}", "(static", "split)"]
    # every figure of the table stays right-aligned under its header
    table = lines[1:lines.index("")]
    assert len(table) > 10 and len({len(line) for line in table}) == 1


def test_an_assumption_that_touched_no_job_is_not_listed(files, capsys):
    """The issue's site: "queue: jobs no map rule gives an exec_queue go to 'short'" listed
    against all jobs when a map rule gave every job its queue. Each stand-in is counted job
    by job, and one that touched no job is left out."""
    every = POLICY + '[[trace.map]]\nqueue = 1\nexec_queue = "normal"\n'
    (files / "every.toml").write_text(every.replace('default_vo = "a"', 'default_vo = "a"\ndefault_queue = "normal"'))
    s = simulate(files, policy="every.toml")
    text = capsys.readouterr().out
    assert "queue:" not in text and not any("queue" in a["what"] for a in s["assumptions"])
    assert all(a["jobs"] > 0 for a in s["assumptions"])
    assert "all " not in text.split("assumptions")[1]           # no line claims every job unless counted
    # users 0-4 get the queue by rule; the 16 jobs of users 5-8 take the default
    some = POLICY + '[[trace.map]]\nuser = "0-4"\nexec_queue = "normal"\n'
    (files / "some.toml").write_text(some.replace('default_vo = "a"', 'default_vo = "a"\ndefault_queue = "normal"'))
    s = simulate(files, policy="some.toml")
    assert "    16  queue: no map rule gave exec_queue, [trace] default_queue 'normal' used" in capsys.readouterr().out
    assert {"what": "walltime: the job's real run time (oracle estimate)", "jobs": 40} in s["assumptions"]


def test_resume_time_is_shown_only_when_a_job_waited_for_a_resumed_domain(files, capsys):
    """With only VO a's jobs, no host ever switches to b's domain: nothing is resumed and the
    resume time did not apply, so the report does not name it. With both VOs, hosts switch
    (a domain resumed) and it does."""
    (files / "a-only.swf").write_text("\n".join(
        f"{i} {i * 30} 0 600 1 -1 -1 -1 -1 -1 1 1 1 -1 1 1 -1 -1" for i in range(1, 11)) + "\n")
    (files / "r.toml").write_text(POLICY.replace("[lifecycle]", '[preemption]\nresume_time = "7s"\n[lifecycle]'))
    s = simulate(files, policy="r.toml", trace="a-only.swf")
    assert "resume time" not in capsys.readouterr().out
    assert s["interactive"]["resume_s"] is None and s["interactive"]["resumed_starts"] == 0
    s = simulate(files, policy="r.toml")
    assert s["interactive"]["resumed_starts"] > 0 and s["interactive"]["resume_s"] == 7
    assert "(resume time 7s)" in capsys.readouterr().out


def test_the_features_line_says_what_the_replay_does_with_them():
    """The report said "features: nodespec properties kept as job features" while the
    mapped job never carried them (so a cl_zewura job could run on zegox). The dynamic run's
    decisions must not change here (issue 17), so the line now says what happens."""
    from vmsched.sim.mapping import Mapper
    from vmsched.sim.swf import NodeSpec, TraceJob

    from .test_sim_mapping import policy
    p = policy('[trace]\nfeatures = ["cl_zewura"]\n')
    m = Mapper(p, p.hosts, p.domains_per_host, extended=True)
    ext = TraceJob(1, submit=0, wait=0, run=5, allocated_procs=1, uid=1, allocated_nodes=(1,), queue_name="q_2w",
                   nodespec_text="1:ppn=1:cl_zewura", nodespec=NodeSpec.parse("1:ppn=1:cl_zewura"))
    assert m.map(ext).job.features == frozenset()
    (line,) = [what for what in m.counts if what.startswith("features:")]
    assert "not enforced" in line and "kept" not in line
