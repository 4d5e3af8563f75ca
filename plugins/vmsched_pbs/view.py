"""The server's view as vmsched's model: nodes are domains, jobs are jobs, hosts are found.

Magrathea's convention: every VM domain is a PBS node. Which host (hypervisor) and image a
domain belongs to is written on its node: Torque node properties ``vmhost_wn12``,
``vmimage_slc5`` (and optionally ``vmflavor_large``; ``host=wn12`` is read too, but Torque
cannot read such a property back from its nodes file after a restart), OpenPBS custom string resources
``resources_available.vmhost``, ``vmimage`` and ``vmflavor``; a site that names its nodes
by a rule gives it instead as ``[pbs] domain_name``. Hosts come from the policy's
``[[hosts]]`` where it lists them, else from their domains' nodes through
``Host.from_pbs``. Jobs come through ``Job.from_pbs``; a job it refuses is skipped with the
reason, never a crash of the cycle.

What state a domain is in is not the server's to say (it knows only nodes): the
:class:`~vmsched_pbs.driver.VMDriver` says whether its VM is active, paused, booting or
off, and the jobs in it whether it is running or free, suspended or occupied. A node the
server reports down is down whatever the driver says; a node an admin set offline is left
alone (down, for vmsched). What vmsched decided is published on the node (Torque ``note``,
OpenPBS ``comment``: ``vmsched: suspended``) and read back after a restart.

Reading is incremental: a job or node whose raw attributes are those of the last cycle is
not parsed again (the very model object is reused, which is also what lets the Scheduler
skip it), so a steady cycle of a large site parses only what changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from vmsched.model import Domain, DomainState, Host, Job, JobState, ModelError, Snapshot, parse_size_mb
from vmsched.policyfile import Policy
from vmsched_pbs.config import PbsConfig
from vmsched_pbs.driver import ExternalDriver, Power, VMDriver

__all__ = ["NodeFacts", "Reading", "ServerReader", "node_facts", "note_attribute", "note_text", "NOTE_PREFIX",
           "SCHEDULED_STATES", "ENDED_STATES", "JOB_ATTRIBUTES", "job_attributes"]

NOTE_PREFIX = "vmsched: "
#: the job attributes vmsched-pbs asks the server for: what ``Job.from_pbs`` reads (a test
#: checks it against the parser), the comment, and what accounting reads. A real server's
#: jobs carry three or four times as many (paths, environment, mail options): asking for
#: these alone makes a large server's answer, and the walk through it, that much smaller
JOB_ATTRIBUTES = ("Job_Owner", "euser", "egroup", "queue", "job_state", "Resource_List", "qtime", "ctime",
                  "start_time", "interactive", "exec_host", "exec_vnode", "comment", "resources_used",
                  "comp_time", "obittime", "Rerunable")
#: OpenPBS's names Torque does not know: a real Torque 6.1.3 answers a pbs_statjob that asks
#: for one of them with NOATTR (15002) and no jobs at all
_OPENPBS_ONLY = frozenset({"exec_vnode", "obittime"})


def job_attributes(kind: str) -> tuple[str, ...]:
    """The job attributes to ask this kind of server for."""
    return JOB_ATTRIBUTES if kind == "openpbs" else tuple(a for a in JOB_ATTRIBUTES if a not in _OPENPBS_ONLY)
_NOTE_RE = re.compile(r"^vmsched: ([a-z_]+)")
#: job states the Scheduler is given; the others are over (E, C, F) or passing through (T, M)
SCHEDULED_STATES = frozenset("QRSHW")
ENDED_STATES = frozenset("ECF")
#: raw job attributes that change while nothing the scheduler reads does (a running job's
#: usage, the comment vmsched itself writes): a change in them alone is no reason to parse
_VOLATILE = frozenset({"comment", "mtime", "session_id", "Walltime.Remaining", "etime"})
_DOWN_WORDS = frozenset({"down", "state-unknown", "unknown", "stale", "unresolvable"})
# the tags a node carries for its domain: Torque properties vmhost_wn12 (or key=value, which
# Torque takes from qmgr but cannot read back from its nodes file after a restart: the node
# is lost with its jobs), OpenPBS resources
_PROPERTY_KEYS = {"host": "host", "image": "image", "flavor": "flavor"}
_PROPERTY_PREFIXES = (("vmhost_", "host"), ("vmimage_", "image"), ("vmflavor_", "flavor"))
_RESOURCE_KEYS = {"host": "resources_available.vmhost", "image": "resources_available.vmimage",
                  "flavor": "resources_available.vmflavor"}


def note_attribute(kind: str) -> str:
    """Where a domain's state is published: Torque's node ``note``, OpenPBS's ``comment``."""
    return "comment" if kind == "openpbs" else "note"


