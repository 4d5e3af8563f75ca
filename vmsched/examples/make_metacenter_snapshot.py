"""Regenerates metacenter-snapshot.json: 12 hosts running local jobs, 4 running grid jobs,
and a queue with grid, local, privileged, interactive and never-runnable jobs."""
import attrs
from vmsched.policyfile import load_policy, initial_domains
from vmsched.model import Snapshot, Job, JobState, DomainState
p = load_policy("vmsched/examples/metacenter.toml")
doms = initial_domains(p)
t0 = 1_700_000_000.0
now = t0 + 7200
out, jobs = [], []
for d in doms:
    hn = int(d.host[-2:])
    if hn > 12:   # the last four hosts run the grid domain
        if d.image == "slc-egee":
            d = attrs.evolve(d, state=DomainState.RUNNING)
        else:
            d = attrs.evolve(d, state=DomainState.OCCUPIED)
    elif d.state is DomainState.FREE:
        d = attrs.evolve(d, state=DomainState.RUNNING)
    out.append(d)
n = 100
for d in out:
    if d.state is DomainState.RUNNING:
        hn = int(d.host[-2:])
        for k in range(2):
            if d.image == "slc-egee":
                jobs.append(Job(f"{n}.meta-pbs", "atlas001", "atlas", "egee", "egee", 2, 3000, 86400, t0 + n,
                                state=JobState.RUNNING, domain=d.name, start_time=t0 + n + 30))
            else:
                jobs.append(Job(f"{n}.meta-pbs", f"user{hn % 4}", "meta", "meta", "normal", 2, 3000, 86400, t0 + n,
                                state=JobState.RUNNING, domain=d.name, start_time=t0 + n + 30))
            n += 1
for i in range(6):
    jobs.append(Job(f"{200+i}.meta-pbs", "cms007", "cms", "egee", "egee", 1, 1700, 36000, t0 + 3000 + 10*i))
for i in range(4):
    jobs.append(Job(f"{300+i}.meta-pbs", f"user{i}", "meta", "meta", "normal", 2, 3000, 7200, t0 + 4000 + i))
jobs.append(Job("305.meta-pbs", "user5", "meta", "meta", "normal", 16, 6000, 7200, t0 + 4100))
jobs.append(Job("400.meta-pbs", "user9", "meta", "meta", "normal", 2, 2000, 3600, now - 30, interactive=True))
jobs.append(Job("401.meta-pbs", "alien", "nobody", "nobody", "normal", 1, 1000, 3600, now - 20))
jobs.append(Job("402.meta-pbs", "user2", "meta", "meta", "privileged", 4, 4000, 3600, now - 60))
Snapshot(now, p.hosts, out, jobs).dump("vmsched/examples/metacenter-snapshot.json")
