"""Tests for vmsched.sim.swf: SWF and extended CERIT-SC trace readers."""

from __future__ import annotations

import gzip
import re
import tempfile
import time
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmsched.sim import swf
from vmsched.sim.swf import NodePart, NodeSpec, Trace, TraceError, TraceJob

FIXTURES = Path(__file__).resolve().parent / "data" / "swf"
SHARED_TRACES = Path(__file__).resolve().parents[2] / "shared/data/traces"


def fx(name: str) -> Path:
    return FIXTURES / name


# --------------------------------------------------------------------------- good files

def test_standard_header_padded_keys_repeats_notes_and_continuations():
    h = swf.read_trace(fx("good_standard.swf")).header
    assert h["Version"] == "2.2"  # ";         Version: 2.2"
    assert h["Installation"] == "vmsched tests"
    assert h["StartTime"] == "Mon Jan  1 00:00:00 UTC 2024"  # no space after ';'
    # issue 17: a repeated key keeps every value, in order (not only the last)
    assert h["MaxProcs"] == ("64", "128")
    assert h["Queue"] == ("1 short", "2 long")
    assert h["Information"] == "https://example.invalid/first\nhttps://example.invalid/second"
    assert h["Note"] == ("first note", "second note\ncontinues here")
    assert "Acknowledge" in h and "http" not in h


def test_standard_jobs_values_and_unknowns():
    trace = swf.read_trace(fx("good_standard.swf"))
    assert isinstance(trace, Trace)
    assert trace.name == "good_standard"
    assert not trace.extended and trace.skipped == 0 and trace.problems == ()
    assert [j.job_id for j in trace.jobs] == [1, 2, 3, 4]
    j1, j2, j3, j4 = trace.jobs
    assert j1 == TraceJob(1, 0, 10, 100, 4, 95.5, 2048, 4, 3600, 4096, 1, 7, 3, None, 1, 1, None, None)
    assert (j1.start, j1.end) == (10, 110)
    assert j2.run is None and j2.allocated_procs is None and j2.requested_mem is None and j2.status == 5
    assert j2.end is None
    # tab-separated line with fractional CPU time and memory
    assert j3.avg_cpu == 1.0 and type(j3.avg_cpu) is float
    assert j3.used_mem == 512.25 and j3.preceding_job == 1 and j3.think_time == 10
    assert j4.allocated_procs == 0
    assert all(getattr(j4, name) is None for name, _ in swf.SWF_FIELDS[1:] if name != "allocated_procs")
    assert not j1.extended and j1.queue_name is None and j1.nodespec is None


def test_gzip_detected_by_magic_not_name():
    plain = swf.read_trace(fx("good_standard.swf"))
    zipped = swf.read_trace(fx("gzip_without_gz_name.swf"))
    misnamed = swf.read_trace(fx("plain_named_gz.swf.gz"))
    assert zipped.jobs == plain.jobs == misnamed.jobs
    assert zipped.header == plain.header == misnamed.header
    assert misnamed.name == "plain_named_gz"


def test_extended_lines_and_nodespecs():
    trace = swf.read_trace(fx("good_extended.swf"))
    assert trace.extended
    jobs = {j.job_id: j for j in trace.jobs}
    assert len(jobs) == 8 and all(j.extended for j in trace.jobs)

    j0 = jobs[0]
    assert j0.queue_name == "q_1d" and j0.queue is None
    assert j0.requested_mem == 68719476736  # bytes in this format
    assert j0.allocated_nodes == (1241,) * 4
    assert j0.nodespec_text == "1:ppn=64:x86_64:cl_zewura#excl"
    spec = j0.nodespec
    assert (spec.nodes, spec.ppn, spec.procs, spec.properties, spec.exclusive) == (
        1, 64, 64, ("x86_64", "cl_zewura"), True)

    assert jobs[1].nodespec == NodeSpec((NodePart(1, 12),))
    assert not jobs[1].nodespec.exclusive

    # ppn=1.5 is not something PBS parses: the text is kept, the parsed spec is None
    assert jobs[2].nodespec is None and jobs[2].nodespec_text == "1:ppn=1.5:brno"
    assert jobs[2].allocated_nodes == () and jobs[2].run is None

    multi = jobs[3].nodespec
    assert multi.parts == (NodePart(1, 1), NodePart(3, 2))
    assert (multi.nodes, multi.ppn, multi.procs) == (4, None, 7)

    host = jobs[4].nodespec.parts[0]
    assert (host.host, host.count, host.ppn, host.properties) == ("zewura19.cerit-sc.cz", 1, 12, ("brno",))

    neg = jobs[5].nodespec
    assert neg.ppn == 24 and neg.properties == ("^zewura17.cerit-sc.cz", "^zewura12.cerit-sc.cz")
    assert jobs[5].queue_name == "backfill"

    res = jobs[6].nodespec
    assert res.parts[0].resources == (("mem", "3gb"),)
    assert res.parts[0].properties == ("cl_zewura", "cl_zewura")  # verbatim per part
    assert res.properties == ("cl_zewura",)  # a requirement set overall

    assert jobs[7].nodespec == NodeSpec((NodePart(2, 1, ("infiniband",)),))


