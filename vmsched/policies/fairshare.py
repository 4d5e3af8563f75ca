"""Hierarchical fair share: who has used less of the site than they were promised.

The site promises each VO a share of the machine, each VO divides its share among its
groups, each group among its users (any depth works). Jobs of entities that are behind their
promise should start first. The number that says how far behind is the *fair-share factor*,
computed here exactly as Slurm's "classic" algorithm (priority/multifactor with
``PriorityFlags=NO_FAIR_TREE``), which the fair share of OpenPBS and Maui resembles and
which sites migrating from those schedulers recognise:

For an entity ``n`` with raw share ``s`` among siblings whose raw shares add up to ``S``:

* normalised share ``S_norm(n) = S_norm(parent) * s / S`` (``S_norm(root) = 1``): the
  fraction of the whole machine promised to ``n``;
* normalised usage ``U_norm(n) = usage of n's subtree / usage of everything`` (0 while nobody
  has used anything);
* effective usage ``U_eff(n) = U_norm(n)`` for a VO (a child of the root), and below that
  ``U_eff(n) = U_norm(n) + (U_eff(parent) - U_norm(n)) * s / S``, so an entity inherits part
  of its parent's over- or under-use: a light user of a heavy VO still waits behind a light
  user of a light VO;
* factor ``F(n) = 2 ** (-U_eff(n) / S_norm(n))``: 1 for no usage, 0.5 for exactly the
  promised share, towards 0 for heavy over-use.

Factors are always in (0, 1]: a factor that would underflow is reported as ``2 ** -1022``
so that no entity ever reads as "no priority at all" and no NaN reaches the cycle.

Entities nobody listed
    A job may belong to a user (or group) the admin did not list. Rather than refusing the
    job, the missing entity is attached below its deepest listed ancestor with the tree's
    ``default_share`` (1.0 unless configured), and so is every missing level between: user
    ``("atlas", "prod", "zoe")`` joins the listed group ``("atlas", "prod")`` as a sibling of
    its listed users; ``("atlas", "calib", "zoe")`` with group ``calib`` unlisted first adds
    group ``calib`` under ``atlas`` with the default share, then ``zoe`` inside it. An
    unlisted entity exists only while it has usage or is asked about (``extra_paths``), so
    it dilutes its siblings' shares only while it competes.

Usage may also be charged to an inner entity (a group or a VO); it counts towards that
entity's subtree like its members' usage.

OpenPBS bookkeeping (``bookkeeping="openpbs"``)
    OpenPBS's scheduler (``src/scheduler/fairshare.cpp``) computes the same ``U_eff`` (its
    "fairshare_tree_usage") and factor (its ``fairshare_factor``,
    ``2 ** -(fairshare_tree_usage / fairshare_perc)``), but over usages that start at 1: every
    node of its tree, the root included, is created with usage 1, and a job's usage is added
    to its entity and every ancestor, so a node's own 1 never reaches its parent. Here that
    reads ``usage(n) = 1 + usage of n's subtree`` and ``U_norm(n) = usage(n) / usage(root)``.
    A site moving from OpenPBS gets its old factors for the same tree and usage; the 1 also
    means that with no usage at all every ``U_eff`` is 1 and an entity's factor is
    ``2 ** (-1 / S_norm)`` rather than 1, so bigger shares come first from the start.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Optional

import attrs

__all__ = [
    "EntityPath", "ShareTree", "ShareTreeError", "FairShare", "FairShareFigures",
    "usage_amount", "show_path", "CORE_SECONDS", "MEMORY_WEIGHTED", "USAGE_KINDS", "MIN_FACTOR",
    "VMSCHED", "OPENPBS", "BOOKKEEPINGS",
]

#: (vo,), (vo, group) or (vo, group, user); deeper paths work the same way. The root is ().
EntityPath = tuple[str, ...]
ROOT: EntityPath = ()

#: The smallest factor ever reported (2**-1022, the smallest normal double).
MIN_FACTOR = 2.0 ** -1022
_MAX_HALVINGS = 1022.0

CORE_SECONDS = "core-seconds"
MEMORY_WEIGHTED = "memory-weighted"
USAGE_KINDS = (CORE_SECONDS, MEMORY_WEIGHTED)

#: How usage becomes U_norm: "vmsched" (a node's usage is what was charged in its subtree) or
#: "openpbs" (every node starts at 1, as in OpenPBS's fair-share tree).
VMSCHED = "vmsched"
OPENPBS = "openpbs"
BOOKKEEPINGS = (VMSCHED, OPENPBS)


class ShareTreeError(ValueError):
    """Every problem found in a share tree, each a one-line string naming the path, so an
    admin fixes the policy file once instead of once per error."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems) if self.problems else "invalid share tree")


