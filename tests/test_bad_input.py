"""Issue 10: every bad input is a clear error. One test per class of the issue and per example
it quotes; each input that used to end in a traceback now ends in the documented error type
with one short line naming where, the key and what was expected."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vmsched.errors import MAX_TEXT
from vmsched.model import Host, Job, ModelError, Snapshot
from vmsched.policyfile import PolicyError, expand_hostlist, load_policy, parse_policy

EX = Path(__file__).resolve().parents[1] / "vmsched" / "examples"
QSTAT = {"Job_Owner": "alice@ui", "euser": "alice", "egroup": "atlas", "queue": "short",
         "Resource_List.walltime": "10:00:00", "qtime": "1700000000"}
PBSNODES = {"np": "8", "resources_available.mem": "16gb", "state": "free"}
HUGE = "9" * 400


def one_line(err: Exception, *expect: str) -> str:
    """The error's first problem, checked to be one short line containing each of ``expect``."""
    problems = getattr(err, "problems", None) or [str(err)]
    for p in problems:
        assert "\n" not in p and len(p) <= 300, p
    first = problems[0]
    for e in expect:
        assert e in first, (e, first)
    return first


def _job_error(**attrs_) -> str:
    with pytest.raises(ModelError) as e:
        Job.from_pbs("7.srv", dict(QSTAT, **attrs_))
    return one_line(e.value, "job 7.srv: ")


def _host_error(**attrs_) -> str:
    with pytest.raises(ModelError) as e:
        Host.from_pbs("wn01", dict(PBSNODES, **attrs_))
    return one_line(e.value, "node wn01: ")


def _snapshot_error(tmp_path, text: str) -> str:
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(ModelError) as e:
        Snapshot.load(path)
    return one_line(e.value, str(path))


JOB = {"id": "1", "user": "u", "group": "g", "vo": "v", "queue": "q", "cores": 1, "memory_mb": 1,
       "walltime_s": 60, "submit_time": 1.0}


# --------------------------------------------------------------------------- 1. huge numbers

@pytest.mark.parametrize("key,value,expect", [
    ("Resource_List.mem", HUGE + "mb", "Resource_List.mem: expected a size of at most 2^40 MB"),
    ("Resource_List.walltime", HUGE + ":00:00", "Resource_List.walltime: expected a duration of at most 2^40 s"),
    ("Resource_List.walltime", HUGE + "s", "Resource_List.walltime: expected a duration of at most 2^40 s"),
    ("qtime", HUGE, "qtime: expected seconds since the epoch from 0 to 2^40"),
    ("Resource_List.ncpus", HUGE, "Resource_List.ncpus: expected a whole number from 1 to 2^20"),
    ("Resource_List.nodes", f"1:ppn={HUGE}", "Resource_List.nodes: expected ppn=<whole number> from 1 to 2^20"),
])
def test_huge_numbers_in_job_attributes(key, value, expect):
    assert expect in _job_error(**{key: value})


@pytest.mark.parametrize("key,value,expect", [
    ("resources_available.mem", HUGE + "mb", "resources_available.mem: expected a size of at most 2^40 MB"),
    ("resources_available.disk", HUGE + "gb", "resources_available.disk: expected a size of at most 2^40 MB"),
    ("np", HUGE, "np: expected a whole number from 1 to 2^20"),
])
def test_huge_numbers_in_host_attributes(key, value, expect):
    assert expect in _host_error(**{key: value})


@pytest.mark.parametrize("field", ["time", "submit_time"])
def test_huge_times_in_a_snapshot(tmp_path, field):
    snap = {"time": 1, "jobs": [dict(JOB)]}
    (snap if field == "time" else snap["jobs"][0])[field] = int("1" + "0" * 400)
    msg = _snapshot_error(tmp_path, json.dumps(snap))
    assert f"{field}: expected seconds since the epoch" in msg and "a number of 401 digits" in msg


