"""Hypothesis strategies: random sites written as real policy files, and random job streams."""

from __future__ import annotations

from hypothesis import strategies as st

from vmsched.model import Job, JobState, Snapshot
from vmsched.policyfile import initial_domains, parse_policy

VOS = ["atlas", "cms", "lhcb", "meta"]
MODES = ["suspend-domain", "suspend-jobs", "requeue", "none"]


@st.composite
def policies(draw, *, mode=None, dynamic=None):
    """A policy file's text for a random site, then parsed by the real parser."""
    n_images = draw(st.integers(1, 3))
    images = []
    for i in range(n_images):
        vos = draw(st.lists(st.sampled_from(VOS), min_size=1, max_size=3, unique=True))
        images.append((f"img{i}", vos))
    caps = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    classes = ["low", "normal", "high"]
    mode = mode or draw(st.sampled_from(MODES))
    dyn = draw(st.booleans()) if dynamic is None else dynamic
    lines = ["[site]", 'name = "prop"', "[scheduler]", 'cycle_interval = "60s"',
             "[priority]", f"fairshare = {draw(st.sampled_from([0, 100, 10000]))}",
             f"class = {draw(st.sampled_from([0, 1000]))}", "age = 1",
             "[fairshare]", 'half_life = "1d"']
    for vo in VOS[: draw(st.integers(0, 4))]:
        lines += ["[[fairshare.share]]", f'path = "{vo}"', f"share = {draw(st.integers(1, 5)) * 10}"]
    share_after = draw(st.sampled_from([None, "0s", "10m"])) if mode == "suspend-domain" else None
    lines += ["[preemption]", f"classes = {classes!r}".replace("'", '"'), 'default_class = "normal"',
              f'mode = "{mode}"'] + ([f'share_after = "{share_after}"'] if share_after else []) + ["[[preemption.rule]]", "interactive = true", 'class = "high"',
              "[[preemption.rule]]", 'group = "lhcb"', 'class = "low"',
              "[lifecycle]", f"dynamic_boot = {'true' if dyn else 'false'}",
              f"max_concurrent_boots = {draw(st.integers(1, 4))}", 'idle_shutdown = "30m"']
    for name, vos in images:
        lines += ["[[images]]", f'name = "{name}"', f"vos = {vos!r}".replace("'", '"'), 'boot_time = "60s"']
    qnames = []
    for i, cap in enumerate(caps):
        lines += ["[[queues]]", f'name = "q{i}"', f"per_domain_jobs = {cap}"]
        if draw(st.booleans()):
            lines.append(f'resources_max = {{ walltime = "{draw(st.integers(1, 20))}:00:00" }}')
        if draw(st.booleans()):
            lines.append(f"groups = {draw(st.lists(st.sampled_from(VOS), min_size=1, max_size=3, unique=True))!r}"
                         .replace("'", '"'))
        qnames.append(f"q{i}")
    lines += ["[[queues]]", 'name = "route"', 'kind = "routing"',
              f"destinations = {draw(st.permutations(qnames))!r}".replace("'", '"')]
    n_hosts = draw(st.integers(1, 4))
    for i in range(n_hosts):
        cores = draw(st.sampled_from([2, 4, 8]))
        max_active = draw(st.integers(1, 2))
        max_domains = draw(st.integers(1, 3))
        lines += ["[[hosts]]", f'name = "h{i}"', f"cores = {cores}", f'memory = "{cores * 2}gb"',
                  f"max_active = {max_active}", f"max_domains = {max_domains}"]
        if draw(st.booleans()):
            lines.append('features = ["ib"]')
        if draw(st.integers(0, 4)) == 0:
            lines.append(f'owner = "{draw(st.sampled_from(VOS))}"')
        doms = []
        for k in range(draw(st.integers(0, max_domains))):
            im = draw(st.sampled_from(images))[0]
            fl = draw(st.sampled_from(["small", "medium", "large"] if cores >= 4 else ["small", "medium"]))
            doms.append(f'{{ image = "{im}", flavor = "{fl}" }}')
        if doms:
            lines.append(f"domains = [{', '.join(doms)}]")
    text = "\n".join(lines) + "\n"
    return parse_policy(text, "prop.toml")


