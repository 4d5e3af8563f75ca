"""The site file of vmsched-pbs: the vmsched policy, plus an optional ``[pbs]`` table.

One file per site, as for the rest of vmsched. The policy reader (``vmsched.policyfile``)
refuses tables it does not know, and ``[pbs]`` is the adapter's business, not the policy's;
so the adapter reads ``[pbs]`` itself and hands the policy reader the same text with those
lines blanked: every line number in the policy's messages stays right.

```toml
[pbs]
server_kind = "auto"        # "torque" or "openpbs": what the backend's library says, by default
domain_name = '^(?P<host>[^-]+)-(?P<image>.+)-\\d+$'   # when nodes carry no host=/image= tags
comment_period = "60s"      # a pending job's comment is rewritten at most this often
max_active = 1              # active domains per host, for hosts the policy does not list
offline_inactive = true     # set domains that are not active offline in the server
```
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import attrs

from vmsched.model import ModelError, parse_duration
from vmsched.policyfile import Policy, PolicyError, load_policy, parse_policy

__all__ = ["PbsConfig", "load_site", "SiteError"]

SiteError = PolicyError


@attrs.frozen(slots=True)
class PbsConfig:
    """What the adapter needs beyond the policy; the defaults suit a Magrathea-style site."""

    server_kind: str = "auto"
    domain_name: re.Pattern | None = None
    comment_period_s: float = 60.0
    max_active: int = 1
    offline_inactive: bool = True


_KEYS = {"server_kind", "domain_name", "comment_period", "max_active", "offline_inactive"}
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _pbs_lines(text: str) -> set[int]:
    """Line indexes (0-based) of the ``[pbs]`` table and its sub-tables."""
    out, inside = set(), False
    for i, line in enumerate(text.splitlines()):
        m = _HEADER.match(line)
        if m:
            name = m.group(1).strip().strip('"')
            inside = name == "pbs" or name.startswith("pbs.")
        if inside:
            out.add(i)
    return out


def _line_of(text: str, lines: set[int], key: str) -> int | None:
    pat = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i, line in enumerate(text.splitlines()):
        if i in lines and pat.match(line):
            return i + 1
    return None


def _read_pbs(table, text: str, lines: set[int], source: str) -> PbsConfig:
    problems = []

    def where(key):
        n = _line_of(text, lines, key)
        return f"{source}:{n}: pbs.{key}" if n else f"{source}: pbs.{key}"

    if not isinstance(table, dict):
        raise PolicyError([f"{source}: pbs: expected a table [pbs]"])
    for key in sorted(set(table) - _KEYS):
        problems.append(f"{where(key)}: unknown key (expected one of: {', '.join(sorted(_KEYS))})")
    kw = {}
    kind = table.get("server_kind", "auto")
    if kind not in ("auto", "torque", "openpbs"):
        problems.append(f"{where('server_kind')}: expected \"auto\", \"torque\" or \"openpbs\", got {kind!r}")
    else:
        kw["server_kind"] = kind
    if "domain_name" in table:
        rule = table["domain_name"]
        try:
            if not isinstance(rule, str):
                raise re.error("not a string")
            pat = re.compile(rule)
            if not {"host", "image"} <= set(pat.groupindex):
                problems.append(f"{where('domain_name')}: the pattern needs the groups (?P<host>...) and (?P<image>...)")
            else:
                kw["domain_name"] = pat
        except re.error as e:
            problems.append(f"{where('domain_name')}: not a regular expression: {e}")
    if "comment_period" in table:
        try:
            kw["comment_period_s"] = float(parse_duration(str(table["comment_period"])))
        except ValueError as e:
            problems.append(f"{where('comment_period')}: {e}")
    if "max_active" in table:
        v = table["max_active"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            problems.append(f"{where('max_active')}: expected a whole number >= 1, got {v!r}")
        else:
            kw["max_active"] = v
    if "offline_inactive" in table:
        v = table["offline_inactive"]
        if not isinstance(v, bool):
            problems.append(f"{where('offline_inactive')}: expected true or false, got {v!r}")
        else:
            kw["offline_inactive"] = v
    if problems:
        raise PolicyError(problems)
    return PbsConfig(**kw)


def load_site(path) -> tuple[Policy, PbsConfig]:
    """The policy and the ``[pbs]`` settings of one site file. Every problem is a
    :class:`PolicyError` line naming the file and line, as ``vmsched check`` prints them."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return load_policy(path), PbsConfig()     # it words every such problem
    if "pbs" not in data:
        return load_policy(path), PbsConfig()
    lines = _pbs_lines(text)
    config = _read_pbs(data["pbs"], text, lines, str(path))
    blanked = "\n".join("" if i in lines else line for i, line in enumerate(text.splitlines()))
    try:
        return parse_policy(blanked, str(path), base_dir=p.parent), config
    except ModelError as e:
        raise PolicyError([f"{path}: {x}" for x in e.problems]) from None
