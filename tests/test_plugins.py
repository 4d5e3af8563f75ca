"""Site plugins at the cycle's extension points, named in the policy file."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import attrs
import pytest

from vmsched.cycle import Scheduler
from vmsched.matching import PyEngine
from vmsched.model import Domain, DomainState, Job, JobState, Snapshot
from vmsched.policyfile import load_policy, parse_policy
from vmsched.usage import UsageStore

EX = Path(__file__).resolve().parents[1] / "vmsched" / "examples"
SITE = "vmsched_test_site_plugins"


@pytest.fixture(scope="module", autouse=True)
def site_plugins(tmp_path_factory):
    """tests/site_plugins.py as the module ``vmsched_test_site_plugins``, from a directory and a
    file only their owner can write: plugins are refused from group- or world-writable files
    (README, "Plugins"), and a checkout made under umask 002 is group-writable."""
    where = tmp_path_factory.mktemp("plugins")
    where.chmod(0o755)
    shutil.copy(Path(__file__).with_name("site_plugins.py"), where / f"{SITE}.py")
    (where / f"{SITE}.py").chmod(0o644)
    sys.path.insert(0, str(where))
    yield SITE
    sys.path.remove(str(where))
    sys.modules.pop(SITE, None)


def _policy(**plugins):
    p = load_policy(EX / "cern.toml")
    return attrs.evolve(p, plugins=plugins, lifecycle=attrs.evolve(p.lifecycle, dynamic_boot=False, warm_pool=()))


def _snap(p, n_jobs=3, n_domains=3):
    doms = [Domain(f"lxb00{i + 1}-d", f"lxb00{i + 1}", "slc4", "small", DomainState.FREE, 1, 1740)
            for i in range(n_domains)]
    jobs = [Job(f"j{i}", "bob", "atlas", "atlas", "oneway", 1, 1000, 3600, 100.0 - i) for i in range(n_jobs)]
    return Snapshot(200.0, p.hosts, doms, jobs)


def _run(p, snap):
    return Scheduler(p, engine=PyEngine(), store=UsageStore(":memory:")).on_cycle(snap)


def test_filter_plugin_vetoes_a_domain_and_its_reason_reaches_the_job():
    p = _policy(filter=f"{SITE}:NoBlackHole")
    plan = _run(p, _snap(p, n_jobs=3, n_domains=3))
    runs = {a.job: a.domain for a in plan.actions if a.verb == "run"}
    assert "lxb001-d" not in runs.values() and len(runs) == 2
    (waiting,) = [j for j, _ in plan.pending]
    assert "host lxb001 is draining" in plan.reason(waiting).text


def test_queue_sort_and_score_plugins_take_the_python_path():
    p = _policy(queue_sort=f"{SITE}:OldestFirst", score=f"{SITE}:PreferHighNumbers")
    plan = _run(p, _snap(p, n_jobs=2, n_domains=3))
    runs = [(a.job, a.domain) for a in plan.actions if a.verb == "run"]
    assert runs == [("j1", "lxb003-d"), ("j0", "lxb002-d")]


def test_pre_filter_keeps_a_job_out_of_this_cycle():
    p = _policy(pre_filter=f"{SITE}:MaxTwoRunningPerUser")
    s = Scheduler(p, engine=PyEngine(), store=UsageStore(":memory:"))
    s.plugins["pre_filter"].running["bob"] = 2
    plan = s.on_cycle(_snap(p))
    assert not [a for a in plan.actions if a.verb == "run"]
    assert all("already runs 2 jobs" in r.text for _, r in plan.pending)


def test_preempt_plugin_can_refuse():
    text = (EX / "metacenter.toml").read_text() + f'\n[plugins]\npreempt = "{SITE}:NeverPreempt"\n'
    p = parse_policy(text, "mc.toml")
    from vmsched.policyfile import initial_domains
    doms = initial_domains(p)
    jobs = [Job(f"r-{d.name}", "u", "meta", "meta", "normal", 4, 7000, 9000, 0.0, state=JobState.RUNNING,
                domain=d.name, start_time=1.0) for d in doms if d.state is DomainState.FREE]
    jobs.append(Job("i", "u", "meta", "meta", "normal", 1, 1000, 600, 50.0, interactive=True))
    plan = Scheduler(p, engine=PyEngine(), store=UsageStore(":memory:")).on_cycle(Snapshot(100.0, p.hosts, doms, jobs))
    assert not [a for a in plan.actions if a.verb == "suspend-domain"]
    assert "maintenance window" in plan.reason("i").text


def test_a_plugin_that_cannot_load_is_named():
    p = _policy(filter=f"{SITE}:Broken")
    with pytest.raises(ValueError, match=f"plugin {SITE}:Broken: cannot load: RuntimeError"):
        Scheduler(p, engine=PyEngine(), store=UsageStore(":memory:"))
