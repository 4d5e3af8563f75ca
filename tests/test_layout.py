"""The house rule: imports only point down the floors (README, "Layout").

A module may import modules on its own floor or below, never above: the model knows nothing
of policies, the phases nothing of the Scheduler, nothing in ``vmsched/`` of the simulator's
users or of ``plugins/``. Checked on the source, so a new module must be given a floor here
and in the README's table.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("factors", "route_jobs", "resume", "image_share", "reservations", "bound", "match", "flavor_jobs",
          "class_preemption", "owner_reclaim", "share_preemption", "placement", "second_chance", "idle", "warm_pool", "reasons")
FLOORS = {
    "vmsched.bounded": 0, "vmsched.errors": 0,
    "vmsched.model": 1, "vmsched.plan": 1,
    "vmsched.policyfile": 2, "vmsched.matching": 2, "vmsched._core": 2, "vmsched.usage": 2,
    "vmsched.extensions": 2,
    **{f"vmsched.policies.{m}": 3 for m in ("routing", "fairshare", "partition", "lifecycle", "preemption")},
    "vmsched.cluster": 4,
    "vmsched.context": 5,
    **{f"vmsched.policies.{m}": 6 for m in PHASES},
    "vmsched.cycle": 7,
    "vmsched.sim": 8,
    "plugins": 8,
    "vmsched_pbs": 8,          # plugins/vmsched_pbs, installed under that name
    "vmsched.cli": 9, "vmsched.__main__": 9,
}


def floor_of(module: str) -> int | None:
    if module == "vmsched.__version__":
        return 0
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        f = FLOORS.get(".".join(parts[:i]))
        if f is not None:
            return f
    return None


def _modules():
    for path in sorted((ROOT / "vmsched").rglob("*.py")) + sorted((ROOT / "plugins").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        if name in ("vmsched", "vmsched.policies", "vmsched.sim") or "examples" in rel.parts:
            continue
        yield name, path


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in ("vmsched", "vmsched.policies"):
                for a in node.names:
                    yield node.lineno, f"{node.module}.{a.name}"
            else:
                yield node.lineno, node.module


def test_every_module_has_a_floor():
    missing = [name for name, _ in _modules() if floor_of(name) is None]
    assert not missing, f"give these modules a floor in tests/test_layout.py and the README: {missing}"


def test_imports_only_point_down():
    upward = []
    for name, path in _modules():
        mine = floor_of(name)
        for line, imported in _imports(path):
            if not (imported.startswith("vmsched") or imported.startswith("plugins")):
                continue
            theirs = floor_of(imported)
            if imported.startswith("vmsched._vmsched_core"):
                if name != "vmsched._core":
                    upward.append(f"{path.relative_to(ROOT)}:{line}: only vmsched/_core.py loads the C module")
                continue
            if theirs is None or mine is None or theirs > mine:
                upward.append(f"{path.relative_to(ROOT)}:{line}: {name} (floor {mine}) imports {imported} "
                              f"(floor {theirs})")
    assert not upward, "\n".join(upward)