def test_a_walltime_past_the_bound_is_refused_not_kept():
    # 10**15 hours: a valid clock, but far past what the engine holds as a time
    assert "expected a duration of at most 2^40 s" in _job_error(**{"Resource_List.walltime": "1" + "0" * 15 + ":00:00"})


# --------------------------------------------------------------------------- 2. parser limits

def test_deeply_nested_json_names_file_and_line(tmp_path):
    msg = _snapshot_error(tmp_path, '{"time": 1,\n "hosts": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert msg.endswith("s.json:2: not valid JSON: nested too deeply (arrays or tables inside each other)")


def test_an_integer_past_the_digit_limit_in_json_names_file_and_line(tmp_path):
    msg = _snapshot_error(tmp_path, '{\n"time": ' + "9" * 5000 + "}")
    assert msg.endswith("s.json:2: not valid JSON: a number with too many digits")


# --------------------------------------------------------------------------- 3. unicode digits

@pytest.mark.parametrize("digit", ["²", "٣", "３"])
def test_unicode_digits_are_not_numbers(digit):
    assert f"np: expected a whole number from 1 to 2^20, got '{digit}'" in _host_error(np=digit)
    assert "Resource_List.walltime: expected a duration" in _job_error(**{"Resource_List.walltime": f"{digit}:00:00"})
    assert "Resource_List.mem: expected a size" in _job_error(**{"Resource_List.mem": f"{digit}gb"})
    assert "Resource_List.nodes" in _job_error(**{"Resource_List.nodes": f"1:ppn={digit}"})


# --------------------------------------------------------------------------- 6. message quality

def test_a_wrong_type_in_a_snapshot_reads_key_expected_got(tmp_path):
    snap = {"time": 1, "hosts": [{"name": "h", "cores": 1, "memory_mb": 1, "up": "up"}]}
    assert _snapshot_error(tmp_path, json.dumps(snap)).endswith("s.json: hosts[0]: up: expected true or false, got 'up'")


def test_long_values_are_echoed_shortened(tmp_path):
    snap = {"time": 1, "jobs": [dict(JOB, state="Q" * 100_000)]}
    msg = _snapshot_error(tmp_path, json.dumps(snap))
    assert "jobs[0]: state: expected one of Q, R, S" in msg and len(msg) < len(str(tmp_path)) + MAX_TEXT
    msg = _job_error(**{"Resource_List.mem": "x" * 100_000})
    assert msg.endswith("got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...") and len(msg) < 200


def test_a_set_field_must_be_a_list_not_a_string(tmp_path):
    # frozenset("gpu") would have been {'g', 'p', 'u'}: three features nobody asked for
    snap = {"time": 1, "hosts": [{"name": "h", "cores": 1, "memory_mb": 1, "features": "gpu"}]}
    assert "hosts[0]: features: expected a list of names, got 'gpu'" in _snapshot_error(tmp_path, json.dumps(snap))


def test_a_name_with_a_trailing_newline_is_not_a_name():
    with pytest.raises(ModelError) as e:
        Host.from_pbs("wn01\n", PBSNODES)
    one_line(e.value, "name: expected a name of letters")


# --------------------------------------------------------------------------- 7. non-string PBS values

def test_none_from_a_backend_is_an_absent_attribute():
    assert "missing euser and Job_Owner" in _job_error(Job_Owner=None, euser=None)
    assert "missing queue" in _job_error(queue=None)
    job = Job.from_pbs("7.srv", dict(QSTAT, job_state=None, exec_host=None, interactive=None))
    assert job.state.value == "Q" and job.domain is None
    assert "missing np or resources_available.ncpus" in _host_error(np=None)
    assert Host.from_pbs("wn01", dict(PBSNODES, state=None, properties=None)).up


def test_numbers_and_bytes_from_a_backend_are_read_as_their_text():
    job = Job.from_pbs("7.srv", dict(QSTAT, **{"Resource_List.ncpus": 4, "qtime": 1700000000.0,
                                               "Resource_List.walltime": b"1:00:00", "interactive": True}))
    assert (job.cores, job.submit_time, job.walltime_s, job.interactive) == (4, 1.7e9, 3600, True)
    host = Host.from_pbs("wn01", dict(PBSNODES, np=8, properties=b"ib,gpu"))
    assert host.cores == 8 and host.features == {"ib", "gpu"}


@pytest.mark.parametrize("key,value,expect", [
    ("Resource_List.mem", 1.5, "Resource_List.mem: expected text or a whole number, got 1.5"),
    ("Resource_List.mem", float("inf"), "Resource_List.mem: expected text or a whole number, got inf"),
    ("exec_host", ["wn01"], "exec_host: expected text or a whole number, got ['wn01']"),
    ("queue", b"\xff\xfe", "queue: not UTF-8 text"),
    ("Resource_List.ncpus", -4, "Resource_List.ncpus: expected a whole number from 1 to 2^20, got '-4'"),
    ("Resource_List.ncpus", 10 ** 400, "Resource_List.ncpus: expected text or a whole number, got a number of 401"),
])
def test_other_values_from_a_backend_are_model_errors_naming_the_attribute(key, value, expect):
    assert expect in _job_error(**{key: value})


def test_attributes_that_are_not_a_mapping():
    with pytest.raises(ModelError) as e:
        Job.from_pbs("7.srv", ["queue", "short"])
    one_line(e.value, "job 7.srv: expected a mapping of attribute names to values")
    with pytest.raises(ModelError) as e:
        Host.from_pbs("wn01", {**PBSNODES, 5: "x"})
    one_line(e.value, "node wn01: attribute name 5: expected a string")


# --------------------------------------------------------------------------- the policy file

MINIMAL = '[site]\nname = "x"\n\n[[queues]]\nname = "a"\n'
HOST = '[[hosts]]\nname = "h1"\ncores = 4\nmemory = "8gb"\n'


def _policy_error(text: str) -> str:
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "site.toml")
    return one_line(e.value, "site.toml:")