def note_text(state: DomainState) -> str:
    return f"{NOTE_PREFIX}{state.value}"


@attrs.frozen(slots=True)
class NodeFacts:
    """What one node says about its domain, parsed once per change of its attributes."""

    name: str
    host: str
    image: str
    flavor: str | None
    cores: int
    memory_mb: int
    features: frozenset[str]
    down: bool            # the server says down or unknown
    offline: bool
    published: DomainState | None     # the state vmsched last wrote on it
    note: str
    busy: bool = False    # the server lists jobs on it (its ``jobs`` attribute)


def _memory(name: str, a: Mapping[str, str], kind: str) -> int:
    if kind == "openpbs" or "resources_available.mem" in a:
        v = a.get("resources_available.mem")
        return parse_size_mb(v) if v else 0
    # Torque: the mom reports physmem in the node's status ("...,physmem=8058056kb,...")
    for item in a.get("status", "").split(","):
        key, _, value = item.partition("=")
        if key == "physmem" and value:
            return parse_size_mb(value)
    return 0


def node_facts(name: str, a: Mapping[str, str], kind: str, config: PbsConfig) -> NodeFacts | None:
    """The domain a node is, or None when it is not a vmsched domain (no host/image tags
    and no naming rule matches). Raises :class:`ModelError` for a domain node whose
    attributes do not parse."""
    tags: dict[str, str] = {}
    features = set()
    for prop in filter(None, (p.strip() for p in a.get("properties", "").split(","))):
        key, eq, value = prop.partition("=")
        if eq and key in _PROPERTY_KEYS and value:
            tags[key] = value
            continue
        for prefix, tag in _PROPERTY_PREFIXES:
            if prop.startswith(prefix) and len(prop) > len(prefix):
                tags[tag] = prop[len(prefix):]
                break
        else:
            features.add(prop)
    for key, attr in _RESOURCE_KEYS.items():
        if a.get(attr):
            tags[key] = a[attr]
    if ("host" not in tags or "image" not in tags) and config.domain_name is not None:
        m = config.domain_name.match(name)
        if m:
            tags.setdefault("host", m.group("host"))
            tags.setdefault("image", m.group("image"))
    if "host" not in tags or "image" not in tags:
        return None
    problems = []
    where = f"node {name}"
    key = "resources_available.ncpus" if kind == "openpbs" else "np"
    v = a.get(key, a.get("resources_available.ncpus", ""))
    cores = int(v) if v.strip().isdigit() else 0
    if not v.strip().isdigit():
        problems.append(f"{where}: {key} = {v!r}: expected a whole number")
    try:
        memory = _memory(name, a, kind)
    except ValueError as e:
        problems.append(f"{where}: memory: {e}")
        memory = 0
    words = {w.strip() for w in a.get("state", "").split(",")}
    note = a.get(note_attribute(kind), "")
    m = _NOTE_RE.match(note)
    published = None
    if m:
        try:
            published = DomainState(m.group(1))
        except ValueError:
            published = None
    if not problems:
        try:        # the names the model will take (a node name with a colon, a host with a space)
            Domain(name, tags["host"], tags["image"], tags.get("flavor", "node"), DomainState.FREE, cores, memory)
        except (ValueError, TypeError) as e:
            problems.append(f"{where}: {e}")
    if problems:
        raise ModelError(problems)
    return NodeFacts(name, tags["host"], tags["image"], tags.get("flavor"), cores, memory, frozenset(features),
                     bool(words & _DOWN_WORDS), "offline" in words, published, note, bool(a.get("jobs", "").strip()))


