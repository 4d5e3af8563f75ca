"""Policy files: every bad input is one line naming file, line, key and what was expected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmsched.policyfile import PolicyError, expand_hostlist, load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "vmsched" / "examples").glob("*.toml"))

MINIMAL = '[site]\nname = "x"\n\n[[queues]]\nname = "a"\n'



def _shares(*entries) -> str:
    """MINIMAL with a share tree; entry k's path is on line 8 + 3k."""
    return MINIMAL + "[fairshare]\n" + "".join(f'[[fairshare.share]]\npath = "{path}"\nshare = {share}\n'
                                                for path, share in entries)


BAD = {
    "missing": (None, "no such file"),
    "empty": ("", "empty"),
    "binary": (b"\x00\x01\x02\xffTOML?", "binary file"),
    "broken": ('[site]\nname = "x"\n[[queues]\nname = "a"\n', ":3: not valid TOML"),
    "unknown-key": (MINIMAL + "per_domian_jobs = 2\n", ":6: queues[0].per_domian_jobs: unknown key"),
    "wrong-type": (MINIMAL + 'per_domain_jobs = "two"\n', ":6: queues[0].per_domain_jobs: expected an integer"),
    "repeated-share": (MINIMAL + '[fairshare]\n[[fairshare.share]]\npath = "atlas"\nshare = 1\n'
                       '[[fairshare.share]]\npath = "atlas"\nshare = 2\n',
                       ":11: fairshare.share[1].path: share 'atlas' is listed twice"),
    "unknown-route": ('[site]\nname = "x"\n[[queues]]\nname = "r"\nkind = "routing"\n'
                      'destinations = ["a", "nowhere"]\n[[queues]]\nname = "a"\n',
                      ":6: queues[0].destinations: routing destination 'nowhere' is not a defined queue"),
    "not-utf8": (b'[site]\nname = "\xe9t\xe9"\n', ":2: not UTF-8"),
    "bad-duration": ('[site]\nname = "x"\n[scheduler]\ncycle_interval = "soon"\n[[queues]]\nname = "a"\n',
                     ":4: scheduler.cycle_interval: expected a duration"),
    "routing-loop": ('[site]\nname = "x"\n[[queues]]\nname = "a"\nkind = "routing"\ndestinations = ["b"]\n'
                     '[[queues]]\nname = "b"\nkind = "routing"\ndestinations = ["a"]\n', "routing loop a -> b -> a"),
    "class-unknown": (MINIMAL + '[preemption]\nclasses = ["normal"]\n[[preemption.rule]]\nclass = "vip"\n'
                      'interactive = true\n', ":9: preemption.rule[0].class: 'vip' is not one of classes"),
    "cap-range": (MINIMAL + "per_domain_jobs = 0\n", ":6: queues[0].per_domain_jobs: expected 1 (one-way)"),
    "share-after-mode": (MINIMAL + '[preemption]\nmode = "requeue"\nshare_after = "5m"\n',
                         "preemption.share_after: share preemption freezes whole domains: it needs "
                         'mode = "suspend-domain"'),
    "share-after-duration": (MINIMAL + '[preemption]\nshare_after = "later"\n',
                             ":7: preemption.share_after: expected a duration"),
    # usage is charged to vo/group/user: a share entry off those levels would take none of it
    "share-group-as-vo": (_shares(("meta", 60), ("egee", 40), ("egee/atlas", 50), ("atlas", 10), ("atlas/alice", 1)),
                          ":20: fairshare.share[4].path: 'atlas' is both a top-level entry and a group of VO 'egee' "
                          "(share[2]), so 'atlas/alice' is a level too low; write 'egee/atlas/alice' and drop the "
                          "top-level 'atlas'"),
    "share-group-not-vo": (_shares(("meta", 60), ("meta/group1", 1), ("group1/alice", 1)),
                           ":14: fairshare.share[2].path: 'group1' is a group of VO 'meta' (share[1]), not a VO, "
                           "so 'group1/alice' is a level too low; write 'meta/group1/alice'"),
    "share-too-deep": (_shares(("a", 1), ("a/b", 1), ("a/b/c", 1), ("a/b/c/d", 1)),
                       ":17: fairshare.share[3].path: expected a path vo, vo/group or vo/group/user, got 4 levels "
                       "in 'a/b/c/d': usage is charged to a job's VO, group and user only"),
    "bookkeeping-unknown": (MINIMAL + '[fairshare]\nbookkeeping = "maui"\n',
                            ':7: fairshare.bookkeeping: expected "vmsched" or "openpbs", got \'maui\''),
    "host-disk-not-a-size": (MINIMAL + '[[hosts]]\nname = "h1"\ncores = 4\nmemory = "8gb"\ndisk = "lots"\n',
                             ":10: hosts[0].disk: expected a size like 1700mb or 2gb, got 'lots'"),
    "host-disk-negative": (MINIMAL + '[[hosts]]\nname = "h1"\ncores = 4\nmemory = "8gb"\ndisk = -1\n',
                           ":10: hosts[0].disk: expected a disk size >= 0, got -1"),
    "flavor-disk-wrong-type": (MINIMAL + '[[flavors]]\nname = "f"\ncores = 1\nmemory = "1gb"\ndisk = 1.5\n',
                               ':10: flavors[0].disk: expected a disk size like "500gb" or a number of GB, got a float'),
    "flavor-disk-fits-no-host": (MINIMAL + '[[flavors]]\nname = "big"\ncores = 1\nmemory = "1gb"\ndisk = "2tb"\n'
                                 '[[hosts]]\nname = "h[1-2]"\ncores = 4\nmemory = "8gb"\ndisk = "500gb"\n',
                                 ":10: flavors[0].disk: flavor 'big' needs 2048 GB of disk, no host has that much "
                                 "(the most: 500 GB)"),
    "host-domains-disk": (MINIMAL + '[[hosts]]\nname = "h1"\ncores = 16\nmemory = "32gb"\ndisk = "500gb"\n'
                          'domains = [ { image = "i", flavor = "whole-hard" } ]\n[[images]]\nname = "i"\nvos = ["v"]\n',
                          ":10: hosts[0].disk: its domains take 800 GB of disk, the host has 500 GB"),
    "unknown-image-in-host": (MINIMAL + '[[hosts]]\nname = "h1"\ncores = 4\nmemory = "8gb"\n'
                              'domains = [ { image = "ghost", flavor = "small" } ]\n',
                              "hosts[0].domains[0].image: image 'ghost' is not defined"),
}


