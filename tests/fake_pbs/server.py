"""An in-process PBS server with Torque's or OpenPBS's semantics, for vmsched-pbs's tests.

It keeps what a scheduler sees and changes: jobs in states Q/H/R/S/E/C (F with OpenPBS
history), nodes with their states, properties or resources and the jobs on them, queues,
server attributes; and it answers the IFL requests a scheduler makes (stat, runjob, sigjob,
rerunjob, movejob, alterjob, manager on nodes) with each server's documented errors
(numbers in :mod:`tests.fake_pbs.codes`, kept apart from the code under test so that a
wrong number there cannot hide). What it does not reproduce is listed in the README
("What the fake server does not reproduce").

The libraries that reach it (:mod:`tests.fake_pbs.libs`) turn its answers into what each
real library returns: ``batch_status``/``attrl`` C structures for the cffi backend,
pbs_python's Python lists, OpenPBS ``pbs_ifl``'s linked proxies.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

__all__ = ["FakeServer", "PbsErr"]


class PbsErr(Exception):
    """A request the server refuses: ``name`` (UNKJOBID, ...) and its message."""

    def __init__(self, name: str, text: str):
        self.name, self.text = name, text
        super().__init__(f"{name}: {text}")


def _kb(mb: int) -> str:
    return f"{mb * 1024}kb"


#: job attributes of OpenPBS that Torque 6.1.3 does not define (checked against a real
#: pbs_server: pbs_statjob asking for either returns NULL with pbs_errno 15002)
OPENPBS_ONLY_JOB_ATTRIBUTES = frozenset({"exec_vnode", "obittime"})


class FakeServer:
    """One PBS server. ``kind`` is "torque" or "openpbs"; ``clock`` gives its time."""

    def __init__(self, kind: str = "torque", name: str = "pbs01", clock: Callable[[], float] | None = None):
        assert kind in ("torque", "openpbs")
        self.kind, self.name = kind, name
        self.clock = clock or (lambda: 1_000_000.0)
        self.server: dict[str, str] = {"server_state": "Active", "scheduling": "True",
                                       "pbs_version": "6.1.3" if kind == "torque" else "23.06.06",
                                       "default_queue": "batch"}
        self.queues: dict[str, dict[str, str]] = {}
        self.nodes: dict[str, dict[str, str]] = {}
        self.jobs: dict[str, dict[str, str]] = {}
        self.node_jobs: dict[str, dict[str, int]] = {}    # node -> job -> cores allocated there
        self._seq = 0
        self._mem: dict[str, int] = {}
        self.epoch = 0               # bumped by a restart: older connections are dead
        self.up = True               # False: connections are refused
        self.calls: list[tuple] = []  # every request, in order: (request, args...)
        self.started: Counter = Counter()    # job -> times it was started
        self.requeued: Counter = Counter()   # job -> times it went back to the queue
        self._refusals: list[tuple[str, str | None, str, str]] = []
        self._before: list[tuple[str, Callable[[tuple], None]]] = []
        self._lose: list[tuple[str, str | None]] = []

    # ------------------------------------------------------------------ set-up
    def add_queue(self, name: str, queue_type: str = "Execution", **attributes: str) -> None:
        q = {"queue_type": queue_type, "enabled": "True", "started": "True", "total_jobs": "0"}
        q.update(attributes)
        self.queues[name] = q

    def add_node(self, name: str, cores: int = 4, memory_mb: int = 8192, *, properties: Iterable[str] = (),
                 resources: dict[str, str] | None = None, state: str = "free") -> None:
        """A node (a VM domain). Torque: ``np``, ``properties``, the mom's ``status``;
        OpenPBS: ``resources_available.*`` (``resources`` adds custom ones: vmhost, ...)."""
        if self.kind == "torque":
            n = {"state": state, "power_state": "Running", "np": str(cores), "ntype": "cluster",
                 "mom_service_port": "15002", "mom_manager_port": "15003"}
            if properties:
                n["properties"] = ",".join(properties)
            n["status"] = self._status(name, cores, memory_mb)
        else:
            n = {"Mom": name, "Port": "15002", "pbs_version": "23.06.06", "ntype": "PBS", "state": state,
                 "pcpus": str(cores), "resources_available.arch": "linux", "resources_available.host": name,
                 "resources_available.mem": _kb(memory_mb), "resources_available.ncpus": str(cores),
                 "resources_available.vnode": name, "resources_assigned.ncpus": "0",
                 "resources_assigned.mem": "0kb", "resv_enable": "True", "sharing": "default_shared"}
            for k, v in (resources or {}).items():
                n[f"resources_available.{k}"] = v
        self._mem[name] = memory_mb
        self.nodes[name] = n
        self.node_jobs[name] = {}

    def _status(self, name: str, cores: int, memory_mb: int) -> str:
        return (f"rectime={int(self.clock())},macaddr=52:54:00:00:00:01,cpuclock=Fixed,varattr=,jobs=,"
                f"state=free,netload=1000,gres=,loadave=0.00,ncpus={cores},physmem={_kb(memory_mb)},"
                f"availmem={_kb(memory_mb)},totmem={_kb(memory_mb)},idletime=100,nusers=0,nsessions=0,"
                f"uname=Linux {name} 6.1.0 x86_64,opsys=linux")

    def submit(self, user: str = "alice", group: str = "meta", queue: str = "batch", *, walltime: str = "01:00:00",
               cores: int = 1, memory: str | None = None, interactive: bool = False, rerunable: bool = True,
               hold: bool = False, extra: dict[str, str] | None = None) -> str:
        """qsub: the new job's id (``N.server``)."""
        if queue not in self.queues:
            raise PbsErr("UNKQUE", f"Unknown queue {queue}")
        self._seq += 1
        jid = f"{self._seq}.{self.name}"
        now = str(int(self.clock()))
        j = {"Job_Name": "STDIN", "Job_Owner": f"{user}@login1", "job_state": "H" if hold else "Q",
             "queue": queue, "server": self.name, "Checkpoint": "u", "ctime": now, "qtime": now, "mtime": now,
             "etime": now, "Error_Path": f"login1:/home/{user}/STDIN.e{self._seq}", "Hold_Types": "u" if hold else "n",
             "Join_Path": "n", "Keep_Files": "n", "Mail_Points": "a", "Priority": "0",
             "Rerunable": "True" if rerunable else "False", "Resource_List.walltime": walltime,
             "euser": user, "egroup": group, "substate": "20" if hold else "10",
             "Variable_List": f"PBS_O_QUEUE={queue},PBS_O_HOME=/home/{user}"}
        if self.kind == "torque":
            j["Resource_List.nodes"] = f"1:ppn={cores}"
            j["Resource_List.nodect"] = "1"
            j["Resource_List.neednodes"] = f"1:ppn={cores}"
            j["queue_type"] = "E"
        else:
            j["Resource_List.ncpus"] = str(cores)
            j["Resource_List.nodect"] = "1"
            j["Resource_List.place"] = "pack"
            j["Resource_List.select"] = f"1:ncpus={cores}" + (f":mem={memory}" if memory else "")
        if memory:
            j["Resource_List.mem"] = memory
        if interactive:
            j["interactive"] = "True"
        j.update(extra or {})
        self.jobs[jid] = j
        return jid

    def node_down(self, name: str, *, requeue: bool = False) -> None:
        """The node's mom stops answering: the node is down, its jobs stay where they were
        (as both servers keep them until the mom is back), or with ``requeue`` the
        rerunnable ones go back to the queue (OpenPBS's ``node_fail_requeue``)."""
        n = self.nodes[name]
        words = [w for w in n["state"].split(",") if w not in ("free", "job-exclusive", "job-busy")]
        n["state"] = ",".join(["down"] + [w for w in words if w != "down"])
        n.pop("status", None)
        if requeue:
            for jid in list(self.node_jobs[name]):
                if self.jobs[jid].get("Rerunable") == "True":
                    self._requeue(jid)

    def node_up(self, name: str) -> None:
        n = self.nodes[name]
        n["state"] = ",".join(w for w in n["state"].split(",") if w != "down") or "free"
        if self.kind == "torque":
            n["status"] = self._status(name, int(n["np"]), self._mem[name])
        self._node_busy(name)

    def finish(self, jid: str, *, walltime_s: int = 600, keep: bool = True) -> None:
        """The job ends: usage recorded, its node freed; kept as C (Torque's keep_completed)
        or F (OpenPBS's job history) when ``keep``, else gone."""
        j = self.jobs[jid]
        self._release(jid)
        h, rem = divmod(walltime_s, 3600)
        j["resources_used.walltime"] = f"{h:02d}:{rem // 60:02d}:{rem % 60:02d}"
        j["resources_used.cput"] = j["resources_used.walltime"]
        j["resources_used.mem"] = "102400kb"
        j["exit_status"] = "0"
        j["comp_time"] = str(int(self.clock()))
        if keep:
            j["job_state"] = "C" if self.kind == "torque" else "F"
        else:
            del self.jobs[jid]

    def delete(self, jid: str) -> None:
        """qdel: the job is gone at once."""
        self._release(jid)
        del self.jobs[jid]

    def restart(self) -> None:
        """pbs_server restarts: every connection is dead; jobs and nodes survive."""
        self.epoch += 1

    def refuse(self, request: str, target: str | None, name: str, text: str = "") -> None:
        """The next ``request`` (on ``target``, or any) fails with the error ``name``."""
        self._refusals.append((request, target, name, text))

    def lose_reply(self, request: str, target: str | None = None) -> None:
        """The next ``request`` (on ``target``) is carried out, then the server restarts
        before its answer leaves: the client sees a dead connection, not the result."""
        self._lose.append((request, target))

    def before(self, request: str, hook: Callable[[tuple], None]) -> None:
        """Run ``hook(args)`` once just before the next ``request`` is served (to change the
        server between a scheduler's stat and its action: a qdel, a node going down)."""
        self._before.append((request, hook))

    # ------------------------------------------------------------------ helpers
    def job(self, jid: str) -> dict[str, str]:
        j = self.jobs.get(jid)
        if j is None:
            raise PbsErr("UNKJOBID", f"Unknown Job Id {jid}")
        return j

    def node(self, name: str) -> dict[str, str]:
        n = self.nodes.get(name)
        if n is None:
            raise PbsErr("UNKNODE", f"Unknown node  {name}")
        return n

    def _cores(self, jid: str) -> int:
        j = self.jobs[jid]
        if self.kind == "torque":
            m = re.search(r"ppn=(\d+)", j.get("Resource_List.nodes", ""))
            return int(m.group(1)) if m else 1
        return int(j.get("Resource_List.ncpus", "1"))

    def _node_busy(self, name: str) -> None:
        """The node's state words and job list after its jobs changed: "free", or busy
        when its cores are taken (Torque "job-exclusive", OpenPBS "job-busy"), beside any
        down/offline flags."""
        n = self.nodes[name]
        used = sum(self.node_jobs[name].values())
        cap = int(n["np"] if self.kind == "torque" else n["resources_available.ncpus"])
        busy = "job-exclusive" if self.kind == "torque" else "job-busy"
        flags = [w for w in n["state"].split(",") if w and w not in ("free", busy)]
        n["state"] = ",".join(flags + ([busy] if used >= cap else [])) or "free"
        if self.kind == "torque":
            if self.node_jobs[name]:
                parts, k = [], 0
                for jid, c in self.node_jobs[name].items():
                    parts.append(f"{k}-{k + c - 1}/{jid}" if c > 1 else f"{k}/{jid}")
                    k += c
                n["jobs"] = ",".join(parts)
            else:
                n.pop("jobs", None)
        else:
            n["resources_assigned.ncpus"] = str(used)
            jobs = [f"{jid}/{i}" for jid, c in self.node_jobs[name].items() for i in range(c)]
            if jobs:
                n["jobs"] = ", ".join(jobs)
            else:
                n.pop("jobs", None)

    def _release(self, jid: str) -> None:
        for name, held in self.node_jobs.items():
            if jid in held:
                del held[jid]
                self._node_busy(name)

    def _requeue(self, jid: str) -> None:
        self.requeued[jid] += 1
        j = self.jobs[jid]
        self._release(jid)
        for k in ("exec_host", "exec_vnode", "start_time", "session_id", "exec_port"):
            j.pop(k, None)
        j = {k: v for k, v in j.items() if not k.startswith("resources_used.")}
        j["job_state"] = "Q"
        j["substate"] = "10"
        self.jobs[jid] = j

    # ------------------------------------------------------------------ requests
    def serve(self, request: str, *args):
        """One IFL request (the libraries call this): its result, or :class:`PbsErr`."""
        self.calls.append((request, *args))
        for i, (req, hook) in enumerate(self._before):
            if req == request:
                del self._before[i]
                hook(args)
                break
        for i, (req, target, name, text) in enumerate(self._refusals):
            if req == request and (target is None or target in args):
                del self._refusals[i]
                raise PbsErr(name, text or f"{request} refused")
        result = getattr(self, f"_do_{request}")(*args)
        for i, (req, target) in enumerate(self._lose):
            if req == request and (target is None or target in args):
                del self._lose[i]
                self.restart()
                break
        return result

    @staticmethod
    def _only(records, wanted):
        """What a server returns for an attribute list: only those attributes (an attribute
        of resources, Resource_List, with all its resources)."""
        if not wanted:
            return records
        names = set(wanted)
        return [(n, {k: v for k, v in a.items() if k.partition(".")[0] in names}) for n, a in records]

    def _do_statserver(self, wanted=None, extend=None):
        counts = {s: 0 for s in "QRSHEC"}
        for j in self.jobs.values():
            counts[j["job_state"]] = counts.get(j["job_state"], 0) + 1
        attrs = dict(self.server, total_jobs=str(len(self.jobs)),
                     state_count=" ".join(f"{k}:{v}" for k, v in counts.items()))
        return self._only([(self.name, attrs)], wanted)

    def _do_statque(self, name, wanted=None, extend=None):
        if name:
            if name not in self.queues:
                raise PbsErr("UNKQUE", f"Unknown queue {name}")
            return self._only([(name, self.queues[name])], wanted)
        return self._only(list(self.queues.items()), wanted)

    def _do_statnode(self, name, wanted=None, extend=None):
        if name:
            return self._only([(name, self.node(name))], wanted)
        return self._only(list(self.nodes.items()), wanted)

    def _do_statvnode(self, name, wanted=None, extend=None):
        if self.kind != "openpbs":
            raise PbsErr("UNKREQ", "Unknown request")
        return self._do_statnode(name, wanted)

    def _do_statjob(self, name, wanted=None, extend=None):
        if self.kind == "torque" and wanted and set(wanted) & OPENPBS_ONLY_JOB_ATTRIBUTES:
            # seen on a real Torque 6.1.3: one unknown name in the list and the whole stat fails
            raise PbsErr("NOATTR", "Undefined attribute")
        # OpenPBS lists finished (history) jobs only when asked with extend "x"
        history = self.kind == "torque" or (extend or "").find("x") >= 0
        if name:
            j = self.job(name)
            if j["job_state"] == "F" and not history:
                raise PbsErr("UNKJOBID", f"Unknown Job Id {name}")   # OpenPBS: "Job has finished, use -x"
            return self._only([(name, j)], wanted)
        return self._only([(jid, j) for jid, j in self.jobs.items() if history or j["job_state"] != "F"], wanted)

    def _parse_location(self, loc: str) -> tuple[str, int]:
        """(node, cores) from Torque's node spec or OpenPBS's select-form exec_vnode."""
        if self.kind == "openpbs":
            m = re.fullmatch(r"\(([^:()+]+):ncpus=(\d+)(?::mem=\d+[kmgt]?b)?\)", loc)
            if not m:
                raise PbsErr("BADNODESPEC", f"node(s) specification error {loc}")
            return m.group(1), int(m.group(2))
        parts = loc.split("+")
        names = {p.split("/")[0].split(":")[0] for p in parts}
        if len(names) != 1 or not loc:
            raise PbsErr("BADATVAL", f"Illegal attribute or resource value for neednodes {loc}")
        m = re.search(r":ppn=(\d+)", loc)
        return names.pop(), int(m.group(1)) if m else len(parts)

    def _do_runjob(self, jid, loc):
        j = self.job(jid)
        if j["job_state"] != "Q":
            raise PbsErr("BADSTATE", f"Request invalid for state of job {jid}")
        if self.queues[j["queue"]]["queue_type"] != "Execution":
            raise PbsErr("IVALREQ", "Invalid request: job is in a routing queue")
        node_name, cores = self._parse_location(loc)
        n = self.node(node_name)
        words = set(n["state"].split(","))
        cap = int(n["np"] if self.kind == "torque" else n["resources_available.ncpus"])
        if words & {"down", "offline", "state-unknown"} or sum(self.node_jobs[node_name].values()) + cores > cap:
            raise PbsErr("RESCUNAV", f"Resource temporarily unavailable: {node_name}")
        now = str(int(self.clock()))
        self.node_jobs[node_name][jid] = cores
        if self.kind == "torque":
            start = sum(self.node_jobs[node_name].values()) - cores
            j["exec_host"] = f"{node_name}/{start}-{start + cores - 1}" if cores > 1 else f"{node_name}/{start}"
        else:
            j["exec_host"] = f"{node_name}/0*{cores}" if cores > 1 else f"{node_name}/0"
            j["exec_vnode"] = loc
        j.update(job_state="R", substate="42", start_time=now, session_id="4242", mtime=now)
        self.started[jid] += 1
        self._node_busy(node_name)
        return 0

    def _do_sigjob(self, jid, signal):
        j = self.job(jid)
        if signal == "suspend":
            if j["job_state"] != "R":
                raise PbsErr("BADSTATE", f"Request invalid for state of job {jid}")
            j["job_state"] = "S"
        elif signal == "resume":
            if j["job_state"] != "S":
                raise PbsErr("BADSTATE", f"Request invalid for state of job {jid}")
            j["job_state"] = "R"
        elif not signal.startswith("SIG"):
            raise PbsErr("UNKSIG", "Unknown/illegal signal name")
        return 0

    def _do_rerunjob(self, jid):
        j = self.job(jid)
        if j["job_state"] not in ("R", "S"):
            raise PbsErr("BADSTATE", f"Request invalid for state of job {jid}")
        if j.get("Rerunable") != "True":
            raise PbsErr("NORERUN", "job is not rerunnable")
        self._requeue(jid)
        return 0

    def _do_movejob(self, jid, dest):
        j = self.job(jid)
        if dest not in self.queues:
            raise PbsErr("UNKQUE", f"Unknown queue {dest}")
        if j["job_state"] not in ("Q", "H", "W"):
            raise PbsErr("BADSTATE", f"Request invalid for state of job {jid}")
        j["queue"] = dest
        return 0

    _READ_ONLY = {"job_state", "exec_host", "exec_vnode", "queue", "server", "ctime", "qtime", "euser", "egroup",
                  "session_id", "start_time", "Job_Owner"}

    def _do_alterjob(self, jid, attrs):
        j = self.job(jid)
        for name, resource, value, _op in attrs:
            if name in self._READ_ONLY:
                raise PbsErr("ATTRRO", f"Cannot set attribute, read only or insufficient permission  {name}")
            j[f"{name}.{resource}" if resource else name] = value or ""
        j["mtime"] = str(int(self.clock()))
        return 0

    def _do_manager(self, command, obj_type, name, attrs):
        if (command, obj_type) != (2, 3):        # MGR_CMD_SET, MGR_OBJ_NODE: all a scheduler does
            raise PbsErr("IVALREQ", "Invalid request")
        n = self.node(name)
        note = "note" if self.kind == "torque" else "comment"
        for attr, _resource, value, op in attrs:
            if attr == note:
                n[note] = value
            elif attr == "state":
                words = [w for w in n["state"].split(",") if w]
                if op == 2 and value not in words:           # INCR
                    words.append(value)
                elif op == 3:                                 # DECR
                    words = [w for w in words if w != value]
                elif op not in (2, 3):
                    raise PbsErr("BADNDATVAL", f"Illegal value for node state {value}")
                n["state"] = ",".join(words) or "free"
                self._node_busy(name)
            else:
                raise PbsErr("UNKNODEATR", f"Unknown node-attribute  {attr}")
        return 0
