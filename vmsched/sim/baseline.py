"""The static-partition baseline: each VO on its own fixed hosts, no VM sharing.

The KIT seed claims a dynamically partitioned cluster beats isolated per-group clusters.
To measure that on a trace, :func:`static_split` turns a policy into its isolated twin on
the *same hosts*: every host is given to one VO for good, in proportion to the VOs'
top-level fair shares (by cores, largest deficit first), and runs one domain the size of
the whole host, like a plain batch node: as many jobs as fit its cores and memory.

The partition is by VO, not by image. Grid sites ran one worker-node image for every VO
(an LCG site: five VOs, one SLC image); splitting by image would then split nothing and
report the dynamic run's figures twice. So each VO's hosts carry the VO's *own copy* of
its image (``slc@atlas``, ``slc@cms``; an image no other VO in the split uses keeps its
name), open to that VO alone, and a job that names its image explicitly is pointed at its
VO's copy (:meth:`StaticSplit.job`). Nothing boots, nothing moves between VOs, and
preemption can only freeze jobs inside a domain (``suspend-domain`` becomes
``suspend-jobs``: there is no second domain to switch to). Everything else (queues,
classes, priorities, fair share inside a VO, the ``[trace]`` mapping) is kept, so both
runs replay the same jobs.

A VO with no top-level share gets no hosts, and its jobs are reported never runnable; a
split of one VO is no split at all, which :attr:`StaticSplit.cannot_differ` says so that a
comparison prints that instead of two columns that cannot differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from vmsched.model import Flavor, Host, Job
from vmsched.policyfile import MAX_PER_DOMAIN_JOBS, Policy, PolicyError

__all__ = ["static_baseline", "static_split", "StaticSplit", "VoHosts", "STATIC_FLAVOR", "partition_hosts"]

STATIC_FLAVOR = Flavor("static-node", 0, 0, 0, whole_node="hard", memory_mb_per_core=1 << 30)
"""A whole-host domain with all of the host's memory."""


def _communities(policy: Policy, vos: Iterable[str] = ()) -> list[tuple[str, float, str]]:
    """(vo, share, image) for each top-level share that some image serves; with no
    top-level shares at all, the VOs ``vos`` (those of the trace), in equal shares."""
    shares = [(p[0], float(s)) for p, s in policy.fairshare.shares if len(p) == 1]
    if not shares:
        shares = [(vo, 1.0) for vo in sorted(set(vos))]
    out = []
    for vo, share in shares:
        images = policy.images_for(vo, vo)
        if images:
            out.append((vo, share, images[0]))
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


@attrs.frozen(slots=True)
class VoHosts:
    """One VO's part of the split: its share, the image its hosts run (its own copy of
    ``source_image``) and the hosts."""

    vo: str
    share: float
    image: str
    source_image: str
    hosts: tuple[str, ...]
    cores: int


@attrs.frozen(slots=True)
class StaticSplit:
    """A policy's static twin (``policy``), what it gave each VO (``parts``) and how jobs
    that name an image find their VO's copy (``copies``: (vo, image) -> the copy)."""

    policy: Policy
    parts: tuple[VoHosts, ...]
    copies: Mapping[tuple[str, str], str]
    unserved: tuple[str, ...] = ()     # VOs of the trace without a part: no hosts, their jobs never run

    @property
    def cannot_differ(self) -> str | None:
        """Why a comparison with the dynamic run would split nothing, or None."""
        if len(self.parts) < 2:
            vo = self.parts[0].vo if self.parts else "none"
            return (f"nothing to split: only VO {vo} has a share served by an image, so a static split by VO "
                    "gives it every host")
        return None

    def job(self, job: Job) -> Job:
        """The job as the static twin runs it: one that names an image of its VO uses the
        VO's copy (the original is on no host of the split)."""
        if job.image is None:
            return job
        copy = self.copies.get((job.vo, job.image))
        return job if copy is None or copy == job.image else attrs.evolve(job, image=copy)

    def lines(self) -> list[str]:
        """What the report says about the split: the rule, then one line per VO."""
        shared = sorted({p.source_image for p in self.parts if p.image != p.source_image})
        out = ["static baseline: the hosts partitioned by VO share; each VO's hosts run only its jobs, in one "
               "whole-host domain each (no VM sharing, no domain switching, no share preemption)"]
        if shared:
            out.append(f"image{'s' if len(shared) > 1 else ''} {', '.join(shared)} shared by several VOs: each VO's "
                       "hosts run its own copy")
        for p in self.parts:
            out.append(f"  {p.vo} (share {p.share:g}, image {p.image}): {len(p.hosts)} hosts, {p.cores} cores")
        for vo in self.unserved:
            out.append(f"  {vo}: no hosts (no top-level share served by an image), its jobs never run")
        if self.cannot_differ:
            out.append(self.cannot_differ)
        return out

    def report(self) -> dict:
        """The same as plain data, for the JSON report."""
        return {"rule": "hosts partitioned by VO share; each VO's hosts run only its jobs",
                "parts": [{"vo": p.vo, "share": p.share, "image": p.image, "source_image": p.source_image,
                           "hosts": len(p.hosts), "cores": p.cores} for p in self.parts],
                "vos_without_hosts": list(self.unserved), "cannot_differ": self.cannot_differ,
                "lines": self.lines()}


