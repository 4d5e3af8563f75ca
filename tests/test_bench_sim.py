"""Issue 17: benchmarks/bench_sim.py in a clone without ../shared falls back to the bundled
slice with a message instead of failing, and its memory bound is a check, not a comment."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_sim.py"


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("bench_sim", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_without_the_shared_traces_it_replays_the_bundled_slice(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "DEFAULT_TRACE", tmp_path / "shared" / "METACENTRUM-2009-2.swf.gz")
    # --max-rss-mb 0: the bound is about a replay's own process; this one is pytest's, as big as
    # whatever ran before it
    assert bench.main(["--limit", "40", "--max-rss-mb", "0"]) == 0
    out, err = capsys.readouterr()
    assert "not found" in err and "bundled slice METACENTRUM-2009-2-slice.swf.gz" in err
    got = json.loads(out)
    assert got["trace"] == "METACENTRUM-2009-2-slice" and got["jobs"] == 40 and got["ended"] == 40


def test_a_named_trace_that_is_missing_is_a_clear_error(bench, tmp_path, capsys):
    assert bench.main(["--trace", str(tmp_path / "none.swf")]) == 2
    assert capsys.readouterr().err.strip() == f"bench_sim: {tmp_path / 'none.swf'}: no such file"


def test_the_memory_bound_fails_the_run(bench, capsys):
    assert bench.main(["--quick", "--limit", "20", "--max-rss-mb", "1"]) == 1
    assert "peak RSS" in capsys.readouterr().err