@pytest.mark.parametrize("text,expect", [
    (MINIMAL + "[priority]\nfairshare = 1" + "0" * 400 + "\n",
     "site.toml:7: priority.fairshare: expected a finite number from -1e+150 to 1e+150, got a number of 401 digits"),
    ("[scheduler]\ncycle_interval = " + HUGE + "\n" + MINIMAL,
     "site.toml:2: scheduler.cycle_interval: expected a duration in seconds from 0 to 2^40"),
    ('[scheduler]\ncycle_interval = "' + HUGE + 's"\n' + MINIMAL,
     "site.toml:2: scheduler.cycle_interval: expected a duration of at most 2^40 s"),
    (MINIMAL + 'resources_max = { walltime = "' + HUGE + ':00:00" }\n',
     "site.toml:6: queues[0].resources_max.walltime: expected a duration of at most 2^40 s"),
    (MINIMAL + '[[images]]\nname = "i"\nvos = ["v"]\nboot_time = "' + HUGE + 's"\n',
     "site.toml:9: images[0].boot_time: expected a duration of at most 2^40 s"),
    (MINIMAL + HOST.replace('"8gb"', '"' + HUGE + 'mb"'), "site.toml:9: hosts[0].memory: expected a size of at most 2^40 MB"),
    (MINIMAL + HOST + 'disk = "' + HUGE + 'gb"\n', "site.toml:10: hosts[0].disk: expected a size of at most 2^50 MB"),
    (MINIMAL + "[fairshare]\n[[fairshare.share]]\npath = \"a\"\nshare = 1e999\n",
     "site.toml:9: fairshare.share[0].share: expected a finite number from -1e+150 to 1e+150, got inf"),
])
def test_huge_numbers_in_a_policy_file(text, expect):
    assert _policy_error(text).startswith(expect)


def test_deeply_nested_toml_names_the_line():
    assert _policy_error(MINIMAL + "x = " + "[" * 100_000 + "]" * 100_000 + "\n") == \
        "site.toml:6: not valid TOML: nested too deeply (arrays or tables inside each other)"


