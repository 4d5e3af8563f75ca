/*
 * preempt.c - the search for preemption victims (see the umbrella header for the rules).
 *
 * Each slot of an allowed kind with room for the job when empty is a possible candidate;
 * the scan keeps the least cost (highest victim rank, loss, victim jobs, slot). Only the
 * winner's victim lists are written out, by running its candidate once more with emit set.
 */
#define VMSCHED_CORE_INTERNAL
#include "vmsched_core.h"

/* A candidate's cost, compared lexicographically. */
typedef struct {
    int64_t rank;   /* highest rank among the victims (-1 if none) */
    int64_t loss;   /* work lost */
    int64_t count;  /* victim jobs */
    int64_t slot;   /* slot handle */
} preempt_cost_t;

static int preempt_cost_less(const preempt_cost_t *a, const preempt_cost_t *b)
{
    if (a->rank != b->rank)
        return a->rank < b->rank;
    if (a->loss != b->loss)
        return a->loss < b->loss;
    if (a->count != b->count)
        return a->count < b->count;
    return a->slot < b->slot;
}

/* The work a victim loses: its cores when suspended, cores x whole elapsed seconds when
 * requeued. */
static int64_t preempt_loss(const core_t *core, int32_t job, int mode, double now)
{
    if (mode != CORE_MODE_REQUEUE)
        return core->job_cores[job];
    double e = now - core->job_start[job];
    return core->job_cores[job] * (e > 0.0 ? (int64_t)e : 0);
}

/* Sort ids[0..n) with their keys by (key, id), ascending (n is small: insertion sort). */
static void preempt_sort(int32_t *ids, int64_t *keys, int64_t n)
{
    for (int64_t i = 1; i < n; i++) {
        int32_t id = ids[i];
        int64_t key = keys[i];
        int64_t k = i;
        while (k > 0 && (keys[k - 1] > key || (keys[k - 1] == key && ids[k - 1] > id))) {
            ids[k] = ids[k - 1];
            keys[k] = keys[k - 1];
            k--;
        }
        ids[k] = id;
        keys[k] = key;
    }
}

static void preempt_sort_ids(int32_t *ids, int64_t n)
{
    for (int64_t i = 1; i < n; i++) {
        int32_t id = ids[i];
        int64_t k = i;
        while (k > 0 && ids[k - 1] > id) {
            ids[k] = ids[k - 1];
            k--;
        }
        ids[k] = id;
    }
}

/* Jobs modes, one ACTIVE slot: returns 1 and fills *cost if displacing its lower-rank jobs
 * makes room. With r set, writes the victims (or their number, if r's array is short). */
static int preempt_in_slot(core_t *core, int32_t job, int32_t s, int mode, double now,
                           preempt_cost_t *cost, preempt_result_t *r)
{
    int64_t rank = core->job_rank[job];
    int64_t fixed_cap = core->job_cap[job];
    int64_t n = 0;
    int32_t *ids = core->scratch;
    int64_t *keys = core->scratch_key, *sufmin = core->scratch_min;
    for (int32_t h = core->slot_first_job[s]; h != CORE_NIL; h = core->job_next[h]) {
        if (core->job_rank[h] < rank && !core->job_suspended[h]) {
            ids[n] = h;
            keys[n] = preempt_loss(core, h, mode, now);
            n++;
        } else if (core->job_cap[h] < fixed_cap) {
            fixed_cap = core->job_cap[h];
        }
    }
    if (n == 0)
        return 0;
    preempt_sort(ids, keys, n);
    sufmin[n - 1] = core->job_cap[ids[n - 1]];
    for (int64_t i = n - 2; i >= 0; i--)
        sufmin[i] = core->job_cap[ids[i]] < sufmin[i + 1] ? core->job_cap[ids[i]] : sufmin[i + 1];
    int64_t fc = core->slot_free_cores[s], fm = core->slot_free_memory[s];
    int64_t left = core->slot_njobs[s], top = -1, loss = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t h = ids[i];
        fc += core->job_cores[h];
        fm += core->job_memory[h];
        left--;
        loss += keys[i];
        if (core->job_rank[h] > top)
            top = core->job_rank[h];
        int64_t cap = i + 1 < n && sufmin[i + 1] < fixed_cap ? sufmin[i + 1] : fixed_cap;
        if (fc >= core->job_cores[job] && fm >= core->job_memory[job] && left < cap) {
            cost->rank = top;
            cost->loss = loss;
            cost->count = i + 1;
            cost->slot = s;
            if (r != NULL) {
                r->n_jobs = i + 1;
                r->n_slots = 0;
                if (i + 1 <= r->jobs_capacity) {
                    for (int64_t u = 0; u <= i; u++)
                        r->jobs[u] = ids[u];
                    preempt_sort_ids(r->jobs, i + 1);
                }
            }
            return 1;
        }
    }
    return 0;
}

/* Domain mode, one IDLE slot without jobs: returns 1 and fills *cost if suspending ACTIVE
 * slots of its host, whose jobs all rank lower, makes room for it (and it had none).
 * ACTIVE and STARTING slots take the host's room; only ACTIVE ones can be suspended. */
