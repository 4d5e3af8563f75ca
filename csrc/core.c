/*
 * core.c - the core's state: hosts, slots, jobs, shapes and factors, and their changes.
 *
 * Tables are struct-of-arrays indexed by handle and grown geometrically. Every change
 * first makes all the room it may need (so it can fail with CORE_ERR_NOMEM before touching
 * anything), then checks its arguments, then mutates.
 */
#define VMSCHED_CORE_INTERNAL
#include "vmsched_core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int core_realloc(core_t *core, void **ptr, size_t elem, int64_t old_n, int64_t new_n)
{
    void *p = realloc(*ptr, elem * (size_t)new_n);
    if (p == NULL)
        return CORE_ERR_NOMEM;
    *ptr = p;
    core->bytes += (int64_t)elem * (new_n - old_n);
    return CORE_OK;
}

int core_valid_time(double t)
{
    return isfinite(t) && fabs(t) <= CORE_TIME_LIMIT;
}

int core_valid_weight(double w)
{
    return isfinite(w) && fabs(w) <= CORE_FLOAT_LIMIT;
}

static int core_in(int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

/* The next capacity for a table that must hold index need. */
static int64_t core_next_cap(int64_t cap, int64_t need)
{
    int64_t n = cap ? cap * 2 : 16;
    if (n <= need)
        n = need + 1;
    if (n > CORE_HANDLE_LIMIT)
        n = CORE_HANDLE_LIMIT;
    return n;
}

#define CORE_GROW(field, n)                                                                 \
    do {                                                                                    \
        void *p_ = core->field;                                                             \
        int rc_ = core_realloc(core, &p_, sizeof(*core->field), old, (n));                  \
        if (rc_ != CORE_OK)                                                                 \
            return rc_;                                                                     \
        core->field = p_;                                                                   \
    } while (0)

static int core_reserve_hosts(core_t *core, int64_t host)
{
    if (host < core->hosts_cap)
        return CORE_OK;
    int64_t old = core->hosts_cap, n = core_next_cap(old, host);
    CORE_GROW(host_live, n);
    CORE_GROW(host_cores, n);
    CORE_GROW(host_memory, n);
    CORE_GROW(host_max_active, n);
    CORE_GROW(host_first_slot, n);
    for (int64_t i = old; i < n; i++) {
        core->host_live[i] = 0;
        core->host_first_slot[i] = CORE_NIL;
    }
    core->hosts_cap = n;
    return CORE_OK;
}

static int core_reserve_slots(core_t *core, int64_t slot)
{
    if (slot < core->slots_cap)
        return CORE_OK;
    int64_t old = core->slots_cap, n = core_next_cap(old, slot);
    CORE_GROW(slot_host, n);
    CORE_GROW(slot_kind, n);
    CORE_GROW(slot_cores, n);
    CORE_GROW(slot_memory, n);
    CORE_GROW(slot_free_cores, n);
    CORE_GROW(slot_free_memory, n);
    CORE_GROW(slot_jobcap, n);
    CORE_GROW(slot_njobs, n);
    CORE_GROW(slot_first_job, n);
    CORE_GROW(slot_host_next, n);
    CORE_GROW(slot_host_prev, n);
    CORE_GROW(slot_kind_pos, n);
    CORE_GROW(slot_left, n);
    CORE_GROW(slot_right, n);
    CORE_GROW(slot_size, n);
    CORE_GROW(slot_state, n);
    CORE_GROW(slot_indexed, n);
    for (int64_t i = old; i < n; i++)
        core->slot_host[i] = CORE_NIL;
    core->slots_cap = n;
    return CORE_OK;
}

static int core_reserve_kinds(core_t *core, int64_t kind)
{
    if (kind < core->kinds_cap)
        return CORE_OK;
    int64_t old = core->kinds_cap, n = core_next_cap(old, kind);
    CORE_GROW(kinds, n);
    memset(core->kinds + old, 0, sizeof(core_kind_t) * (size_t)(n - old));
    core->kinds_cap = n;
    return CORE_OK;
}

static int core_reserve_jobs(core_t *core, int64_t job)
{
    if (job >= core->jobs_cap) {
        int64_t old = core->jobs_cap, n = core_next_cap(old, job);
        CORE_GROW(job_shape, n);
        CORE_GROW(job_cores, n);
        CORE_GROW(job_memory, n);
        CORE_GROW(job_cap, n);
        CORE_GROW(job_rank, n);
        CORE_GROW(job_entity, n);
        CORE_GROW(job_submit, n);
        CORE_GROW(job_start, n);
        CORE_GROW(job_slot, n);
        CORE_GROW(job_next, n);
        CORE_GROW(job_prev, n);
        CORE_GROW(job_pending_pos, n);
        CORE_GROW(job_suspended, n);
        for (int64_t i = old; i < n; i++)
            core->job_shape[i] = CORE_NIL;
        core->jobs_cap = n;
    }
    /* the pending array holds at most every job */
    if (core->njobs + 1 > core->pending_cap) {
        int64_t old = core->pending_cap, n = old ? old * 2 : 64;
        CORE_GROW(pending, n);
        core->pending_cap = n;
    }
    return CORE_OK;
}

int core_scratch_reserve(core_t *core, int64_t n)
{
    if (n <= core->scratch_cap)
        return CORE_OK;
    int64_t old = core->scratch_cap, m = old ? old * 2 : 64;
    if (m < n)
        m = n;
    CORE_GROW(scratch, m);
    CORE_GROW(scratch_key, m);
    CORE_GROW(scratch_min, m);
    core->scratch_cap = m;
    return CORE_OK;
}

int core_new(core_t **out)
{
    if (out == NULL)
        return CORE_ERR_INVAL;
    core_t *core = calloc(1, sizeof(core_t));
    if (core == NULL)
        return CORE_ERR_NOMEM;
    core->shape_free = CORE_NIL;
    core->shape_nbuckets = 64;
    core->shape_buckets = malloc(sizeof(int32_t) * 64);
    if (core->shape_buckets == NULL) {
        free(core);
        return CORE_ERR_NOMEM;
    }
    for (int i = 0; i < 64; i++)
        core->shape_buckets[i] = CORE_NIL;
    core->bytes = (int64_t)sizeof(core_t) + (int64_t)sizeof(int32_t) * 64;
    *out = core;
    return CORE_OK;
}

void core_free(core_t *core)
{
    if (core == NULL)
        return;
    free(core->host_live);
    free(core->host_cores);
    free(core->host_memory);
    free(core->host_max_active);
    free(core->host_first_slot);
    free(core->slot_host);
    free(core->slot_kind);
    free(core->slot_cores);
    free(core->slot_memory);
    free(core->slot_free_cores);
    free(core->slot_free_memory);
    free(core->slot_jobcap);
    free(core->slot_njobs);
    free(core->slot_first_job);
    free(core->slot_host_next);
    free(core->slot_host_prev);
    free(core->slot_kind_pos);
    free(core->slot_left);
    free(core->slot_right);
    free(core->slot_size);
    free(core->slot_state);
    free(core->slot_indexed);
    for (int64_t k = 0; k < core->kinds_cap; k++) {
        free(core->kinds[k].slots);
        free(core->kinds[k].roots);
    }
    free(core->kinds);
    free(core->job_shape);
    free(core->job_cores);
    free(core->job_memory);
    free(core->job_cap);
    free(core->job_rank);
    free(core->job_entity);
    free(core->job_submit);
    free(core->job_start);
    free(core->job_slot);
    free(core->job_next);
    free(core->job_prev);
    free(core->job_pending_pos);
    free(core->job_suspended);
    free(core->pending);
    for (int32_t i = 0; i < core->nshapes_alloc; i++)
        free(core->shapes[i].kinds);
    free(core->shapes);
    free(core->shape_buckets);
    free(core->factors);
    free(core->sort_keys);
    free(core->sort_tmp);
    free(core->scratch);
    free(core->scratch_key);
    free(core->scratch_min);
    free(core);
}

int core_stats(const core_t *core, core_stats_t *out)
{
    if (core == NULL || out == NULL)
        return CORE_ERR_INVAL;
    out->hosts = core->nhosts;
    out->slots = core->nslots;
    out->jobs = core->njobs;
    out->pending = core->npending;
    out->running = core->njobs - core->npending;
    out->shapes = core->nshapes;
    out->cycles = core->cycle;
    out->bytes = core->bytes;
    return CORE_OK;
}

/* ------------------------------------------------------------------------------ hosts */

int core_set_host(core_t *core, int64_t host, int64_t cores, int64_t memory, int64_t max_active)
{
    if (!core_in(host, 0, CORE_HANDLE_LIMIT - 1) || !core_in(cores, 0, CORE_CORES_LIMIT) ||
        !core_in(memory, 0, CORE_MEMORY_LIMIT) || !core_in(max_active, 1, CORE_RANK_LIMIT - 1))
        return CORE_ERR_INVAL;
    int rc = core_reserve_hosts(core, host);
    if (rc != CORE_OK)
        return rc;
    if (!core->host_live[host]) {
        core->host_live[host] = 1;
        core->host_first_slot[host] = CORE_NIL;
        core->nhosts++;
    }
    core->host_cores[host] = cores;
    core->host_memory[host] = memory;
    core->host_max_active[host] = max_active;
    return CORE_OK;
}

int core_add_host(core_t *core, int64_t host, int64_t cores, int64_t memory, int64_t max_active)
{
    return core_set_host(core, host, cores, memory, max_active);
}

static int core_host_exists(const core_t *core, int64_t host)
{
    return host >= 0 && host < core->hosts_cap && core->host_live[host];
}

int core_remove_host(core_t *core, int64_t host)
{
    if (!core_host_exists(core, host))
        return CORE_ERR_NOENT;
    if (core->host_first_slot[host] != CORE_NIL)
        return CORE_ERR_BUSY;
    core->host_live[host] = 0;
    core->nhosts--;
    return CORE_OK;
}

/* ------------------------------------------------------------------------------ slots */

static int core_slot_exists(const core_t *core, int64_t slot)
{
    return slot >= 0 && slot < core->slots_cap && core->slot_host[slot] != CORE_NIL;
}

static int core_valid_state(int64_t state)
{
    return core_in(state, CORE_SLOT_IDLE, CORE_SLOT_UNAVAILABLE);
}

int core_add_slot(core_t *core, int64_t slot, int64_t host, int64_t kind, int64_t cores,
                  int64_t memory, int64_t state)
{
    if (!core_in(slot, 0, CORE_HANDLE_LIMIT - 1))
        return CORE_ERR_INVAL;
    if (core_slot_exists(core, slot))
        return CORE_ERR_EXISTS;
    if (!core_host_exists(core, host))
        return CORE_ERR_NOENT;
    if (!core_in(kind, 0, CORE_HANDLE_LIMIT - 1) || !core_in(cores, 0, CORE_CORES_LIMIT) ||
        !core_in(memory, 0, CORE_MEMORY_LIMIT) || !core_valid_state(state))
        return CORE_ERR_INVAL;
    int rc = core_reserve_slots(core, slot);
    if (rc == CORE_OK)
        rc = core_reserve_kinds(core, kind);
    if (rc == CORE_OK)
        rc = index_reserve(core, (int32_t)kind, 0);
    core_kind_t *k = rc == CORE_OK ? &core->kinds[kind] : NULL;
    if (rc == CORE_OK && k->nslots == k->slots_cap) {
        int64_t n = k->slots_cap ? (int64_t)k->slots_cap * 2 : 8;
        void *p = k->slots;
        rc = core_realloc(core, &p, sizeof(int32_t), k->slots_cap, n);
        if (rc == CORE_OK) {
            k->slots = p;
            k->slots_cap = (int32_t)n;
        }
    }
    if (rc != CORE_OK)
        return rc;

    int32_t s = (int32_t)slot;
    core->slot_host[s] = (int32_t)host;
    core->slot_kind[s] = (int32_t)kind;
    core->slot_cores[s] = cores;
    core->slot_memory[s] = memory;
    core->slot_free_cores[s] = cores;
    core->slot_free_memory[s] = memory;
    core->slot_jobcap[s] = CORE_UNLIMITED_CAP;
    core->slot_njobs[s] = 0;
    core->slot_first_job[s] = CORE_NIL;
    core->slot_left[s] = core->slot_right[s] = CORE_NIL;
    core->slot_size[s] = 1;
    core->slot_state[s] = (uint8_t)state;
    core->slot_indexed[s] = 0;
    /* host list: push front */
    int32_t head = core->host_first_slot[host];
    core->slot_host_prev[s] = CORE_NIL;
    core->slot_host_next[s] = head;
    if (head != CORE_NIL)
        core->slot_host_prev[head] = s;
    core->host_first_slot[host] = s;
    /* kind list */
    core->slot_kind_pos[s] = k->nslots;
    k->slots[k->nslots++] = s;
    core->nslots++;
    index_in(core, s);
    return CORE_OK;
}

int core_set_slot_state(core_t *core, int64_t slot, int64_t state)
{
    if (!core_slot_exists(core, slot))
        return CORE_ERR_NOENT;
    if (!core_valid_state(state))
        return CORE_ERR_INVAL;
    if (core->slot_state[slot] == state)
        return CORE_OK;
    /* the index and the kind counters only tell ACTIVE from the rest */
    index_out(core, (int32_t)slot);
    core->slot_state[slot] = (uint8_t)state;
    index_in(core, (int32_t)slot);
    return CORE_OK;
}

int core_set_slot_states(core_t *core, const int64_t *slots, int64_t n, int64_t state)
{
    if (n < 0 || (n > 0 && slots == NULL) || !core_valid_state(state))
        return CORE_ERR_INVAL;
    /* all or nothing: every handle is checked before any slot changes */
    for (int64_t i = 0; i < n; i++)
        if (!core_slot_exists(core, slots[i]))
            return CORE_ERR_NOENT;
    for (int64_t i = 0; i < n; i++)
        core_set_slot_state(core, slots[i], state);
    return CORE_OK;
}

int core_set_slot_active(core_t *core, int64_t slot, int active)
{
    return core_set_slot_state(core, slot, active ? CORE_SLOT_ACTIVE : CORE_SLOT_IDLE);
}

int core_remove_slot(core_t *core, int64_t slot)
{
    if (!core_slot_exists(core, slot))
        return CORE_ERR_NOENT;
    if (core->slot_njobs[slot] > 0)
        return CORE_ERR_BUSY;
    int32_t s = (int32_t)slot;
    index_out(core, s);
    int32_t prev = core->slot_host_prev[s], next = core->slot_host_next[s];
    if (prev != CORE_NIL)
        core->slot_host_next[prev] = next;
    else
        core->host_first_slot[core->slot_host[s]] = next;
    if (next != CORE_NIL)
        core->slot_host_prev[next] = prev;
    core_kind_t *k = &core->kinds[core->slot_kind[s]];
    int32_t pos = core->slot_kind_pos[s], last = k->slots[k->nslots - 1];
    k->slots[pos] = last;
    core->slot_kind_pos[last] = pos;
    k->nslots--;
    core->slot_host[s] = CORE_NIL;
    core->nslots--;
    return CORE_OK;
}

/* ------------------------------------------------------------------------------ shapes */

static uint64_t core_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdULL;
}

