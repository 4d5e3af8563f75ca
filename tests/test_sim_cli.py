"""``vmsched simulate`` / ``vmsched compare``: reports written, and bad input as one line per
problem on stderr with exit 2, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vmsched.cli import main

DATA = Path(__file__).parent / "data" / "swf"

POLICY = """
[site]
name = "cli-tiny"
[scheduler]
default_queue = "normal"
[[fairshare.share]]
path = "a"
share = 1
[[fairshare.share]]
path = "b"
share = 1
[lifecycle]
dynamic_boot = false
[[images]]
name = "ia"
vos = ["a"]
[[images]]
name = "ib"
vos = ["b"]
[[queues]]
name = "normal"
per_domain_jobs = 8
[[hosts]]
name = "h[1-3]"
cores = 4
memory = "8gb"
max_active = 1
max_domains = 2
domains = [ { image = "ia", flavor = "whole-hard" }, { image = "ib", flavor = "whole-hard" } ]
[trace]
walltime = "oracle"
default_vo = "a"
[[trace.map]]
user = "5-100"
vo = "b"
"""

TRACE = "\n".join(f"{i} {i * 30} 0 {600 + 17 * i} {1 + i % 4} -1 -1 -1 -1 -1 1 {i % 9} 1 -1 1 1 -1 -1"
                  for i in range(1, 41)) + "\n"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "p.toml").write_text(POLICY)
    (tmp_path / "t.swf").write_text(TRACE)
    return tmp_path


def test_simulate_writes_summary_json_and_plots(files, capsys):
    out = files / "rep"
    rc = main(["simulate", str(files / "p.toml"), "--trace", str(files / "t.swf"), "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "utilisation" in text and "assumptions" in text and "interactive start" in text
    s = json.loads((out / "summary.json").read_text())
    assert s["jobs"]["ended"] == 40 and s["jobs"]["never_ran"] == 0
    for name in ("utilisation.png", "share.png", "waits.png"):
        assert (out / name).stat().st_size > 1000


def test_simulate_baseline_and_compare(files, capsys):
    rc = main(["simulate", str(files / "p.toml"), "--trace", str(files / "t.swf"), "--out", str(files / "b"),
               "--baseline", "-q", "--no-plots"])
    assert rc == 0 and capsys.readouterr().out == ""
    s = json.loads((files / "b" / "summary.json").read_text())
    assert "static" in s["policy"]["site"]
    rc = main(["compare", str(files / "p.toml"), "--trace", str(files / "t.swf"), "--out", str(files / "c")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mean wait" in text and "static split" in text
    both = json.loads((files / "c" / "compare.json").read_text())
    assert both["a"]["jobs"]["ended"] == both["b"]["jobs"]["ended"] == 40
    assert (files / "c" / "compare-utilisation.png").exists() and (files / "c" / "compare-waits.png").exists()


def _bad(argv, capsys):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line]
    assert lines and all(line.startswith("vmsched: ") for line in lines)
    return lines


@pytest.mark.parametrize("name, where", [
    ("bad_field_count.swf", ":3: "), ("bad_nonnumeric.swf", ":"), ("bad_negative_run.swf", ":"),
    ("binary_garbage.swf", ":"), ("truncated.swf.gz", "truncated"),
])
def test_bad_trace_lines_exit_2_with_file_and_line(files, capsys, name, where):
    lines = _bad(["simulate", str(files / "p.toml"), "--trace", str(DATA / name), "--out", str(files / "r")],
                 capsys)
    assert len(lines) == 1
    assert name in lines[0] and where in lines[0]


def test_bad_line_names_its_line_number(files, capsys):
    bad = files / "bad.swf"
    bad.write_text(TRACE + "41 2000 0 x 1 -1 -1 -1 -1 -1 1 1 1 -1 1 1 -1 -1\n")
    (line,) = _bad(["simulate", str(files / "p.toml"), "--trace", str(bad), "--out", str(files / "r")], capsys)
    assert f"{bad}:41: field 4 (run time)" in line


def test_skip_bad_counts_skipped_lines(files, capsys):
    bad = files / "bad.swf"
    bad.write_text(TRACE + "41 2000 0 x 1 -1 -1 -1 -1 -1 1 1 1 -1 1 1 -1 -1\n")
    rc = main(["simulate", str(files / "p.toml"), "--trace", str(bad), "--out", str(files / "r"), "--skip-bad",
               "--no-plots"])
    assert rc == 0
    assert "1 bad lines skipped" in capsys.readouterr().out
    s = json.loads((files / "r" / "summary.json").read_text())
    assert s["jobs"]["skipped_trace_lines"] == 1 and s["jobs"]["in_trace"] == 40


def test_bad_policy_missing_trace_and_unwritable_out(files, capsys):
    (files / "bad.toml").write_text(POLICY + '\n[[trace.map]]\nuser = 1\nimage = "zz"\n')
    (line,) = _bad(["simulate", str(files / "bad.toml"), "--trace", str(files / "t.swf"), "--out",
                    str(files / "r")], capsys)
    assert "bad.toml:" in line and "trace.map[1].image" in line
    (line,) = _bad(["simulate", str(files / "p.toml"), "--trace", str(files / "none.swf"), "--out",
                    str(files / "r")], capsys)
    assert "none.swf: no such file" in line
    (line,) = _bad(["simulate", str(files / "p.toml"), "--out", str(files / "r")], capsys)
    assert "--trace" in line
    (files / "afile").write_text("")
    (line,) = _bad(["simulate", str(files / "p.toml"), "--trace", str(files / "t.swf"), "--out",
                    str(files / "afile" / "sub")], capsys)
    assert "cannot write the report" in line
    (line,) = _bad(["simulate", str(files / "p.toml"), "--trace", str(files / "t.swf"), "--hosts", "many",
                    "--out", str(files / "r")], capsys)
    assert "many: no such file" in line and "96x8:16gb" in line
    (line,) = _bad(["compare", str(files / "p.toml"), str(files / "nope.toml"), "--trace", str(files / "t.swf"),
                    "--out", str(files / "r")], capsys)
    assert "nope.toml: no such file" in line


def test_hosts_override(files, capsys):
    rc = main(["simulate", str(files / "p.toml"), "--trace", str(files / "t.swf"), "--hosts", "2x8:16gb",
               "--out", str(files / "r"), "--no-plots", "-q"])
    assert rc == 0
    s = json.loads((files / "r" / "summary.json").read_text())
    assert s["hosts"]["count"] == 2 and s["hosts"]["cores"] == 16


@pytest.mark.slow
def test_simulate_without_arguments_runs_the_bundled_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "METACENTRUM-2009-2-slice" in out and "Parallel Workloads Archive" in out
    rep = tmp_path / "vmsched-report"
    assert json.loads((rep / "summary.json").read_text())["jobs"]["in_trace"] == 4000
    assert (rep / "utilisation.png").exists()
    shutil.rmtree(rep)


def test_a_trace_of_only_unrunnable_jobs_still_reports(files, capsys):
    (files / "norun.swf").write_text("1 0 0 -1 1 -1 -1 -1 -1 -1 1 1 1 -1 1 1 -1 -1\n")
    rc = main(["simulate", str(files / "p.toml"), "--trace", str(files / "norun.swf"), "--out", str(files / "r")])
    assert rc == 0
    s = json.loads((files / "r" / "summary.json").read_text())
    assert s["jobs"]["never_ran"] == 1 and s["jobs"]["never_reasons"][0]["reason"] == "trace has no run time (-1)"