def show_path(path: EntityPath) -> str:
    """A path as admins write it: ``atlas/prod/alice`` (the root shows as ``<root>``)."""
    return "/".join(path) if path else "<root>"


def _path_problem(path: Any) -> Optional[str]:
    if (not isinstance(path, tuple) or not path
            or not all(isinstance(part, str) and part for part in path)):
        return f"entity {path!r}: path must be a non-empty tuple of non-empty names such as ('atlas', 'prod')"
    return None


def _share_problem(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"share must be a number, got {value!r}"
    if not math.isfinite(value) or not value > 0:
        return f"share must be a finite number > 0, got {value!r}"
    return None


def _tree_problems(entries: tuple[Any, ...], default_share: Any) -> list[str]:
    problems: list[str] = []
    problem = _share_problem(default_share)
    if problem:
        problems.append(f"default share: {problem}")
    seen: set[EntityPath] = set()
    listed: set[EntityPath] = set()
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, tuple) or len(entry) != 2:
            problems.append(f"entry {number}: expected (path, share), got {entry!r}")
            continue
        path, share = entry
        problem = _path_problem(path)
        if problem:
            problems.append(problem)
            continue
        listed.add(path)
        if path in seen:
            problems.append(f"entity {show_path(path)}: listed more than once")
        seen.add(path)
        problem = _share_problem(share)
        if problem:
            problems.append(f"entity {show_path(path)}: {problem}")
    for number, entry in enumerate(entries, 1):
        if isinstance(entry, tuple) and len(entry) == 2 and entry[0] in listed:
            path = entry[0]
            if len(path) > 1 and path[:-1] not in listed:
                problems.append(f"entity {show_path(path)}: its parent {show_path(path[:-1])} is not listed")
    # a path listed twice would otherwise report its missing parent twice
    return list(dict.fromkeys(problems))


@attrs.frozen(slots=True)
class ShareTree:
    """The promised shares: listed entities with their raw shares. Raw shares only mean
    something relative to siblings (VO shares 50/30/20 are the same promise as 5/3/2).

    Build with :meth:`from_entries`; direct construction validates the same way.
    """

    entries: tuple[tuple[EntityPath, float], ...] = attrs.field(converter=tuple)
    default_share: float = 1.0
    _shares: dict[EntityPath, float] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        problems = _tree_problems(self.entries, self.default_share)
        if problems:
            raise ShareTreeError(problems)
        ordered = tuple(sorted((path, float(share)) for path, share in self.entries))
        object.__setattr__(self, "entries", ordered)
        object.__setattr__(self, "default_share", float(self.default_share))
        object.__setattr__(self, "_shares", dict(ordered))

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[EntityPath, float]],
                     default_share: float = 1.0) -> "ShareTree":
        """A tree from ``(path, share)`` pairs, e.g. ``(("atlas",), 50)``,
        ``(("atlas", "prod"), 10)``, ``(("atlas", "prod", "alice"), 1)``.

        Raises :class:`ShareTreeError` listing every repeated path, bad share and entity whose
        parent is not listed -- all of them, not just the first.
        """
        return cls(tuple(entries), default_share)

    @property
    def paths(self) -> tuple[EntityPath, ...]:
        return tuple(path for path, _ in self.entries)

    def is_listed(self, path: EntityPath) -> bool:
        return path in self._shares

    def share(self, path: EntityPath) -> float:
        """The raw share of ``path``: as listed, or the default share for an unlisted entity."""
        return self._shares.get(path, self.default_share)

    def attach_point(self, path: EntityPath) -> EntityPath:
        """The deepest listed ancestor of ``path`` (the root ``()`` if none); an unlisted
        entity hangs below it."""
        for depth in range(len(path) - 1, 0, -1):
            if path[:depth] in self._shares:
                return path[:depth]
        return ROOT


def _positive_finite(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value!r}")