static uint64_t core_shape_hash(const int32_t *kinds, int32_t n, int64_t cores, int64_t memory,
                                int64_t cap)
{
    uint64_t h = core_mix(0x12345, (uint64_t)n);
    for (int32_t i = 0; i < n; i++)
        h = core_mix(h, (uint64_t)kinds[i]);
    h = core_mix(h, (uint64_t)cores);
    h = core_mix(h, (uint64_t)memory);
    return core_mix(h, (uint64_t)cap);
}

/* Find or create the shape and take a reference on it; *out is its id. */
static int core_shape_intern(core_t *core, const int32_t *kinds, int32_t n, int64_t cores,
                             int64_t memory, int64_t cap, int32_t *out)
{
    uint64_t h = core_shape_hash(kinds, n, cores, memory, cap);
    int32_t nb = core->shape_nbuckets;
    for (int32_t i = core->shape_buckets[h & (uint64_t)(nb - 1)]; i != CORE_NIL;
         i = core->shapes[i].next) {
        core_shape_t *sh = &core->shapes[i];
        if (sh->hash == h && sh->nkinds == n && sh->cores == cores && sh->memory == memory &&
            sh->cap == cap && memcmp(sh->kinds, kinds, sizeof(int32_t) * (size_t)n) == 0) {
            sh->refs++;
            *out = i;
            return CORE_OK;
        }
    }
    /* room: a shapes entry, the kinds copy, and a bigger hash table if it gets crowded */
    if (core->shape_free == CORE_NIL && core->nshapes_alloc == core->shapes_cap) {
        int64_t old = core->shapes_cap, m = old ? old * 2 : 64;
        CORE_GROW(shapes, m);
        core->shapes_cap = (int32_t)m;
    }
    if (core->nshapes + 1 > nb) {
        int32_t nnb = nb * 2;
        int32_t *b = malloc(sizeof(int32_t) * (size_t)nnb);
        if (b == NULL)
            return CORE_ERR_NOMEM;
        for (int32_t i = 0; i < nnb; i++)
            b[i] = CORE_NIL;
        for (int32_t i = 0; i < core->nshapes_alloc; i++) {
            core_shape_t *sh = &core->shapes[i];
            if (sh->refs == 0)
                continue;
            uint32_t at = (uint32_t)(sh->hash & (uint64_t)(nnb - 1));
            sh->next = b[at];
            b[at] = i;
        }
        free(core->shape_buckets);
        core->bytes += (int64_t)sizeof(int32_t) * (nnb - nb);
        core->shape_buckets = b;
        core->shape_nbuckets = nb = nnb;
    }
    int32_t *kc = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (kc == NULL)
        return CORE_ERR_NOMEM;
    if (n > 0)
        memcpy(kc, kinds, sizeof(int32_t) * (size_t)n);
    int32_t id;
    if (core->shape_free != CORE_NIL) {
        id = core->shape_free;
        core->shape_free = core->shapes[id].next;
    } else {
        id = core->nshapes_alloc++;
    }
    core_shape_t *sh = &core->shapes[id];
    sh->kinds = kc;
    sh->nkinds = n;
    sh->refs = 1;
    sh->cores = cores;
    sh->memory = memory;
    sh->cap = cap;
    sh->hash = h;
    sh->reason_row = 0;
    sh->failed_cycle = -1;
    sh->reason_cycle = -1;
    uint32_t at = (uint32_t)(h & (uint64_t)(nb - 1));
    sh->next = core->shape_buckets[at];
    core->shape_buckets[at] = id;
    core->nshapes++;
    core->bytes += (int64_t)sizeof(int32_t) * (n > 0 ? n : 1);
    *out = id;
    return CORE_OK;
}