@pytest.mark.parametrize("text", [
    "1", "2:ppn=4", "1:ppn=64:x86_64:cl_zewura#excl", "1:ppn=1+3:ppn=2",
    "zewura19.cerit-sc.cz:ppn=12:brno", "1:ppn=5:host=zewura10", "2:infiniband#shared",
])
def test_nodespec_str_round_trips(text):
    spec = NodeSpec.parse(text)
    assert NodeSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("text", [
    "", "1 2", "0:ppn=1", "1:ppn=0", "1:ppn=x", "1:ppn=2:ppn=3", "1#foo", "1::x", "=3", "1:mem=", "1+",
])
def test_nodespec_parse_refuses(text):
    with pytest.raises(ValueError):
        NodeSpec.parse(text)


def test_read_machines():
    zewura, zegox = swf.read_machines(fx("good.machines"))
    assert zewura == swf.Cluster(0, "zewura", 20, 80, 1.0, 529426432)
    assert zegox.cpus == 576 and zewura.cpus + zegox.cpus == 2176


def test_read_machines_bad_line():
    with pytest.raises(TraceError) as err:
        swf.read_machines(fx("bad_zero_nodes.machines"))
    assert err.value.line == 2
    assert str(err.value).startswith(f"{fx('bad_zero_nodes.machines')}:2: field 3 (nodes)")
    with pytest.raises(TraceError, match="no such file"):
        swf.read_machines(fx("missing.machines"))
    with pytest.raises(TraceError, match="no cluster lines"):
        swf.read_machines(fx("empty.swf"))


# --------------------------------------------------------------------------- bad lines

BAD_LINES = [
    ("bad_field_count.swf", 3, "17 fields, expected 18"),
    ("bad_width_change.swf", 3, "21 fields, expected 18 like the first job line (line 2"),
    ("bad_nonnumeric.swf", 3, "field 4 (run time) is 'abc', expected a whole number"),
    ("bad_job_id.swf", 3, "field 1 (job id) is '2.5', expected a whole number >= 0"),
    ("bad_negative_submit.swf", 3, "field 2 (submit time) is -5, expected a value >= 0, or -1"),
    ("bad_negative_run.swf", 3, "field 4 (run time) is -2"),
    ("bad_negative_procs.swf", 3, "field 5 (allocated processors) is -3"),
    ("bad_float_in_int.swf", 3, "field 9 (requested time) is '3600.5', expected a whole number"),
    ("bad_ext_braces.swf", 3, "field 19 (allocated nodes) is '7', expected node ids in braces"),
]