def _write(tmp_path: Path, name: str, content) -> Path:
    p = tmp_path / f"{name}.toml"
    if content is None:
        return p
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_policy_is_one_clear_line(tmp_path, case):
    content, expected = BAD[case]
    path = _write(tmp_path, case, content)
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    assert len(e.value.problems) == 1, e.value.problems
    line = e.value.problems[0]
    assert str(path) in line and expected in line and "\n" not in line


@pytest.mark.parametrize("case", ["missing", "empty", "binary", "broken", "unknown-key", "wrong-type",
                                  "repeated-share", "unknown-route", "share-group-as-vo", "share-too-deep",
                                  "flavor-disk-fits-no-host"])
def test_check_command_exits_2_without_traceback(tmp_path, case):
    content, expected = BAD[case]
    path = _write(tmp_path, case, content)
    r = subprocess.run([sys.executable, "-m", "vmsched.cli", "check", str(path)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]


def test_all_problems_are_reported_at_once(tmp_path):
    text = MINIMAL + 'per_domain_jobs = "x"\nkind = "sideways"\n[[hosts]]\nname = "h"\ncores = 0\nmemory = "1gb"\n'
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "p.toml")
    assert len(e.value.problems) == 3
    assert all(p.startswith("p.toml:") for p in e.value.problems)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_pass(path):
    r = subprocess.run([sys.executable, "-m", "vmsched.cli", "check", str(path)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_example_semantics():
    mc = load_policy(ROOT / "vmsched/examples/metacenter.toml")
    assert all(h.max_active == 1 for h in mc.hosts)
    assert mc.preemption.classes[-1] == "interactive" and mc.preemption.mode == "suspend-domain"
    cern = load_policy(ROOT / "vmsched/examples/cern.toml")
    assert cern.queues["grid"].destinations == ("cms_short", "oneway_long", "oneway")
    assert cern.queues["cms_short"].per_domain_jobs == 2 and cern.queues["oneway"].per_domain_jobs == 1
    wn = load_policy(ROOT / "vmsched/examples/wnodes.toml")
    assert {f.name for f in wn.flavors.values()} >= {"small", "medium", "large", "xl", "wn-hard", "wn-soft"}
    assert wn.flavors["small"].cores == 1 and wn.flavors["xl"].memory_mb == 14336
    assert sum(1 for h in wn.hosts if h.owner == "tier3") == 8
    assert wn.lifecycle.bind_on_boot


def test_hostlist_expansion_keeps_padding():
    assert expand_hostlist("wn[008-011]") == ["wn008", "wn009", "wn010", "wn011"]
    assert expand_hostlist("a[1-2]-b[1-2]") == ["a1-b1", "a1-b2", "a2-b1", "a2-b2"]
    with pytest.raises(ValueError):
        expand_hostlist("wn[9-1]")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_a_policy_or_a_policy_error(text):
    """Whatever an admin types, the parser answers with a Policy or a PolicyError."""
    try:
        parse_policy(text, "fuzz.toml")
    except PolicyError as e:
        assert e.problems and all(p.startswith("fuzz.toml") for p in e.problems)


_SHARE_NAMES = st.sampled_from(["meta", "egee", "atlas", "cms", "alice"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(_SHARE_NAMES, min_size=1, max_size=5), st.integers(1, 100)), max_size=8))
def test_any_share_tree_loads_at_charged_depths_or_is_refused_line_by_line(entries):
    """Share trees from a few names that are VOs, groups and users at once, 1 to 5 levels
    deep: a tree that loads lists only paths usage can reach (vo, vo/group, vo/group/user,
    never starting at a group of a VO); one that does not names file, line and key for each
    problem, each on one line."""
    written = ["/".join(path) for path, _ in entries]
    text = _shares(*zip(written, (share for _, share in entries)))
    try:
        policy = parse_policy(text, "fuzz.toml")
    except PolicyError as e:
        lines = text.splitlines()
        for problem in e.problems:
            assert "\n" not in problem
            head, line, key, _ = problem.split(":", 3)
            assert head == "fuzz.toml" and key.strip().startswith("fairshare.share[")
            k = int(key.split("[")[1].split("]")[0])
            assert lines[int(line) - 1] == f'path = "{written[k]}"'
        return
    paths = [path for path, _ in policy.fairshare.shares]
    top = {p[0] for p in paths if len(p) == 1}
    groups = {p[1] for p in paths if len(p) == 2 and p[0] in top and p[0] != p[1]}
    assert all(len(p) <= 3 for p in paths)
    assert not any(len(p) > 1 and p[0] in groups for p in paths)


def test_bookkeeping_defaults_to_vmsched_so_no_site_changes():
    assert parse_policy(MINIMAL, "p.toml").fairshare.bookkeeping == "vmsched"
    assert parse_policy(MINIMAL + '[fairshare]\nbookkeeping = "openpbs"\n', "p.toml").fairshare.bookkeeping == "openpbs"
    for path in EXAMPLES:
        assert load_policy(path).fairshare.bookkeeping == "vmsched"


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=12).map(json.dumps), st.integers().map(str), st.sampled_from(
    ['"vmsched"', '"openpbs"', '"OpenPBS"', "true", "[]", "{}", "1.5", '""'])))
def test_any_bookkeeping_value_is_taken_or_refused_in_one_line(value):
    try:
        policy = parse_policy(MINIMAL + f"[fairshare]\nbookkeeping = {value}\n", "fuzz.toml")
    except PolicyError as e:
        assert len(e.problems) == 1
        problem = e.problems[0]
        assert "\n" not in problem
        assert problem.startswith("fuzz.toml:7: fairshare.bookkeeping: expected ") or "not valid TOML" in problem
        return
    assert policy.fairshare.bookkeeping in ("vmsched", "openpbs")