static void core_shape_release(core_t *core, int32_t id)
{
    core_shape_t *sh = &core->shapes[id];
    if (--sh->refs > 0)
        return;
    int32_t *link = &core->shape_buckets[sh->hash & (uint64_t)(core->shape_nbuckets - 1)];
    while (*link != id)
        link = &core->shapes[*link].next;
    *link = sh->next;
    core->bytes -= (int64_t)sizeof(int32_t) * (sh->nkinds > 0 ? sh->nkinds : 1);
    free(sh->kinds);
    sh->kinds = NULL;
    sh->next = core->shape_free;
    core->shape_free = id;
    core->nshapes--;
}

/* ------------------------------------------------------------------------------ jobs */

int core_job_exists(const core_t *core, int64_t job)
{
    return job >= 0 && job < core->jobs_cap && core->job_shape[job] != CORE_NIL;
}

static void core_pending_add(core_t *core, int32_t job)
{
    core->job_pending_pos[job] = (int32_t)core->npending;
    core->pending[core->npending++] = job;
}

static void core_pending_drop(core_t *core, int32_t job)
{
    int32_t pos = core->job_pending_pos[job];
    if (pos == CORE_NIL)
        return;
    int32_t last = core->pending[--core->npending];
    core->pending[pos] = last;
    core->job_pending_pos[last] = pos;
    core->job_pending_pos[job] = CORE_NIL;
}