@pytest.mark.parametrize("name,line,fragment", BAD_LINES)
def test_bad_line_names_file_and_line(name, line, fragment):
    path = fx(name)
    with pytest.raises(TraceError) as err:
        swf.read_trace(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{line}: ")
    assert fragment in msg
    assert err.value.line == line and err.value.path == str(path)
    # the same line is skipped, and counted, when asked
    trace = swf.read_trace(path, skip_bad=True)
    assert trace.skipped == 1 and len(trace.jobs) >= 1
    assert trace.problems == (msg,)


def test_skip_bad_counts_and_keeps_messages():
    trace = swf.read_trace(fx("bad_several.swf"), skip_bad=True)
    assert [j.job_id for j in trace.jobs] == [1, 3, 6, 9]
    assert trace.skipped == 5
    assert [int(p.split(":")[1]) for p in trace.problems] == [3, 5, 6, 8, 9]
    assert "field 6 (average CPU time) is 'nan', expected a finite number" in trace.problems[-1]
    with pytest.raises(TraceError, match=r":3: 16 fields"):
        swf.read_trace(fx("bad_several.swf"))


def test_skip_bad_keeps_only_the_first_problems(tmp_path):
    good = "1 0 0 1 1 -1 -1 1 -1 -1 1 1 1 -1 -1 -1 -1 -1\n"
    path = tmp_path / "many.swf"
    path.write_text(good + "oops\n" * 15)
    trace = swf.read_trace(path, skip_bad=True)
    assert trace.skipped == 15 and len(trace.problems) == swf.MAX_PROBLEMS


def test_all_lines_bad_is_an_error_even_when_skipping(tmp_path):
    path = tmp_path / "allbad.swf"
    path.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(TraceError, match=r"no valid job lines \(2 bad lines skipped"):
        swf.read_trace(path, skip_bad=True)


def test_underscore_digits_are_not_numbers(tmp_path):
    path = tmp_path / "u.swf"
    path.write_text("1 0 0 1_000 1 -1 -1 1 -1 -1 1 1 1 -1 -1 -1 -1 -1\n")
    with pytest.raises(TraceError, match=r"u.swf:1: field 4 \(run time\) is '1_000'"):
        swf.read_trace(path)


# --------------------------------------------------------------------------- bad files

@pytest.mark.parametrize("name,fragment", [
    ("empty.swf", "no job lines"),
    ("header_only.swf", "no job lines"),
    ("missing.swf", "no such file"),
    ("binary_garbage.swf", ""),
    ("truncated.swf.gz", "truncated or corrupt gzip data"),
])
def test_unreadable_files_raise_trace_error(name, fragment):
    path = fx(name)
    with pytest.raises(TraceError) as err:
        swf.read_trace(path)
    msg = str(err.value)
    assert str(path) in msg and fragment in msg and "\n" not in msg
    with pytest.raises(TraceError):
        swf.read_trace(path, skip_bad=True)


def test_directory_is_a_trace_error():
    with pytest.raises(TraceError, match="is a directory"):
        swf.read_trace(FIXTURES)


def test_truncated_gzip_yields_what_it_has_then_fails():
    reader = swf.iter_trace(fx("truncated.swf.gz"))
    seen = []
    with pytest.raises(TraceError, match=r"truncated or corrupt gzip data after line \d+"):
        for job in reader:
            seen.append(job)
    assert len(seen) > 10 and reader.header["Version"] == "2.2"
    assert [j.job_id for j in seen] == list(range(1, len(seen) + 1))


# --------------------------------------------------------------------------- iterator

def test_iter_trace_fills_header_and_counts():
    reader = swf.iter_trace(fx("bad_several.swf"), skip_bad=True)
    assert [j.job_id for j in reader] == [1, 3, 6, 9]
    assert reader.skipped == 5 and reader.extended is False and reader.jobs_read == 4
    with swf.iter_trace(fx("good_extended.swf")) as reader:
        first = next(reader)
        assert first.job_id == 0 and reader.extended is True
    with pytest.raises(StopIteration):
        next(reader)  # closed


# --------------------------------------------------------------------------- models

def test_model_validators_refuse_impossible_values():
    with pytest.raises(ValueError):
        TraceJob(-1)
    with pytest.raises(ValueError):
        TraceJob(1, submit=-1)  # unknown is None, not -1
    with pytest.raises(ValueError):
        TraceJob(1, avg_cpu=float("nan"))
    with pytest.raises(ValueError):
        TraceJob(1, run=True)
    with pytest.raises(ValueError):
        TraceJob(1, queue_name="q_1d")  # half an extended record
    with pytest.raises(ValueError):
        NodePart(0)
    with pytest.raises(ValueError):
        NodeSpec(())
    job = TraceJob(1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        job.run = 5


def test_format_job_round_trips_fixtures(tmp_path):
    for name in ("good_standard.swf", "good_extended.swf"):
        trace = swf.read_trace(fx(name))
        path = tmp_path / name
        path.write_text("".join(swf.format_job(j) + "\n" for j in trace.jobs))
        assert swf.read_trace(path).jobs == trace.jobs


# --------------------------------------------------------------------------- bundled slices

def test_bundled_slices_load():
    mc = swf.read_trace(swf.bundled_trace("metacentrum-2009"))
    assert len(mc.jobs) == 4000 and not mc.extended and mc.skipped == 0
    assert (mc.jobs[0].job_id, mc.jobs[-1].job_id) == (69501, 73500)
    assert "MetaCentrum (CESNET)" in mc.header["Acknowledge"]
    assert "Parallel Workloads Archive" in mc.header["Acknowledge"]
    assert mc.header["Blob"].startswith("df1a0287e9ffae0151f46727a50b6971fbe39adf")

    wg = swf.read_trace(swf.bundled_trace("wagap-2013"))
    assert len(wg.jobs) == 2000 and wg.extended and wg.skipped == 0
    assert (wg.jobs[0].job_id, wg.jobs[-1].job_id) == (12200, 14199)
    assert "Klusáček" in wg.header["Acknowledge"]
    clusters = swf.read_machines(swf.bundled_machines("wagap-2013"))
    assert sum(c.cpus for c in clusters) == 2176

    for name in swf.BUNDLED_TRACES:
        assert swf.bundled_trace(name).stat().st_size < 1_000_000
    with pytest.raises(KeyError, match="known: metacentrum-2009, wagap-2013"):
        swf.bundled_trace("nope")
    with pytest.raises(KeyError):
        swf.bundled_machines("metacentrum-2009")


# --------------------------------------------------------------------------- full traces

def _shared(name: str) -> Path:
    path = SHARED_TRACES / name
    if not path.is_file():
        pytest.skip(f"full trace {name} not found in {SHARED_TRACES} "
                    "(that folder sits beside the repository only in the development workspace)")
    return path


def test_full_metacentrum_trace():
    path = _shared("METACENTRUM-2009-2.swf.gz")
    t0 = time.perf_counter()
    trace = swf.read_trace(path)
    elapsed = time.perf_counter() - t0
    assert len(trace.jobs) == 103_656 and trace.skipped == 0 and trace.header == {}
    assert elapsed < 5.0, f"full read took {elapsed:.1f} s"
    assert all(j.requested_time is None for j in trace.jobs[:1000])
    # the bundled slice is exactly jobs 69501-73500 of the full log
    assert swf.read_trace(swf.bundled_trace("metacentrum-2009")).jobs == trace.jobs[69500:73500]


def test_full_wagap_trace():
    path = _shared("wagap-2013.swf")
    # two lines log a large negative run time; strict reading stops at the first
    with pytest.raises(TraceError, match=r"wagap-2013.swf:4186: field 4 \(run time\) is -1359980917"):
        swf.read_trace(path)
    trace = swf.read_trace(path, skip_bad=True)
    assert trace.extended and len(trace.jobs) == 17_898 and trace.skipped == 2
    assert [re.search(r"swf:(\d+): ", p).group(1) for p in trace.problems] == ["4186", "4200"]
    assert sum(j.nodespec is None for j in trace.jobs) == 20  # the ppn=1.5 lines
    bundled = swf.read_trace(swf.bundled_trace("wagap-2013")).jobs
    assert bundled == tuple(j for j in trace.jobs if 12200 <= j.job_id <= 14199)
    machines = swf.read_machines(path.with_name("wagap-2013.swf.machines"))
    assert machines == swf.read_machines(swf.bundled_machines("wagap-2013"))


# --------------------------------------------------------------------------- property

_count = st.none() | st.integers(min_value=0, max_value=2**40)
# within the reader's bounds (swf.FIELD_MAX): average CPU time is a time, at most 2^40 s
_amount = st.none() | st.integers(min_value=0, max_value=2**40) | st.floats(
    min_value=0, max_value=2**40, allow_nan=False, allow_infinity=False)
_standard = st.builds(
    TraceJob,
    job_id=st.integers(min_value=0, max_value=2**31),
    **{name: (_amount if i in (5, 6, 9) else _count)
       for i, (name, _) in enumerate(swf.SWF_FIELDS) if i > 0},
)
_word = st.from_regex(r"[a-z][a-z0-9_.\-]{0,10}", fullmatch=True)
_part = st.builds(NodePart, count=st.integers(1, 64), ppn=st.integers(1, 80),
                  properties=st.lists(_word, max_size=3).map(tuple))
_spec = st.builds(NodeSpec, parts=st.lists(_part, min_size=1, max_size=3).map(tuple), exclusive=st.booleans())


@st.composite
def _extended(draw):
    job = draw(_standard)
    spec = draw(_spec)
    return attrs.evolve(
        job,
        allocated_nodes=tuple(draw(st.lists(st.integers(0, 5000), max_size=8))),
        queue_name=draw(_word),
        nodespec_text=str(spec),
        nodespec=spec,
    )


def _line(job: TraceJob) -> str:
    """Written independently of swf.format_job, so the reader is checked against the spec."""
    values = ["-1" if getattr(job, n) is None else repr(getattr(job, n)) for n, _ in swf.SWF_FIELDS]
    if job.extended:
        values += ["{" + ",".join(map(str, job.allocated_nodes)) + "}", job.queue_name, job.nodespec_text]
    return "\t".join(values) if job.job_id % 2 else "  ".join(values)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_standard, min_size=1, max_size=12) | st.lists(_extended(), min_size=1, max_size=6),
       st.booleans())
def test_written_jobs_read_back_equal(jobs, compress):
    text = "; Version: 2.2\n" + "".join(_line(j) + "\n" for j in jobs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.swf"
        path.write_bytes(gzip.compress(text.encode()) if compress else text.encode())
        trace = swf.read_trace(path)
    assert trace.jobs == tuple(jobs)
    assert trace.extended == jobs[0].extended
    assert [swf.format_job(j) for j in trace.jobs] == [" ".join(_line(j).split()) for j in jobs]


def test_value_the_model_refuses_is_a_bad_line(tmp_path):
    path = tmp_path / "nbsp.swf"
    path.write_bytes("1 0 0 1 1 -1 -1 1 -1 -1 1 1 1 -1 -1 -1 -1 -1 {1} q\u00a0x 1:ppn=1\n".encode())
    with pytest.raises(TraceError, match=r"nbsp.swf:1: queue_name must be"):
        swf.read_trace(path)
