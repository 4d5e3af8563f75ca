"""The static-partition baseline: each VO on its own fixed hosts, no VM sharing.

The KIT seed claims a dynamically partitioned cluster beats isolated per-group clusters.
To measure that on a trace, :func:`static_baseline` turns a policy into its isolated
twin on the *same hosts*: every host is given to one VO for good, in proportion to the
VOs' top-level fair shares (by cores, largest deficit first), and runs one domain of that
VO's image the size of the whole host, like a plain batch node: as many jobs as fit its
cores and memory. Nothing boots, nothing moves between VOs, and preemption can only
freeze jobs inside a domain (``suspend-domain`` becomes ``suspend-jobs``: there is no
second domain to switch to). Everything else (queues, classes, priorities, fair share
inside a VO, the ``[trace]`` mapping) is kept, so both runs replay the same jobs.
"""

from __future__ import annotations

import attrs

from vmsched.model import Flavor, Host
from vmsched.policyfile import MAX_PER_DOMAIN_JOBS, Policy, PolicyError

__all__ = ["static_baseline", "STATIC_FLAVOR", "partition_hosts"]

STATIC_FLAVOR = Flavor("static-node", 0, 0, 0, whole_node="hard", memory_mb_per_core=1 << 30)
"""A whole-host domain with all of the host's memory."""


def _communities(policy: Policy) -> list[tuple[str, float, str]]:
    """(vo, share, image) for each top-level share that some image serves."""
    out = []
    shares = [(p[0], s) for p, s in policy.fairshare.shares if len(p) == 1]
    if not shares:
        seen = set()
        for name in sorted(policy.images):
            vos = sorted(policy.images[name].vos)
            if vos and vos[0] not in seen:
                seen.add(vos[0])
                shares.append((vos[0], 1.0))
    for vo, share in shares:
        images = policy.images_for(vo, vo)
        if images:
            out.append((vo, float(share), images[0]))
    return out


def partition_hosts(hosts: tuple[Host, ...], parts: list[tuple[str, float, str]]) -> dict[str, list[Host]]:
    """Hosts to VOs by cores, in proportion to share: biggest hosts first, each to the VO
    furthest below its target (relative deficit), every VO at least one host if possible."""
    total_share = sum(s for _, s, _ in parts)
    total_cores = sum(h.cores for h in hosts)
    target = {vo: total_cores * s / total_share for vo, s, _ in parts}
    got = {vo: 0 for vo, _, _ in parts}
    out: dict[str, list[Host]] = {vo: [] for vo, _, _ in parts}
    ordered = sorted(hosts, key=lambda h: (-h.cores, -h.memory_mb, h.name))
    # Reserve one host per VO first (smallest hosts, smallest shares), so no VO is left without any.
    for (vo, _s, _i), h in zip(sorted(parts, key=lambda p: (p[1], p[0])), reversed(ordered)):
        out[vo].append(h)
        got[vo] += h.cores
    reserved = {h.name for lst in out.values() for h in lst}
    for h in ordered:
        if h.name in reserved:
            continue
        vo = min(got, key=lambda v: ((got[v] + h.cores) / target[v] if target[v] else float("inf"), v))
        out[vo].append(h)
        got[vo] += h.cores
    return out


def static_baseline(policy: Policy) -> Policy:
    """The policy's isolated twin on the same hosts (see the module text)."""
    parts = _communities(policy)
    if not parts:
        raise PolicyError([f"{policy.source}: cannot build a static baseline: no VO with a share is served by "
                           "an image"])
    if not policy.hosts:
        raise PolicyError([f"{policy.source}: cannot build a static baseline without hosts"])
    if len(policy.hosts) < len(parts):
        raise PolicyError([f"{policy.source}: cannot build a static baseline: {len(policy.hosts)} hosts for "
                           f"{len(parts)} VOs"])
    split = partition_hosts(policy.hosts, parts)
    image_of = {vo: image for vo, _, image in parts}
    hosts = []
    templates = []
    for vo in sorted(split):
        for h in split[vo]:
            hosts.append(attrs.evolve(h, max_active=1, max_domains=1, owner=None,
                                      cached_images=frozenset({image_of[vo]})))
            templates.append((h.name, image_of[vo], STATIC_FLAVOR.name, 1))
    order = {h.name: i for i, h in enumerate(policy.hosts)}
    hosts.sort(key=lambda h: order[h.name])
    templates.sort(key=lambda t: order[t[0]])
    flavors = dict(policy.flavors)
    flavors[STATIC_FLAVOR.name] = STATIC_FLAVOR
    queues = {n: attrs.evolve(q, per_domain_jobs=MAX_PER_DOMAIN_JOBS) for n, q in policy.queues.items()}
    pre = policy.preemption
    if pre.mode == "suspend-domain":
        pre = attrs.evolve(pre, mode="suspend-jobs")
    # nothing moves between VOs: no owner reclaim, no share preemption
    pre = attrs.evolve(pre, owner_reclaim=False, share_after_s=None)
    lc = attrs.evolve(policy.lifecycle, dynamic_boot=False, warm_pool=(), idle_shutdown_s=1e15)
    fs = attrs.evolve(policy.fairshare, image_shares=False)
    return attrs.evolve(policy, source=f"{policy.source} [static baseline]", site=f"{policy.site} (static split)",
                        flavors=flavors, hosts=tuple(hosts), queues=queues, preemption=pre, lifecycle=lc,
                        fairshare=fs, domains_per_host=tuple(templates))


def describe(policy: Policy) -> list[str]:
    """One line per VO: its hosts and cores in the baseline."""
    by_vo: dict[str, list] = {}
    imgs = {}
    for host, image, _fl, _n in policy.domains_per_host:
        by_vo.setdefault(image, []).append(host)
        imgs[image] = policy.images[image]
    hosts = {h.name: h for h in policy.hosts}
    out = []
    for image in sorted(by_vo):
        names = by_vo[image]
        out.append(f"{'/'.join(sorted(imgs[image].vos))} ({image}): {len(names)} hosts, "
                   f"{sum(hosts[n].cores for n in names)} cores")
    return out


__all__ += ["describe"]