static int core_cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int core_add_job(core_t *core, int64_t job, const int64_t *kinds, int64_t nkinds, int64_t cores,
                 int64_t memory, int64_t cap, int64_t rank, int64_t entity, double submit)
{
    if (!core_in(job, 0, CORE_HANDLE_LIMIT - 1))
        return CORE_ERR_INVAL;
    if (core_job_exists(core, job))
        return CORE_ERR_EXISTS;
    if (!core_in(cores, 0, CORE_CORES_LIMIT) || !core_in(memory, 0, CORE_MEMORY_LIMIT) ||
        !core_in(cap, 1, CORE_UNLIMITED_CAP) || !core_in(rank, 0, CORE_RANK_LIMIT - 1) ||
        !core_in(entity, 0, CORE_HANDLE_LIMIT - 1) || !core_valid_time(submit) ||
        nkinds < 0 || nkinds > CORE_HANDLE_LIMIT || (nkinds > 0 && kinds == NULL))
        return CORE_ERR_INVAL;
    for (int64_t i = 0; i < nkinds; i++)
        if (!core_in(kinds[i], 0, CORE_HANDLE_LIMIT - 1))
            return CORE_ERR_INVAL;
    int rc = core_reserve_jobs(core, job);
    if (rc != CORE_OK)
        return rc;
    int32_t *ks = malloc(sizeof(int32_t) * (size_t)(nkinds > 0 ? nkinds : 1));
    if (ks == NULL)
        return CORE_ERR_NOMEM;
    for (int64_t i = 0; i < nkinds; i++)
        ks[i] = (int32_t)kinds[i];
    qsort(ks, (size_t)nkinds, sizeof(int32_t), core_cmp_i32);
    int32_t n = 0;
    for (int64_t i = 0; i < nkinds; i++)
        if (n == 0 || ks[n - 1] != ks[i])
            ks[n++] = ks[i];
    int32_t shape;
    rc = core_shape_intern(core, ks, n, cores, memory, cap, &shape);
    free(ks);
    if (rc != CORE_OK)
        return rc;
    int32_t j = (int32_t)job;
    core->job_shape[j] = shape;
    core->job_cores[j] = cores;
    core->job_memory[j] = memory;
    core->job_cap[j] = cap;
    core->job_rank[j] = (int32_t)rank;
    core->job_entity[j] = (int32_t)entity;
    core->job_submit[j] = submit;
    core->job_start[j] = 0.0;
    core->job_slot[j] = CORE_NIL;
    core->job_next[j] = core->job_prev[j] = CORE_NIL;
    core->job_suspended[j] = 0;
    core->njobs++;
    core_pending_add(core, j);
    return CORE_OK;
}