def _non_negative_finite(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


@attrs.frozen(slots=True)
class FairShareFigures:
    """The figures behind one entity's factor, named as ``sshare -l`` names them, so an admin
    can check why a job waits. With OpenPBS bookkeeping ``usage`` counts the node's own 1, as
    ``pbsfs`` shows it."""

    path: EntityPath
    raw_share: float
    normalized_share: float
    usage: float
    normalized_usage: float
    effective_usage: float
    factor: float
    listed: bool


def _factor(effective_usage: float, normalized_share: float) -> float:
    if not effective_usage > 0.0:
        return 1.0
    if not normalized_share > 0.0:  # an absurdly deep/lopsided tree underflowed
        return MIN_FACTOR
    halvings = effective_usage / normalized_share
    if not halvings < _MAX_HALVINGS:
        return MIN_FACTOR
    return min(1.0, max(MIN_FACTOR, math.exp2(-halvings)))


@attrs.frozen(slots=True)
class FairShare:
    """Fair-share factors for a share tree.

    ``half_life_s`` and ``floor`` are how usage is read from a
    :class:`vmsched.usage.UsageStore` (see :meth:`factors_at`); :meth:`factors` takes usage
    already decayed. ``bookkeeping`` is ``"vmsched"`` or ``"openpbs"`` (see the module's
    docstring): the same tree and usage give OpenPBS's factors with the latter.
    """

    tree: ShareTree = attrs.field(validator=attrs.validators.instance_of(ShareTree))
    half_life_s: float = attrs.field(converter=_to_float, validator=_positive_finite)
    floor: float = attrs.field(default=0.0, converter=_to_float, validator=_non_negative_finite)
    bookkeeping: str = attrs.field(default=VMSCHED, validator=attrs.validators.in_(BOOKKEEPINGS))

    _layouts: dict = attrs.field(factory=dict, init=False, eq=False, repr=False)

    def _checked(self, usage: Mapping[EntityPath, float], extra: tuple[EntityPath, ...],
                 known: frozenset | None) -> dict[EntityPath, float]:
        """Usage as floats, every problem raised at once; paths of a cached layout are known
        to be well formed, so only their amounts are checked again."""
        checked: dict[EntityPath, float] = {}
        problems: list[str] = []
        for path, amount in usage.items():
            if known is None or path not in known:
                problem = _path_problem(path)
                if problem:
                    problems.append(problem)
                    continue
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) \
                    or not math.isfinite(amount) or amount < 0:
                problems.append(f"entity {show_path(path)}: usage must be a finite number >= 0, got {amount!r}")
                continue
            checked[path] = float(amount)
        for path in extra:
            if known is None or path not in known:
                problem = _path_problem(path)
                if problem:
                    problems.append(problem)
        if problems:
            raise ValueError("; ".join(problems))
        return checked

    def _layout(self, paths: frozenset) -> tuple:
        """The tree's shape for these entities: each node (parents first) with its raw and
        normalised share and the weight it inherits with. It changes only when an entity
        appears or goes, while usage changes every time, so it is kept (a few at most)."""
        tree = self.tree
        raw_share: dict[EntityPath, float] = dict(tree.entries)
        for path in paths:
            for depth in range(1, len(path) + 1):
                prefix = path[:depth]
                if prefix not in raw_share:
                    raw_share[prefix] = tree.default_share
        sibling_total: dict[EntityPath, float] = defaultdict(float)
        for path, share in raw_share.items():
            sibling_total[path[:-1]] += share
        normalized_share: dict[EntityPath, float] = {ROOT: 1.0}
        nodes = []
        order = sorted(raw_share, key=len)  # parents before children
        index = {path: i for i, path in enumerate(order)}
        index[ROOT] = len(order)
        for path in order:
            parent = path[:-1]
            weight = min(1.0, raw_share[path] / sibling_total[parent])
            s_norm = normalized_share[path] = normalized_share[parent] * weight
            nodes.append((path, parent, raw_share[path], weight, s_norm, index[parent]))
        # each entity's node and its ancestors' (the root's too), shallowest first: where
        # its usage is summed
        prefixes = {path: tuple(index[path[:depth]] for depth in range(len(path) + 1)) for path in paths}
        if len(self._layouts) >= 8:
            self._layouts.clear()
        lay = self._layouts[paths] = (tuple(nodes), frozenset(raw_share), prefixes)
        return lay

    def _compute(self, usage: Mapping[EntityPath, float], extra_paths: Iterable[EntityPath]):
        extra = tuple(extra_paths)
        key = frozenset(usage.keys()).union(extra)
        lay = self._layouts.get(key)
        checked = self._checked(usage, extra, lay[1] if lay is not None else None)
        nodes, _known, prefixes = lay if lay is not None else self._layout(key)
        # Only ratios of usage matter; scaling keeps sums of huge usages finite.
        largest = max(checked.values(), default=0.0)
        scale = 1.0 / largest if largest * (len(checked) + 1) > 1e300 else 1.0
        # usage summed per node (by index; the root's last), each entity's added to its
        # node and every ancestor's in the same order as ever, so the sums are bit-identical
        subtree = [0.0] * (len(nodes) + 1)
        for path, amount in checked.items():
            for i in prefixes[path]:
                subtree[i] += amount * scale
        # Every node's usage before any charge, in the same (scaled) units.
        start = scale if self.bookkeeping == OPENPBS else 0.0
        total = start + subtree[-1]
        effective = [0.0] * (len(nodes) + 1)
        rows = []
        for i, (path, parent, raw, weight, s_norm, pi) in enumerate(nodes):
            used = start + subtree[i]
            u_norm = min(1.0, used / total) if total > 0.0 else 0.0
            if parent == ROOT:
                u_eff = u_norm
            else:
                u_eff = u_norm + (effective[pi] - u_norm) * weight
            u_eff = effective[i] = min(1.0, max(0.0, u_eff))
            rows.append((path, raw, s_norm, used / scale, u_norm, u_eff))
        return rows

    def figures(self, usage: Mapping[EntityPath, float],
                extra_paths: Iterable[EntityPath] = ()) -> dict[EntityPath, FairShareFigures]:
        """All figures for every listed entity, every entity with usage and every entity in
        ``extra_paths`` (owners of queued jobs with no usage yet), and their ancestors."""
        return {path: FairShareFigures(
                    path=path, raw_share=raw, normalized_share=s_norm, usage=used,
                    normalized_usage=u_norm, effective_usage=u_eff, factor=_factor(u_eff, s_norm),
                    listed=self.tree.is_listed(path))
                for path, raw, s_norm, used, u_norm, u_eff in self._compute(usage, extra_paths)}

    def factors(self, usage: Mapping[EntityPath, float],
                extra_paths: Iterable[EntityPath] = ()) -> dict[EntityPath, float]:
        """Factor in (0, 1] per entity (see :meth:`figures` for which entities)."""
        return {path: _factor(u_eff, s_norm)
                for path, _raw, s_norm, _used, _un, u_eff in self._compute(usage, extra_paths)}

    def factor(self, path: EntityPath, usage: Mapping[EntityPath, float]) -> float:
        """The factor of one entity; an unlisted entity without usage is placed in the tree
        for this question (with the default share) exactly as if it had queued work."""
        return self.factors(usage, (path,))[path]

    def factors_at(self, store: Any, now: float,
                   extra_paths: Iterable[EntityPath] = ()) -> dict[EntityPath, float]:
        """Factors from a :class:`vmsched.usage.UsageStore` at time ``now``, decayed with this
        policy's half-life and floor."""
        return self.factors(store.usage(now, self.half_life_s, self.floor), extra_paths)