def test_a_toml_integer_past_the_digit_limit_names_the_line():
    assert _policy_error(MINIMAL + "per_domain_jobs = " + "9" * 5000 + "\n") == \
        "site.toml:6: not valid TOML: a number with too many digits"


def test_a_toml_error_at_the_end_of_the_file_names_its_last_line():
    assert _policy_error(MINIMAL + "x = [1,") == "site.toml:6: not valid TOML: Invalid value"
    assert _policy_error(MINIMAL + 'x = "open\n') .startswith("site.toml:6: not valid TOML")


@pytest.mark.parametrize("text,expect", [
    (MINIMAL + "[priority]\nfairshare = 1e308\n",
     "site.toml:7: priority.fairshare: expected a finite number from -1e+150 to 1e+150, got 1e+308"),
    (MINIMAL + HOST + "max_active = 2147483648\n",
     "site.toml:10: hosts[0].max_active: expected a value from 1 to 2^31 - 2, got 2147483648"),
    (MINIMAL + HOST + "max_domains = 100000\n", "site.toml:10: hosts[0].max_domains: expected a value from 1 to 1024"),
    (MINIMAL + "[lifecycle]\nmax_concurrent_boots = 2147483648\n",
     "site.toml:7: lifecycle.max_concurrent_boots: expected a value from 1 to 2^31 - 1, got 2147483648"),
    (MINIMAL + HOST.replace("cores = 4", "cores = 2000000"), "site.toml:8: hosts[0].cores: expected a value from 1 to 2^20"),
])
def test_values_past_what_the_engine_takes_are_check_errors_naming_the_key(text, expect):
    assert _policy_error(text).startswith(expect)


def test_the_engine_takes_the_largest_values_check_accepts():
    from vmsched.cycle import Scheduler
    from vmsched.matching import PyEngine
    from vmsched.model import Domain, DomainState
    from vmsched.usage import UsageStore
    text = (MINIMAL + "[priority]\nfairshare = 1e150\nclass = 1e150\nage = 1e150\n"
            + HOST.replace("cores = 4", "cores = 1048576") + "max_active = 2147483646\n")
    p = parse_policy(text, "site.toml")
    for engine in (PyEngine(), None):
        s = Scheduler(p, engine=engine, store=UsageStore(":memory:"))
        job = Job("j", "u", "g", "g", "a", 1, 1, 60, 1.0)
        dom = Domain("h1-d", "h1", "i", "small", DomainState.FREE, 1, 1740)
        plan = s.on_cycle(Snapshot(2.0 ** 40, p.hosts, (dom,), (job,)))
        assert plan.time == 2.0 ** 40


def test_host_ranges_are_bounded_by_their_product_before_expanding():
    import time
    import tracemalloc
    tracemalloc.start()
    t = time.perf_counter()
    msg = _policy_error(MINIMAL + HOST.replace('"h1"', '"n[01-99][01-99][01-99]"'))
    took, (_, peak) = time.perf_counter() - t, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert msg == ("site.toml:7: hosts[0].name: 'n[01-99][01-99][01-99]' names 970299 hosts, more than the 100000 "
                   "this file may still define (at most 100000 in all)")
    assert took < 1.0 and peak < 5_000_000
    assert "names a number of" in _policy_error(MINIMAL + HOST.replace('"h1"', '"n' + "[0-999999999]" * 40 + '"'))
    # the bound is on all entries together
    two = MINIMAL + HOST.replace('"h1"', '"a[1-60000]"') + HOST.replace('"h1"', '"b[1-60000]"')
    assert "'b[1-60000]' names 60000 hosts, more than the 40000 this file may still define" in _policy_error(two)


def test_host_ranges_keep_their_order_and_padding():
    assert expand_hostlist("n[08-10]x[1-2]") == ["n08x1", "n08x2", "n09x1", "n09x2", "n10x1", "n10x2"]
    assert expand_hostlist("plain") == ["plain"]
    with pytest.raises(ValueError, match="start <= end"):
        expand_hostlist("n[5-1]")