/* Put a pending job into a slot (checked by the caller, roots reserved). */
int core_attach(core_t *core, int32_t job, int32_t slot, double now)
{
    int rc = index_reserve(core, core->slot_kind[slot], (int64_t)core->slot_njobs[slot] + 1);
    if (rc != CORE_OK)
        return rc;
    index_out(core, slot);
    int32_t head = core->slot_first_job[slot];
    core->job_prev[job] = CORE_NIL;
    core->job_next[job] = head;
    if (head != CORE_NIL)
        core->job_prev[head] = job;
    core->slot_first_job[slot] = job;
    core->slot_njobs[slot]++;
    core->slot_free_cores[slot] -= core->job_cores[job];
    core->slot_free_memory[slot] -= core->job_memory[job];
    if (core->job_cap[job] < core->slot_jobcap[slot])
        core->slot_jobcap[slot] = core->job_cap[job];
    index_in(core, slot);
    core->job_slot[job] = slot;
    core->job_start[job] = now;
    core->job_suspended[job] = 0;
    core_pending_drop(core, job);
    return CORE_OK;
}

/* Take a job out of its slot; it is then neither running nor pending. */
void core_detach(core_t *core, int32_t job)
{
    int32_t slot = core->job_slot[job];
    index_out(core, slot);
    int32_t prev = core->job_prev[job], next = core->job_next[job];
    if (prev != CORE_NIL)
        core->job_next[prev] = next;
    else
        core->slot_first_job[slot] = next;
    if (next != CORE_NIL)
        core->job_prev[next] = prev;
    core->slot_njobs[slot]--;
    core->slot_free_cores[slot] += core->job_cores[job];
    core->slot_free_memory[slot] += core->job_memory[job];
    int64_t cap = CORE_UNLIMITED_CAP;
    for (int32_t h = core->slot_first_job[slot]; h != CORE_NIL; h = core->job_next[h])
        if (core->job_cap[h] < cap)
            cap = core->job_cap[h];
    core->slot_jobcap[slot] = cap;
    index_in(core, slot);
    core->job_slot[job] = CORE_NIL;
    core->job_suspended[job] = 0;
}