def start_domains(policy):
    """Domains as the policy defines them, deactivated where a host's capacity runs out."""
    import attrs
    from vmsched.model import DomainState
    hosts = {h.name: h for h in policy.hosts}
    used: dict[str, tuple[int, int, int]] = {}
    out = []
    for d in initial_domains(policy):
        n, c, m = used.get(d.host, (0, 0, 0))
        h = hosts[d.host]
        if d.state is DomainState.FREE and n < h.max_active and c + d.cores <= h.cores and m + d.memory_mb <= h.memory_mb:
            used[d.host] = (n + 1, c + d.cores, m + d.memory_mb)
        else:
            d = attrs.evolve(d, state=DomainState.OCCUPIED)
        out.append(d)
    return out


@st.composite
def jobs(draw, policy, start: int = 0, now: float = 1000.0, n=None):
    count = draw(st.integers(0, 12)) if n is None else n
    out = []
    queues = sorted(policy.queues)
    for i in range(count):
        vo = draw(st.sampled_from(VOS * 3 + ["nobody"]))
        out.append(Job(
            f"{start + i}.srv", f"u{draw(st.integers(0, 3))}", vo, vo, draw(st.sampled_from(queues)),
            draw(st.sampled_from([1, 1, 1, 2, 2, 4, 16])), draw(st.sampled_from([0, 500, 1700, 3000, 9000])),
            draw(st.sampled_from([600, 3600, 36000, 100000])), now - draw(st.integers(0, 900)),
            interactive=draw(st.integers(0, 5)) == 0,
            features=frozenset(["ib"]) if draw(st.integers(0, 6)) == 0 else frozenset(),
            state=JobState.QUEUED,
            # now and then a job names a flavor (issue 9), one the policy lacks too
            flavor=draw(st.sampled_from([None] * 12 + ["small", "large", "whole-hard", "whole-soft", "nope"]))))
    return out


@st.composite
def magrathea_policies(draw):
    """A MetaCenter-like site with share preemption on: every host carries one whole-host
    domain per image, one of them active; two VOs with shares, one image each."""
    lines = ["[site]", 'name = "magrathea"', "[scheduler]", 'cycle_interval = "60s"',
             "[priority]", "fairshare = 10000", "class = 1000", "age = 1",
             "[fairshare]", 'half_life = "1d"',
             "[[fairshare.share]]", 'path = "atlas"', f"share = {draw(st.integers(1, 5)) * 10}",
             "[[fairshare.share]]", 'path = "cms"', f"share = {draw(st.integers(1, 5)) * 10}",
             "[preemption]", 'classes = ["low", "normal", "high"]', 'default_class = "normal"',
             'mode = "suspend-domain"', f'share_after = "{draw(st.sampled_from(["0s", "5m", "30m"]))}"',
             "[[preemption.rule]]", "interactive = true", 'class = "high"',
             "[[preemption.rule]]", 'group = "lhcb"', 'class = "low"',
             "[lifecycle]", "dynamic_boot = false", 'idle_shutdown = "365d"',
             "[[images]]", 'name = "img-atlas"', 'vos = ["atlas"]',
             "[[images]]", 'name = "img-cms"', 'vos = ["cms", "lhcb"]',
             "[[queues]]", 'name = "q"', f"per_domain_jobs = {draw(st.integers(1, 8))}"]
    first = draw(st.sampled_from(["img-atlas", "img-cms"]))
    order = [first] + [i for i in ("img-atlas", "img-cms") if i != first]
    for i in range(draw(st.integers(2, 5))):
        cores = draw(st.sampled_from([4, 8, 8, 16]))
        lines += ["[[hosts]]", f'name = "h{i}"', f"cores = {cores}", f'memory = "{cores * 2}gb"',
                  "max_active = 1", "max_domains = 2",
                  "domains = [" + ", ".join(f'{{ image = "{im}", flavor = "whole-hard" }}' for im in order) + "]"]
        if draw(st.booleans()):
            order.reverse()
    return parse_policy("\n".join(lines) + "\n", "magrathea.toml")


@st.composite
def sites(draw, **kw):
    """A random policy and a snapshot of its site: the domains it defines, random jobs queued."""
    policy = draw(policies(**kw))
    snap = Snapshot(1000.0, policy.hosts, start_domains(policy), draw(jobs(policy)))
    return policy, snap