def test_wrong_types_and_long_values_in_a_policy_file_read_as_one_short_line():
    assert _policy_error(MINIMAL + "[fairshare]\nimage_shares = \"up\"\n") == \
        "site.toml:7: fairshare.image_shares: expected true or false, got a string 'up'"
    long_key = MINIMAL + "k" * 100_000 + " = 1\n"
    msg = _policy_error(long_key)
    assert msg.startswith("site.toml:6: queues[0].'kkkkkk") and "unknown key" in msg and len(msg) < 250
    long_value = MINIMAL + 'kind = "' + "r" * 100_000 + '"\n'
    assert _policy_error(long_value) == ("site.toml:6: queues[0].kind: expected \"routing\" or \"execution\", got "
                                         "'rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr...")


def test_a_file_with_many_problems_reports_the_first_fifty():
    text = MINIMAL + "".join(f"bad{i} = 1\n" for i in range(80))
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "site.toml")
    assert len(e.value.problems) == 51 and e.value.problems[-1] == "site.toml: 30 more problems not shown"


# --------------------------------------------------------------------------- 4 and 8. plugins

PLUGIN_CODE = '''
from vmsched.extensions import Status


class Sorter:
    def sort_key(self, job, priority):
        return (-priority, job.id)


class Unreachable:
    def __init__(self):
        raise RuntimeError("cannot reach the site database")

    def sort_key(self, job, priority):
        return priority


NOT_A_CLASS = 3
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A plugin module (a unique name per test: imports are cached) in a directory and a file
    that only their owner can write, and the policy file naming it; the test changes modes."""
    import uuid
    name = f"plug_{uuid.uuid4().hex[:6]}"
    where = tmp_path / "plugins"
    where.mkdir(mode=0o755)
    (where / f"{name}.py").write_text(PLUGIN_CODE)
    (where / f"{name}.py").chmod(0o644)
    monkeypatch.syspath_prepend(str(where))
    policy = tmp_path / "site.toml"
    policy.write_text(MINIMAL + f'[plugins]\nqueue_sort = "{name}:Sorter"\n')
    policy.chmod(0o644)
    yield name, where / f"{name}.py", policy
    sys.modules.pop(name, None)


def _load_error(path) -> str:
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    return one_line(e.value, f"{path}:7: plugins.queue_sort: ")


def test_check_loads_a_plugin_that_has_its_interface(plugin):
    name, _, policy = plugin
    assert load_policy(policy).plugins == {"queue_sort": f"{name}:Sorter"}


@pytest.mark.parametrize("spec,expect", [
    ("no_such_site_module:Sorter", "no_such_site_module:Sorter: no module named no_such_site_module"),
    ("no_such_site_module.sub:Sorter", "no module named no_such_site_module"),
    ("builtins:dict", "builtins:dict: class dict has no method sort_key(job, priority), which a queue_sort "
                      "plugin needs"),
    ("{name}:Missing", "{name}:Missing: module {name} has no Missing"),
    ("{name}:NOT_A_CLASS", "{name}:NOT_A_CLASS: NOT_A_CLASS is a int, expected a class"),
])
def test_check_refuses_a_plugin_it_cannot_load_or_that_lacks_its_method(plugin, spec, expect):
    name, _, policy = plugin
    policy.write_text(MINIMAL + f'[plugins]\nqueue_sort = "{spec.format(name=name)}"\n')
    assert _load_error(policy).endswith(expect.format(name=name))


def test_explain_gives_checks_one_line_not_a_traceback(plugin, tmp_path):
    import subprocess
    name, module, policy = plugin
    root = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": f"{module.parent}:{root}", "PATH": "/usr/bin:/bin"}
    for spec, expect in (("builtins:dict", "has no method sort_key"),
                         (f"{name}:Unreachable", "RuntimeError: cannot reach the site database")):
        policy.write_text(MINIMAL + f'[plugins]\nqueue_sort = "{spec}"\n')
        r = subprocess.run([sys.executable, "-m", "vmsched", "explain", "--policy", str(policy)],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.splitlines()) == 1 and expect in r.stderr and str(policy) in r.stderr


@pytest.mark.parametrize("what,mode,expect", [
    ("module", 0o664, "{module}: group-writable (mode 664; chmod go-w)"),
    ("module", 0o646, "{module}: world-writable (mode 646; chmod go-w)"),
    ("directory", 0o775, "/plugins: group-writable (mode 775; chmod go-w)"),
    ("directory", 0o777, "/plugins: group- and world-writable (mode 777; chmod go-w)"),
    ("policy", 0o664, "plugins refused: {policy}: group-writable (mode 664; chmod go-w)"),
])
def test_plugins_are_refused_from_files_others_can_write(plugin, what, mode, expect):
    name, module, policy = plugin
    {"module": module, "directory": module.parent, "policy": policy}[what].chmod(mode)
    msg = _load_error(policy)
    assert msg.endswith(expect.format(policy=policy, module=module)), msg
    assert name not in sys.modules          # refused before any of its code ran


def test_plugins_are_refused_from_files_of_another_user(plugin):
    import os
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    _, module, policy = plugin
    os.chown(module, 65534, -1)
    assert _load_error(policy).endswith(f"{module}: owned by uid 65534, not root or the user running vmsched")


def test_a_policy_without_plugins_may_be_group_writable(plugin):
    _, _, policy = plugin
    policy.write_text(MINIMAL)
    policy.chmod(0o664)
    assert load_policy(policy).plugins == {}


# --------------------------------------------------------------------------- traces (SWF)

SWF_LINE = "1 0 10 3600 1 -1 -1 1 7200 1024 1 3 4 -1 1 -1 -1 -1"


def _trace_error(tmp_path, *lines: str) -> str:
    from vmsched.sim.swf import TraceError, read_trace
    path = tmp_path / "t.swf"
    path.write_text("; Version: 2.2\n" + "".join(f"{x}\n" for x in lines))
    with pytest.raises(TraceError) as e:
        read_trace(path)
    return one_line(e.value, f"{path}:")


def _field(n: int, value: str) -> str:
    words = SWF_LINE.split()
    words[n - 1] = value
    return " ".join(words)


@pytest.mark.parametrize("n,value,expect", [
    (2, HUGE, "field 2 (submit time) is a number of 400 digits, expected at most 2^40, or -1 if unknown"),
    (4, "1" + "0" * 13, "field 4 (run time) is 10000000000000, expected at most 2^40, or -1 if unknown"),
    (10, HUGE, "field 10 (requested memory) is a number of 400 digits, expected at most 2^63 - 1, or -1"),
    (10, "1e308", "field 10 (requested memory) is 1e+308, expected at most 2^63 - 1"),
    (6, "9" * 5000, "field 6 (average CPU time) is '9999999999999999999999999999999999999...', expected a finite"),
    (1, "9" * 5000, "field 1 (job id) is '9999999999999999999999999999999999999...', expected a whole number"),
    (3, "²", "field 3 (wait time) is '²', expected a whole number (-1 if unknown)"),
])
def test_huge_numbers_and_unicode_digits_in_a_trace(tmp_path, n, value, expect):
    assert expect in _trace_error(tmp_path, SWF_LINE, _field(n, value))


def test_a_trace_within_bounds_replays_its_largest_times(tmp_path):
    from vmsched.sim.engine import prepare
    from vmsched.sim.swf import read_trace
    path = tmp_path / "t.swf"
    path.write_text(SWF_LINE + "\n" + _field(2, str(2 ** 40)) + "\n")
    assert read_trace(path).jobs[1].submit == 2 ** 40
    policy = load_policy(EX / "metacentrum-sim.toml")
    replay = prepare(policy, path)
    assert len(replay.jobs) + len(replay.unrunnable) == 2


def test_unicode_digits_in_nodespecs_and_machines(tmp_path):
    from vmsched.sim.swf import NodeSpec, TraceError, read_machines
    for spec in ("1:ppn=²", f"1:ppn={HUGE}", f"{HUGE}:ppn=1"):
        with pytest.raises(ValueError) as e:
            NodeSpec.parse(spec)
        one_line(e.value, "from 1 to 2^20 in ")
    assert NodeSpec.parse("²:ppn=1").parts[0].host == "²"      # a host's name, never the number 2
    path = tmp_path / "m.machines"
    for line in ("0\tzewura\t٣\t80\t1\t529426432", "0\tzewura\t20\t80\t1e999\t529426432",
                 f"0\tzewura\t{HUGE}\t80\t1\t529426432"):
        path.write_text(line + "\n")
        with pytest.raises(TraceError) as e:
            read_machines(path)
        one_line(e.value, f"{path}:1: field")


def test_a_huge_host_count_on_the_command_line_is_refused_at_once():
    from vmsched.sim.mapping import hosts_from_spec
    with pytest.raises(PolicyError) as e:
        hosts_from_spec(f"{HUGE}x8")
    one_line(e.value, "--hosts: '999", "expected a count of hosts from 1 to 100000")
    with pytest.raises(PolicyError) as e:
        hosts_from_spec("60000x8,60000x8")
    one_line(e.value, "'60000x8': expected a count of hosts from 1 to 40000, got '60000'")


def test_a_huge_usage_amount_is_a_value_error_not_an_overflow():
    from vmsched.usage import UsageStore
    with pytest.raises(ValueError) as e:
        UsageStore(":memory:").record("j", ("a", "b", "c"), 10 ** 400, 1.0)
    one_line(e.value, "usage amount must be finite, got a number of 401 digits")


def test_an_unknown_plugin_key_is_one_problem(plugin):
    """Found by the fuzz suite: a [plugins] key that is not an extension point was reported
    as unknown, then looked up as one (KeyError)."""
    name, _, policy = plugin
    policy.write_text(MINIMAL + f'[plugins]\nqueue_sorted = "{name}:Sorter"\n')
    with pytest.raises(PolicyError) as e:
        load_policy(policy)
    assert len(e.value.problems) == 1
    one_line(e.value, "plugins.queue_sorted: unknown key (expected one of: filter, pre_filter, preempt, queue_sort")


def test_found_by_fuzzing_long_names_and_negative_huge_numbers_are_shortened(tmp_path):
    snap = json.loads((EX / "metacenter-snapshot.json").read_text())
    snap["jobs"][0]["domain"] = "d" * 5000
    msg = _snapshot_error(tmp_path, json.dumps(snap))
    assert "domain 'ddddd" in msg and "is not in the snapshot" in msg and len(msg) < len(str(tmp_path)) + MAX_TEXT
    assert "field 6 (average CPU time) is a number of 400 digits, expected a value >= 0" in \
        _trace_error(tmp_path, SWF_LINE, _field(6, "-" + HUGE))


def test_an_object_from_a_backend_is_named_by_its_type_not_its_repr():
    assert _job_error(queue=object()).endswith("queue: expected text or a whole number, got an object")


@pytest.mark.parametrize("extra", ["[priority]\nfairshare = 1e308\n", HOST + "max_active = 2147483648\n",
                                   '[plugins]\nqueue_sort = "builtins:dict"\n'])
def test_check_and_explain_say_the_same_one_line(tmp_path, capsys, extra):
    """What check refuses, explain refuses with the same line (it failed later, in the core or
    the cycle, blaming the snapshot or with a traceback)."""
    from vmsched.cli import main
    policy = tmp_path / "site.toml"
    policy.write_text(MINIMAL + extra)
    assert main(["check", str(policy)]) == 2
    said = capsys.readouterr().err
    assert main(["explain", "--policy", str(policy)]) == 2
    assert capsys.readouterr().err == said and len(said.splitlines()) == 1 and said.startswith(f"vmsched: {policy}:")