def static_split(policy: Policy, vos: Iterable[str] = ()) -> StaticSplit:
    """The policy's isolated twin on the same hosts (see the module text). ``vos``: the
    VOs of the trace, split equally when the policy has no top-level shares, and named in
    the report when they get no hosts."""
    vos = tuple(vos)
    parts = _communities(policy, vos)
    if not parts:
        raise PolicyError([f"{policy.source}: cannot build a static baseline: no VO with a share is served by "
                           "an image"])
    if not policy.hosts:
        raise PolicyError([f"{policy.source}: cannot build a static baseline without hosts"])
    if len(policy.hosts) < len(parts):
        raise PolicyError([f"{policy.source}: cannot build a static baseline: {len(policy.hosts)} hosts for "
                           f"{len(parts)} VOs"])
    split = partition_hosts(policy.hosts, parts)
    users = {}
    for vo, _s, image in parts:
        users.setdefault(image, []).append(vo)
    # each VO's own image: the original where no other VO of the split uses it, else a copy
    image_of = {vo: image if len(users[image]) == 1 else f"{image}@{vo}" for vo, _s, image in parts}
    images = {}
    for vo, _s, image in parts:
        src = policy.images[image]
        images[image_of[vo]] = attrs.evolve(src, name=image_of[vo], vos=frozenset({vo}))
    # a job naming any image its VO may use runs in the VO's copy
    copies = {(vo, name): image_of[vo] for vo, _s, _i in parts for name in policy.images_for(vo, vo)}
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
    queues = {}
    for n, q in policy.queues.items():
        q = attrs.evolve(q, per_domain_jobs=MAX_PER_DOMAIN_JOBS)
        if q.images:   # a queue that serves some images serves their copies
            q = attrs.evolve(q, images=frozenset(c for (_vo, src), c in copies.items() if src in q.images))
        queues[n] = q
    pre = policy.preemption
    if pre.mode == "suspend-domain":
        pre = attrs.evolve(pre, mode="suspend-jobs")
    # nothing moves between VOs: no owner reclaim, no share preemption
    pre = attrs.evolve(pre, owner_reclaim=False, share_after_s=None)
    lc = attrs.evolve(policy.lifecycle, dynamic_boot=False, warm_pool=(), idle_shutdown_s=1e15)
    fs = attrs.evolve(policy.fairshare, image_shares=False)
    twin = attrs.evolve(policy, source=f"{policy.source} [static baseline]", site=f"{policy.site} (static split)",
                        flavors=flavors, images=images, hosts=tuple(hosts), queues=queues, preemption=pre,
                        lifecycle=lc, fairshare=fs, domains_per_host=tuple(templates))
    by_name = {h.name: h for h in policy.hosts}
    vo_hosts = tuple(VoHosts(vo, share, image_of[vo], image, tuple(h.name for h in split[vo]),
                             sum(by_name[h.name].cores for h in split[vo])) for vo, share, image in parts)
    unserved = tuple(sorted(set(vos) - {vo for vo, _s, _i in parts}))
    return StaticSplit(twin, vo_hosts, copies, unserved)


def static_baseline(policy: Policy, vos: Iterable[str] = ()) -> Policy:
    """The static twin's policy alone (see :func:`static_split`)."""
    return static_split(policy, vos).policy
