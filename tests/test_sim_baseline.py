"""Issue 17: the static baseline partitions the hosts by VO share even when the VOs share
one image (LCG sites ran one worker-node image for every VO), keeps each VO inside its
hosts, and says so; a split of one VO is said to be no split."""

from __future__ import annotations

import json

from vmsched.cli import main
from vmsched.policyfile import parse_policy
from vmsched.sim.baseline import static_split
from vmsched.sim.engine import prepare

from .test_sim_engine import write_trace

LCG = """
[site]
name = "lcg-tiny"
[scheduler]
cycle_interval = "60s"
default_queue = "grid"
[[fairshare.share]]
path = "atlas"
share = 1
[[fairshare.share]]
path = "cms"
share = 1
[lifecycle]
dynamic_boot = false
[[images]]
name = "slc"
vos = ["atlas", "cms"]
[[queues]]
name = "grid"
per_domain_jobs = 4
images = ["slc"]
[[hosts]]
name = "wn[1-4]"
cores = 4
memory = "8gb"
max_active = 1
max_domains = 1
domains = [ { image = "slc", flavor = "whole-hard" } ]
[trace]
walltime = "oracle"
default_vo = "atlas"
[[trace.map]]
user = "5-9"
vo = "cms"
[[trace.map]]
user = 1
image = "slc"
"""

# atlas (users 0-4) fills the site with eight hour-long 4-core jobs; cms sends a few
# short 1-core ones. Sharing, atlas takes all four hosts; split, it has two.
JOBS = [(0, 3600, 4, 1 + i % 2, 1) for i in range(8)] + [(60 * i, 300, 1, 6, 1) for i in range(4)]


def replay(tmp_path, text=LCG, jobs=JOBS):
    trace = tmp_path / "t.swf"
    write_trace(trace, jobs)
    return prepare(parse_policy(text, "lcg.toml"), trace)


def test_vos_sharing_one_image_are_split_by_share_and_kept_on_their_hosts(tmp_path):
    r = replay(tmp_path)
    split = static_split(r.policy, r.vos)
    hosts_of = {p.vo: set(p.hosts) for p in split.parts}
    assert sorted(len(h) for h in hosts_of.values()) == [2, 2] and not hosts_of["atlas"] & hosts_of["cms"]
    assert {p.image for p in split.parts} == {"slc@atlas", "slc@cms"}
    assert any("shared by several VOs" in line for line in split.lines())

    dynamic = r.simulation(keep_jobs=True)
    dynamic.run()
    static = r.simulation(split.policy, job_map=split.job, check=True, strict=True, keep_jobs=True)
    ran_on = {}
    while static.step():
        for d in static.domains.values():
            for jid in d.jobs:
                ran_on.setdefault(static.jobs[jid].job.vo, set()).add(d.host)
    assert static.violation_count == 0 and static.ended == dynamic.ended == len(JOBS)
    assert ran_on["atlas"] <= hosts_of["atlas"] and ran_on["cms"] <= hosts_of["cms"]
    # user 1's jobs named the shared image: they ran in atlas's copy, not nowhere
    named = [sj.job.image for sj in static.order if sj.trace_id % 2 == 1 and sj.job.vo == "atlas"]
    assert named and set(named) == {"slc@atlas"}
    # the split differs from the sharing run: atlas waits for its two hosts
    mean_wait = [sum(sj.first_start - sj.arrival for sj in s.order) / len(s.order) for s in (dynamic, static)]
    assert mean_wait[1] > mean_wait[0] + 600


def test_compare_states_the_split_and_a_split_of_one_vo_is_not_a_column(tmp_path, capsys):
    (tmp_path / "lcg.toml").write_text(LCG)
    write_trace(tmp_path / "t.swf", JOBS)
    argv = ["compare", str(tmp_path / "lcg.toml"), "--trace", str(tmp_path / "t.swf"), "--no-plots", "--no-progress",
            "--out", str(tmp_path / "c")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "hosts partitioned by VO share; each VO's hosts run only its jobs" in text
    assert "atlas (share 1, image slc@atlas): 2 hosts, 8 cores" in text
    assert "the two runs gave the same figures" not in text
    both = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert both["b"]["baseline"]["parts"][0]["source_image"] == "slc"
    assert both["a"]["wait_s"]["all"]["mean"] < both["b"]["wait_s"]["all"]["mean"]

    one = LCG.replace('[[fairshare.share]]\npath = "cms"\nshare = 1\n', "")
    (tmp_path / "one.toml").write_text(one)
    assert main(argv[:1] + [str(tmp_path / "one.toml")] + argv[2:]) == 0
    text = capsys.readouterr().out
    assert "no second column: nothing to split: only VO atlas has a share" in text
    assert "static split" not in text.splitlines()[1]
    assert json.loads((tmp_path / "c" / "compare.json").read_text())["b"] is None