int core_remove_job(core_t *core, int64_t job)
{
    if (!core_job_exists(core, job))
        return CORE_ERR_NOENT;
    int32_t j = (int32_t)job;
    if (core->job_slot[j] != CORE_NIL)
        core_detach(core, j);
    else
        core_pending_drop(core, j);
    core_shape_release(core, core->job_shape[j]);
    core->job_shape[j] = CORE_NIL;
    core->njobs--;
    return CORE_OK;
}

int core_start_job(core_t *core, int64_t job, int64_t slot, double now)
{
    if (!core_job_exists(core, job) || !core_slot_exists(core, slot))
        return CORE_ERR_NOENT;
    if (!core_valid_time(now))
        return CORE_ERR_INVAL;
    int32_t j = (int32_t)job, s = (int32_t)slot;
    if (core->job_slot[j] != CORE_NIL)
        return CORE_ERR_BUSY;
    if (core->job_cores[j] > core->slot_free_cores[s] ||
        core->job_memory[j] > core->slot_free_memory[s])
        return CORE_ERR_NOFIT;
    int64_t cap = core->slot_jobcap[s] < core->job_cap[j] ? core->slot_jobcap[s] : core->job_cap[j];
    if (core->slot_njobs[s] >= cap)
        return CORE_ERR_FULL;
    return core_attach(core, j, s, now);
}