def usage_amount(cores: float, memory_mb: float, seconds: float, kind: str = CORE_SECONDS,
                 *, mb_per_core: Optional[float] = None) -> float:
    """The usage one job is charged, in core-seconds.

    ``"core-seconds"`` (default): ``cores * seconds``; memory is free.

    ``"memory-weighted"``: ``max(cores, memory_mb / mb_per_core) * seconds``. A job that takes
    most of a host's memory keeps other jobs off the host's idle cores as surely as if it had
    taken the cores, so it is charged for the cores its memory makes unusable. ``mb_per_core``
    is the site's memory per core (WNoDeS flavors use 1.7 GB per core) and must be given.
    """
    values = {"cores": cores, "memory_mb": memory_mb, "seconds": seconds}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if kind == CORE_SECONDS:
        equivalent = float(cores)
    elif kind == MEMORY_WEIGHTED:
        if mb_per_core is None or isinstance(mb_per_core, bool) \
                or not isinstance(mb_per_core, (int, float)) \
                or not math.isfinite(mb_per_core) or not mb_per_core > 0:
            raise ValueError(f"memory-weighted usage needs mb_per_core as a finite number > 0, got {mb_per_core!r}")
        equivalent = max(float(cores), memory_mb / mb_per_core)
    else:
        raise ValueError(f"unknown usage kind {kind!r} (expected one of {', '.join(USAGE_KINDS)})")
    amount = equivalent * seconds
    if not math.isfinite(amount):
        raise ValueError(f"usage of {cores!r} cores for {seconds!r} s is too large to count")
    return amount
