"""The model's parsers: PBS attribute strings as qstat -f / pbsnodes show them, and JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmsched.model import (Domain, DomainState, Host, Job, JobState, ModelError, Snapshot, parse_duration,
                           parse_nodes, parse_size_mb)

QSTAT = {
    "Job_Owner": "alice@ui.example.org", "euser": "alice", "egroup": "atlas", "queue": "short",
    "job_state": "Q", "Resource_List.walltime": "10:00:00", "Resource_List.mem": "1700mb",
    "Resource_List.nodes": "1:ppn=2", "qtime": "1700000000",
}


def test_job_from_qstat_attributes():
    j = Job.from_pbs("123.pbs", QSTAT)
    assert (j.user, j.group, j.vo, j.queue) == ("alice", "atlas", "atlas", "short")
    assert (j.cores, j.memory_mb, j.walltime_s, j.submit_time) == (2, 1700, 36000, 1.7e9)
    assert j.state is JobState.QUEUED and j.image is None


def test_running_job_and_features():
    attrs_ = dict(QSTAT, job_state="R", exec_host="wn01-slc5-1/0+wn01-slc5-1/1", start_time="1700000100",
                  **{"Resource_List.nodes": "1:ppn=4:infiniband", "Resource_List.image": "slc5"})
    j = Job.from_pbs("7.pbs", attrs_)
    assert j.domain == "wn01-slc5-1" and j.cores == 4 and j.features == {"infiniband"} and j.image == "slc5"


@pytest.mark.parametrize("key,value,expect", [
    ("Resource_List.walltime", "10:61:00", "Resource_List.walltime"),
    ("Resource_List.walltime", "ten hours", "Resource_List.walltime"),
    ("Resource_List.mem", "17zz", "expected a size"),
    ("Resource_List.mem", "-5mb", "expected a size"),
    ("Resource_List.nodes", "2:ppn=2", "expected 1 node"),
    ("Resource_List.nodes", "1:ppn=0", "ppn"),
    ("Resource_List.nodes", "1:ppn=2+1:ppn=2", "one node chunk"),
    ("job_state", "Z", "job_state"),
    ("qtime", "yesterday", "qtime"),
    ("Resource_List.flavor", "wn soft", "expected a flavor name"),
    ("Resource_List.naccesspolicy", "mine", "expected one of shared, sharedonly, singlejob"),
    ("Resource_List.place", "excl:nearby", "expected [free|pack|scatter|vscatter][:excl|exclhost|shared]"),
    ("Resource_List.place", "", "Resource_List.place"),
])
def test_malformed_attribute_names_job_and_attribute(key, value, expect):
    with pytest.raises(ModelError) as e:
        Job.from_pbs("99.pbs", dict(QSTAT, **{key: value}))
    msg = e.value.first()
    assert msg.startswith("job 99.pbs: ") and expect in msg and "\n" not in msg


def test_all_problems_of_a_job_at_once():
    bad = dict(QSTAT, **{"Resource_List.mem": "lots", "Resource_List.walltime": "x"})
    del bad["egroup"]
    with pytest.raises(ModelError) as e:
        Job.from_pbs("5.pbs", bad)
    assert len(e.value.problems) == 3


def test_host_from_pbsnodes():
    h = Host.from_pbs("wn01", {"np": "8", "resources_available.mem": "16gb", "properties": "ib,slc5",
                               "state": "free"}, max_active=2)
    assert (h.cores, h.memory_mb, h.features, h.max_active, h.up) == (8, 16384, {"ib", "slc5"}, 2, True)
    assert not Host.from_pbs("wn02", {"np": "8", "resources_available.mem": "1gb", "state": "down,offline"}).up
    with pytest.raises(ModelError, match="node wn03: np: expected a whole number from 1 to 2\\^20, got 'eight'"):
        Host.from_pbs("wn03", {"np": "eight", "resources_available.mem": "1gb"})


def test_host_disk_from_pbsnodes_is_optional_and_strict():
    """A site that defines the host resource ``disk`` gets it checked; others leave it unknown."""
    base = {"np": "8", "resources_available.mem": "16gb"}
    assert Host.from_pbs("wn01", base).disk_gb is None
    assert Host.from_pbs("wn01", dict(base, **{"resources_available.disk": "500gb"})).disk_gb == 500
    with pytest.raises(ModelError) as e:
        Host.from_pbs("wn04", dict(base, **{"resources_available.disk": "big"}))
    assert e.value.first() == "node wn04: resources_available.disk: expected a size like 1700mb or 2gb, got 'big'"


@pytest.mark.parametrize("text,mb", [("1700mb", 1700), ("2gb", 2048), ("512kb", 1), ("1048576", 1),
                                     ("1048577b", 2), ("1mw", 8), ("1tb", 1048576)])
def test_sizes(text, mb):
    assert parse_size_mb(text) == mb


@pytest.mark.parametrize("text,s", [("10:00:00", 36000), ("90", 90), ("01:30", 90), ("90m", 5400), ("7d", 604800),
                                    ("1.5h", 5400), ("100:00:00", 360000)])
def test_durations(text, s):
    assert parse_duration(text) == s


def test_nodes():
    assert parse_nodes("1:ppn=2") == (1, 2, ())
    assert parse_nodes("ib") == (1, 1, ("ib",))


@st.composite
def snapshots(draw):
    hosts = [Host(f"h{i}", draw(st.integers(1, 64)), draw(st.integers(1, 10**6)), max_active=draw(st.integers(1, 4)),
                  features=frozenset(draw(st.lists(st.sampled_from(["ib", "gpu", "ssd"]), max_size=2))),
                  disk_gb=draw(st.none() | st.integers(0, 10**5)))
             for i in range(draw(st.integers(1, 4)))]
    doms = [Domain(f"d{i}", draw(st.sampled_from(hosts)).name, "img", "small",
                   draw(st.sampled_from(list(DomainState))), draw(st.integers(0, 8)), draw(st.integers(0, 9000)),
                   since=draw(st.floats(0, 1e9)))
            for i in range(draw(st.integers(0, 5)))]
    jobs = []
    for i in range(draw(st.integers(0, 5))):
        state = draw(st.sampled_from([JobState.QUEUED, JobState.HELD] + ([JobState.RUNNING] if doms else [])))
        jobs.append(Job(f"{i}.s", "u", "g", "vo", "q", draw(st.integers(1, 8)), draw(st.integers(0, 9000)),
                        draw(st.integers(1, 10**6)), draw(st.floats(0, 1e9)), state=state,
                        domain=draw(st.sampled_from(doms)).name if state is JobState.RUNNING else None,
                        interactive=draw(st.booleans()), flavor=draw(st.none() | st.sampled_from(["small", "wn-soft"]))))
    return Snapshot(draw(st.floats(0, 1e10)), hosts, doms, jobs)


@settings(max_examples=100, deadline=None)
@given(snapshots())
def test_snapshot_json_round_trip(snap):
    again = Snapshot.from_json(json.loads(json.dumps(snap.to_json())))
    assert again == snap


def test_snapshot_json_errors_name_place(tmp_path):
    data = {"time": 5, "hosts": [{"name": "h1", "cores": "many", "memory_mb": 10}],
            "domains": [{"name": "d1", "host": "h9", "image": "i", "flavor": "f", "state": "free", "cores": 1,
                         "memory_mb": 1, "colour": "blue"}], "jobs": [], "extra": 1}
    with pytest.raises(ModelError) as e:
        Snapshot.from_json(data, "snap.json")
    text = " | ".join(e.value.problems)
    assert "snap.json: unknown key 'extra'" in text
    assert "snap.json: hosts[0]: cores: expected a whole number, got a string 'many'" in text
    assert "snap.json: domains[0]: unknown key 'colour'" in text
    p = tmp_path / "s.json"
    p.write_text('{"time": 1,\n "hosts": [}')
    with pytest.raises(ModelError, match=r"s.json:2: not valid JSON"):
        Snapshot.load(p)


def test_snapshot_rejects_dangling_references():
    with pytest.raises(ModelError, match="job 1: domain nowhere is not in the snapshot"):
        Snapshot(0, [], [], [Job("1", "u", "g", "v", "q", 1, 1, 1, 0.0, state="R", domain="nowhere")])


def test_snapshot_host_disk_is_unknown_or_a_whole_number_of_gb():
    host = {"name": "wn01", "cores": 8, "memory_mb": 16384}
    assert Snapshot.from_json({"time": 1.0, "hosts": [host]}).hosts[0].disk_gb is None
    assert Snapshot.from_json({"time": 1.0, "hosts": [dict(host, disk_gb=None)]}).hosts[0].disk_gb is None
    with pytest.raises(ModelError) as e:
        Snapshot.from_json({"time": 1.0, "hosts": [dict(host, disk_gb="500gb")]}, source="s.json")
    assert e.value.first() == "s.json: hosts[0]: disk_gb: expected a whole number of GB, got a string '500gb'"


@pytest.mark.parametrize("extra,flavor", [
    ({}, None),
    ({"Resource_List.flavor": "wn-soft"}, "wn-soft"),
    ({"Resource_List.naccesspolicy": "singlejob"}, "whole-hard"),      # Torque/Moab qsub -l naccesspolicy=
    ({"Resource_List.naccesspolicy": "SingleUser"}, None),             # shares the node: no whole node
    ({"Resource_List.place": "scatter:excl"}, "whole-hard"),          # OpenPBS qsub -l place=
    ({"Resource_List.place": "exclhost"}, "whole-hard"),
    ({"Resource_List.place": "pack:shared:group=switch"}, None),
    ({"Resource_List.flavor": "large", "Resource_List.place": "excl"}, "large"),   # the name wins
])
def test_job_asks_for_a_flavor_by_name_or_a_whole_node_as_pbs_writes_it(extra, flavor):
    assert Job.from_pbs("1.pbs", dict(QSTAT, **extra)).flavor == flavor