int core_suspend_job(core_t *core, int64_t job)
{
    if (!core_job_exists(core, job))
        return CORE_ERR_NOENT;
    if (core->job_slot[job] == CORE_NIL)
        return CORE_ERR_STATE;
    core->job_suspended[job] = 1;
    return CORE_OK;
}

int core_resume_job(core_t *core, int64_t job)
{
    if (!core_job_exists(core, job))
        return CORE_ERR_NOENT;
    if (core->job_slot[job] == CORE_NIL)
        return CORE_ERR_STATE;
    core->job_suspended[job] = 0;
    return CORE_OK;
}

int core_requeue_job(core_t *core, int64_t job)
{
    if (!core_job_exists(core, job))
        return CORE_ERR_NOENT;
    int32_t j = (int32_t)job;
    if (core->job_slot[j] != CORE_NIL) {
        core_detach(core, j);
        core_pending_add(core, j);
    }
    return CORE_OK;
}

int core_set_factors(core_t *core, const double *factors, int64_t n)
{
    if (n < 0 || n > CORE_HANDLE_LIMIT || (n > 0 && factors == NULL))
        return CORE_ERR_INVAL;
    for (int64_t i = 0; i < n; i++)
        if (!core_valid_weight(factors[i]))
            return CORE_ERR_INVAL;
    double *f = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (f == NULL)
        return CORE_ERR_NOMEM;
    if (n > 0)
        memcpy(f, factors, sizeof(double) * (size_t)n);
    free(core->factors);
    core->bytes += (int64_t)sizeof(double) * (n - core->nfactors);
    core->factors = f;
    core->nfactors = n;
    return CORE_OK;
}