static int preempt_domain(core_t *core, int32_t job, int32_t s, preempt_cost_t *cost,
                          preempt_result_t *r)
{
    int32_t host = core->slot_host[s];
    int64_t rank = core->job_rank[job];
    int64_t used_c = 0, used_m = 0, active = 0, n = 0;
    int32_t *ids = core->scratch;
    int64_t *keys = core->scratch_key;
    for (int32_t o = core->host_first_slot[host]; o != CORE_NIL; o = core->slot_host_next[o]) {
        uint8_t st = core->slot_state[o];
        if (o == s || (st != CORE_SLOT_ACTIVE && st != CORE_SLOT_STARTING))
            continue;
        used_c += core->slot_cores[o];
        used_m += core->slot_memory[o];
        active++;
        if (st != CORE_SLOT_ACTIVE)
            continue; /* STARTING: takes room, cannot be suspended */
        int64_t loss = 0;
        int movable = 1;
        for (int32_t h = core->slot_first_job[o]; h != CORE_NIL; h = core->job_next[h]) {
            if (core->job_rank[h] >= rank) {
                movable = 0;
                break;
            }
            loss += core->job_cores[h];
        }
        if (movable) {
            ids[n] = o;
            keys[n] = loss;
            n++;
        }
    }
    int64_t hc = core->host_cores[host], hm = core->host_memory[host];
    int64_t maxa = core->host_max_active[host];
    if (active < maxa && used_c + core->slot_cores[s] <= hc && used_m + core->slot_memory[s] <= hm)
        return 0; /* room without preemption: activation, not preemption */
    preempt_sort(ids, keys, n);
    int64_t top = -1, loss = 0, count = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t o = ids[i];
        active--;
        used_c -= core->slot_cores[o];
        used_m -= core->slot_memory[o];
        loss += keys[i];
        count += core->slot_njobs[o];
        for (int32_t h = core->slot_first_job[o]; h != CORE_NIL; h = core->job_next[h])
            if (core->job_rank[h] > top)
                top = core->job_rank[h];
        if (active < maxa && used_c + core->slot_cores[s] <= hc &&
            used_m + core->slot_memory[s] <= hm) {
            cost->rank = top;
            cost->loss = loss;
            cost->count = count;
            cost->slot = s;
            if (r != NULL) {
                r->n_jobs = count;
                r->n_slots = i + 1;
                if (count <= r->jobs_capacity && i + 1 <= r->slots_capacity) {
                    int64_t w = 0;
                    for (int64_t u = 0; u <= i; u++) {
                        r->suspend_slots[u] = ids[u];
                        for (int32_t h = core->slot_first_job[ids[u]]; h != CORE_NIL;
                             h = core->job_next[h])
                            r->jobs[w++] = h;
                    }
                    preempt_sort_ids(r->jobs, count);
                    preempt_sort_ids(r->suspend_slots, i + 1);
                }
            }
            return 1;
        }
    }
    return 0;
}

int preempt_find(core_t *core, int64_t job, int mode, double now, preempt_result_t *r)
{
    if (!core_job_exists(core, job))
        return CORE_ERR_NOENT;
    if (r == NULL || (mode != CORE_MODE_SUSPEND_JOBS && mode != CORE_MODE_REQUEUE &&
                      mode != CORE_MODE_SUSPEND_DOMAIN) || !core_valid_time(now))
        return CORE_ERR_INVAL;
    r->found = 0;
    r->slot = CORE_NIL;
    r->n_jobs = r->n_slots = 0;
    int32_t j = (int32_t)job;
    const core_shape_t *sh = &core->shapes[core->job_shape[j]];
    preempt_cost_t best = {0, 0, 0, 0}, cost;
    int found = 0;
    for (int32_t i = 0; i < sh->nkinds; i++) {
        int32_t kind = sh->kinds[i];
        if (kind >= core->kinds_cap)
            break;
        const core_kind_t *k = &core->kinds[kind];
        for (int32_t p = 0; p < k->nslots; p++) {
            int32_t s = k->slots[p];
            if (core->slot_cores[s] < sh->cores || core->slot_memory[s] < sh->memory)
                continue;
            int ok;
            if (mode == CORE_MODE_SUSPEND_DOMAIN) {
                if (core->slot_state[s] != CORE_SLOT_IDLE || core->slot_njobs[s] > 0)
                    continue;
                int rc = core_scratch_reserve(core, core->nslots);
                if (rc != CORE_OK)
                    return rc;
                ok = preempt_domain(core, j, s, &cost, NULL);
            } else {
                if (core->slot_state[s] != CORE_SLOT_ACTIVE || core->slot_njobs[s] == 0)
                    continue;
                int rc = core_scratch_reserve(core, core->slot_njobs[s]);
                if (rc != CORE_OK)
                    return rc;
                ok = preempt_in_slot(core, j, s, mode, now, &cost, NULL);
            }
            if (ok && (!found || preempt_cost_less(&cost, &best))) {
                best = cost;
                found = 1;
            }
        }
    }
    if (!found)
        return CORE_OK;
    int32_t s = (int32_t)best.slot;
    if (mode == CORE_MODE_SUSPEND_DOMAIN)
        preempt_domain(core, j, s, &cost, r);
    else
        preempt_in_slot(core, j, s, mode, now, &cost, r);
    r->found = 1;
    r->slot = s;
    r->cost[0] = best.rank;
    r->cost[1] = best.loss;
    r->cost[2] = best.count;
    r->cost[3] = best.slot;
    if (r->n_jobs > r->jobs_capacity || r->n_slots > r->slots_capacity)
        return CORE_ERR_SPACE;
    return CORE_OK;
}