_ACTIVE_POWER = {DomainState.FREE: Power.ACTIVE, DomainState.RUNNING: Power.ACTIVE,
                 DomainState.OCCUPIED: Power.PAUSED, DomainState.SUSPENDED: Power.PAUSED,
                 DomainState.BOOTING: Power.BOOTING, DomainState.SHUTTING_DOWN: Power.STOPPING,
                 DomainState.DOWN: Power.OFF}


@attrs.frozen(slots=True)
class Reading:
    """One cycle's view of the server, modelled."""

    snapshot: Snapshot
    nodes: Mapping[str, NodeFacts]          # the domain nodes
    comments: Mapping[str, str]             # job id -> its comment as the server has it
    skipped_jobs: Mapping[str, str]         # job id -> why it cannot be scheduled
    skipped_nodes: Mapping[str, str]        # node -> why it is not a usable domain
    ended: Mapping[str, Mapping[str, str]]  # jobs that are over (E, C, F): their attributes
    power: Mapping[str, Power]              # each domain's power state as used this cycle


class ServerReader:
    """Turns each cycle's stats into a :class:`Reading`, parsing only what changed."""

    def __init__(self, policy: Policy, config: PbsConfig, kind: str):
        self.policy, self.config, self.kind = policy, config, kind
        self._policy_hosts = {h.name: h for h in policy.hosts}
        self._nodes: dict[str, tuple[dict, NodeFacts | None | ModelError]] = {}
        self._jobs: dict[str, tuple[dict, Job | ModelError]] = {}
        self._domains: dict[str, Domain] = {}
        self._hosts: dict[str, Host] = {}
        self._memory: dict[str, int] = {}           # node -> the memory it last reported
        self._host_facts: dict[str, tuple] = {}     # host -> the facts its Host was made from
        self._domain_facts: dict[str, NodeFacts] = {}   # domain -> the facts its Domain was made from
        self.parsed = {"jobs": 0, "nodes": 0}      # parses in the last read (for tests and the benchmark)

    # ---------------------------------------------------------------- parsing, cached
    def _node(self, name: str, a: dict):
        cached = self._nodes.get(name)
        if cached is not None and cached[0] == a:
            return cached[1]
        self.parsed["nodes"] += 1
        try:
            facts = node_facts(name, a, self.kind, self.config)
        except ModelError as e:
            facts = e
        if isinstance(facts, NodeFacts):
            # a Torque node whose mom is down reports no memory: the domain keeps what it had
            if facts.memory_mb == 0 and self._memory.get(name):
                facts = attrs.evolve(facts, memory_mb=self._memory[name])
            elif facts.memory_mb:
                self._memory[name] = facts.memory_mb
        self._nodes[name] = (a, facts)
        return facts

    def _job(self, jid: str, a: dict):
        cached = self._jobs.get(jid)
        if cached is not None:
            old = cached[0]
            if old == a:
                return cached[1]
            if _steady(old, a):      # changed only in what the parser does not read
                self._jobs[jid] = (a, cached[1])
                return cached[1]
        self.parsed["jobs"] += 1
        attributes = a
        if self.kind == "openpbs" and a.get("exec_vnode"):
            # OpenPBS names the vnode (the domain) in exec_vnode, exec_host names its mom's host
            vnode = a["exec_vnode"].lstrip("(").split(":")[0].split("+")[0].rstrip(")")
            attributes = dict(a, exec_host=f"{vnode}/0")
        try:
            job: Job | ModelError = Job.from_pbs(jid, attributes)
        except ModelError as e:
            job = e
        self._jobs[jid] = (a, job)
        return job

    # ---------------------------------------------------------------- the reading
    def read(self, nodes: Mapping[str, dict], jobs: Mapping[str, dict], driver: VMDriver, now: float) -> Reading:
        self.parsed = {"jobs": 0, "nodes": 0}
        for gone in [n for n in self._nodes if n not in nodes]:
            del self._nodes[gone]
        for gone in [j for j in self._jobs if j not in jobs]:
            del self._jobs[gone]
        facts: dict[str, NodeFacts] = {}
        skipped_nodes: dict[str, str] = {}
        for name, a in nodes.items():
            f = self._node(name, a)
            if isinstance(f, ModelError):
                skipped_nodes[name] = f.first()
            elif f is not None:
                facts[name] = f
        hosts = self._read_hosts(facts, skipped_nodes)
        facts = {n: f for n, f in facts.items() if f.host in hosts}
        parsed: list[Job] = []
        skipped: dict[str, str] = {}
        ended: dict[str, Mapping[str, str]] = {}
        comments: dict[str, str] = {}
        for jid, a in jobs.items():
            st = a.get("job_state", "")
            if st in ENDED_STATES:
                ended[jid] = a
                continue
            if st not in SCHEDULED_STATES:
                continue
            comments[jid] = a.get("comment", "")
            j = self._job(jid, a)
            if isinstance(j, ModelError):
                skipped[jid] = _without_job(jid, j.first())
            elif j.domain is not None and j.state in (JobState.RUNNING, JobState.SUSPENDED) \
                    and j.domain not in facts:
                skipped[jid] = f"runs on node {j.domain}, which is not a vmsched domain"
            else:
                if j.domain is not None and j.domain not in facts:
                    j = attrs.evolve(j, domain=None)
                parsed.append(j)
        power = self._power(facts, parsed, driver, hosts)
        domains = self._read_domains(facts, parsed, power, now)
        snapshot = Snapshot(now, tuple(hosts.values()), tuple(domains), tuple(parsed))
        return Reading(snapshot, facts, comments, skipped, skipped_nodes, ended, power)

    def _read_hosts(self, facts: Mapping[str, NodeFacts], skipped_nodes: dict[str, str]) -> dict[str, Host]:
        """The policy's hosts, and for each other host its domains' nodes as one
        ``pbsnodes``-like record for ``Host.from_pbs``: the most cores and memory a domain
        of it has (an active Magrathea domain gets the whole host), the properties all its
        domains share, down when all its domains are. A host with a domain down that the
        server still lists jobs on is down too, policy host or not."""
        per_host: dict[str, list[NodeFacts]] = {}
        for f in facts.values():
            per_host.setdefault(f.host, []).append(f)
        out: dict[str, Host] = {}
        seen = self._host_facts
        self._host_facts = {}
        for host, fs in sorted(per_host.items()):
            # a domain that is down with jobs on it may still hold the host (its VM running,
            # its mom unreachable): nothing else starts there until it is back
            held = any(f.down and f.busy for f in fs)
            if host in self._policy_hosts:
                h = self._policy_hosts[host]
                if held:
                    old = self._hosts.get(host)
                    h = old if old is not None and not old.up else attrs.evolve(h, up=False)
                out[host] = h
                continue
            key = tuple(fs)                 # the very facts objects: unchanged nodes, unchanged host
            self._host_facts[host] = key
            old = self._hosts.get(host)
            if old is not None and seen.get(host) == key:
                out[host] = old
                continue
            memory = max(f.memory_mb for f in fs)
            if memory == 0 and all(f.down for f in fs):
                memory = 1      # all its moms down since vmsched-pbs started: unknown, and unused
            record = {"np": str(max(f.cores for f in fs)),
                      "resources_available.mem": f"{memory}mb",
                      "properties": ",".join(sorted(frozenset.intersection(*(f.features for f in fs)))),
                      "state": "down" if held or all(f.down for f in fs) else "free"}
            try:
                h = Host.from_pbs(host, record, max_active=self.config.max_active)
            except ModelError as e:
                for f in fs:
                    skipped_nodes[f.name] = f"host {host}: {e.first()}"
                continue
            old = self._hosts.get(host)
            out[host] = old if old == h else h
        self._hosts = dict(out)
        return out

    def _power(self, facts: Mapping[str, NodeFacts], jobs: list[Job], driver: VMDriver,
               hosts: Mapping[str, Host]) -> dict[str, Power]:
        """Each domain's power state: the driver's; for a domain the external driver has not
        met (vmsched-pbs just started, or the node is back from down), what vmsched
        published on its node if that was not active, else active while the host has room
        (``max_active``: busy domains first, then those published active, then by name),
        else paused. A node the server reports down is forgotten by the external driver,
        so that it is admitted again, within the host's room, when it comes back."""
        external = isinstance(driver, ExternalDriver)
        known = driver.list()
        out: dict[str, Power] = {}
        admit: dict[str, list[str]] = {}
        for name, f in facts.items():
            if f.down and external:
                driver.forget(name)
                out[name] = Power.OFF
            elif name in known:
                out[name] = known[name]
            elif f.published is not None and not f.published.active:
                out[name] = _ACTIVE_POWER[f.published]     # paused (offline) by vmsched itself
            elif f.offline:
                out[name] = Power.OFF           # an admin's offline: not vmsched's to undo
            else:
                admit.setdefault(f.host, []).append(name)
        if admit:
            busy = {j.domain for j in jobs if j.domain is not None and j.state is JobState.RUNNING}
            for host, names in admit.items():
                active = sum(1 for n, f in facts.items() if f.host == host and out.get(n) in
                             (Power.ACTIVE, Power.BOOTING))
                for name in sorted(names, key=lambda n: (n not in busy, not (facts[n].published or
                                                                             DomainState.DOWN).active, n)):
                    fits = active < hosts[host].max_active
                    out[name] = Power.ACTIVE if fits else Power.PAUSED
                    active += fits
        if external:
            for name, p in out.items():
                if name not in known and not facts[name].down:
                    driver.adopt(name, p)
        return out

    def _read_domains(self, facts: Mapping[str, NodeFacts], jobs: list[Job], power: Mapping[str, Power],
                      now: float) -> list[Domain]:
        running, frozen = set(), set()
        for j in jobs:
            if j.state is JobState.RUNNING:
                running.add(j.domain)
            elif j.state is JobState.SUSPENDED:
                frozen.add(j.domain)
        flavors = self.policy.flavors
        out = []
        for name in sorted(facts):
            f = facts[name]
            p = power[name]
            if f.down or (f.offline and p is Power.ACTIVE and f.published is not None
                          and f.published.active):
                # down, or set offline by an admin while vmsched had it active
                state = DomainState.DOWN
            elif p is Power.ACTIVE:
                state = DomainState.RUNNING if name in running else DomainState.FREE
            elif p is Power.PAUSED:
                state = DomainState.SUSPENDED if (name in frozen or name in running) else DomainState.OCCUPIED
            elif p is Power.BOOTING:
                state = DomainState.BOOTING
            elif p is Power.STOPPING:
                state = DomainState.SHUTTING_DOWN
            else:
                state = DomainState.DOWN
            old = self._domains.get(name)
            if old is not None and old.state is state and self._domain_facts.get(name) is f:
                out.append(old)             # the same node facts in the same state: the same domain
                continue
            since = old.since if old is not None and old.state is state else now
            d = Domain(name, f.host, f.image, f.flavor or _flavor_of(f, flavors), state, f.cores, f.memory_mb,
                       since=since)
            out.append(old if old == d else d)
        self._domains = {d.name: d for d in out}
        self._domain_facts = {name: facts[name] for name in self._domains}
        return out


def _flavor_of(f: NodeFacts, flavors) -> str:
    """The policy's fixed flavor of exactly this size, else "node" (a domain of its own size)."""
    for fl in flavors.values():
        if fl.whole_node is None and (fl.cores, fl.memory_mb) == (f.cores, f.memory_mb):
            return fl.name
    return "node"


def _steady(old: Mapping[str, str], new: Mapping[str, str]) -> bool:
    """The two differ only in attributes that change while the job does not (its usage,
    its comment)."""
    if len(old) != len(new) and not any(k.startswith("resources_used.") or k in _VOLATILE
                                        for k in old.keys() ^ new.keys()):
        return False
    for k in old.keys() | new.keys():
        if k in _VOLATILE or k.startswith("resources_used."):
            continue
        if old.get(k) != new.get(k):
            return False
    return True


def _without_job(jid: str, problem: str) -> str:
    prefix = f"job {jid}: "
    return problem[len(prefix):] if problem.startswith(prefix) else problem
