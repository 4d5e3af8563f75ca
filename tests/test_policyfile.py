"""Policy files: every bad input is one line naming file, line, key and what was expected."""

from __future__ import annotations

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
                                  "repeated-share", "unknown-route"])
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
