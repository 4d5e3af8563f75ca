/*
 * match.c - priorities, the priority order, the best-fit search and the matching cycle.
 */
#define VMSCHED_CORE_INTERNAL
#include "vmsched_core.h"

#include <string.h>

/* The priority of a job, in the reference's operation order. */
static double match_prio(const core_t *core, int32_t job, double now, double w_fs,
                         double w_class, double w_age)
{
    int32_t e = core->job_entity[job];
    double f = e < core->nfactors ? core->factors[e] : 0.0;
    double age_h = (now - core->job_submit[job]) / 3600.0;
    if (age_h < 0.0)
        age_h = 0.0;
    return w_fs * f + w_class * (double)core->job_rank[job] + w_age * age_h;
}

static int match_valid(double now, double w_fs, double w_class, double w_age)
{
    return core_valid_time(now) && core_valid_weight(w_fs) && core_valid_weight(w_class) &&
           core_valid_weight(w_age);
}

int match_priority(const core_t *core, int64_t job, double now, double w_fs, double w_class,
                   double w_age, double *out)
{
    if (!core_job_exists(core, job))
        return CORE_ERR_NOENT;
    if (!match_valid(now, w_fs, w_class, w_age) || out == NULL)
        return CORE_ERR_INVAL;
    *out = match_prio(core, (int32_t)job, now, w_fs, w_class, w_age);
    return CORE_OK;
}

/* (-prio, submit, job) ascending; -0.0 and 0.0 compare equal, as in Python. */
static int match_key_less(const core_sortkey_t *a, const core_sortkey_t *b)
{
    if (a->key != b->key)
        return a->key < b->key;
    if (a->submit != b->submit)
        return a->submit < b->submit;
    return a->job < b->job;
}

/* Merge sort of a[0..n) using tmp; the sorted result ends in a. */
static void match_sort(core_sortkey_t *a, core_sortkey_t *tmp, int64_t n)
{
    const int64_t run = 16;
    for (int64_t lo = 0; lo < n; lo += run) { /* insertion sort of short runs */
        int64_t hi = lo + run < n ? lo + run : n;
        for (int64_t i = lo + 1; i < hi; i++) {
            core_sortkey_t x = a[i];
            int64_t k = i;
            while (k > lo && match_key_less(&x, &a[k - 1])) {
                a[k] = a[k - 1];
                k--;
            }
            a[k] = x;
        }
    }
    core_sortkey_t *src = a, *dst = tmp;
    for (int64_t width = run; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            int64_t mid = lo + width < n ? lo + width : n;
            int64_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t i = lo, k = mid, o = lo;
            while (i < mid && k < hi)
                dst[o++] = match_key_less(&src[k], &src[i]) ? src[k++] : src[i++];
            while (i < mid)
                dst[o++] = src[i++];
            while (k < hi)
                dst[o++] = src[k++];
        }
        core_sortkey_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, sizeof(core_sortkey_t) * (size_t)n);
}

/* Sort the pending jobs into core->sort_keys. */
static int match_sorted(core_t *core, double now, double w_fs, double w_class, double w_age)
{
    int64_t n = core->npending;
    if (n > core->sort_cap) {
        int64_t m = core->sort_cap ? core->sort_cap * 2 : 1024;
        if (m < n)
            m = n;
        void *p = core->sort_keys;
        int rc = core_realloc(core, &p, sizeof(core_sortkey_t), core->sort_cap, m);
        if (rc != CORE_OK)
            return rc;
        core->sort_keys = p;
        p = core->sort_tmp;
        rc = core_realloc(core, &p, sizeof(core_sortkey_t), core->sort_cap, m);
        if (rc != CORE_OK) {
            core->bytes -= (int64_t)sizeof(core_sortkey_t) * (m - core->sort_cap);
            return rc; /* sort_keys is bigger than sort_cap says: harmless */
        }
        core->sort_tmp = p;
        core->sort_cap = m;
    }
    core_sortkey_t *k = core->sort_keys;
    for (int64_t i = 0; i < n; i++) {
        int32_t j = core->pending[i];
        k[i].key = -match_prio(core, j, now, w_fs, w_class, w_age);
        k[i].submit = core->job_submit[j];
        k[i].job = j;
    }
    match_sort(k, core->sort_tmp, n);
    return CORE_OK;
}

int match_order(core_t *core, double now, double w_fs, double w_class, double w_age,
                int32_t *order, int64_t capacity, int64_t *n_out)
{
    if (!match_valid(now, w_fs, w_class, w_age) || n_out == NULL)
        return CORE_ERR_INVAL;
    *n_out = core->npending;
    if (capacity < core->npending || (core->npending > 0 && order == NULL))
        return CORE_ERR_SPACE;
    int rc = match_sorted(core, now, w_fs, w_class, w_age);
    if (rc != CORE_OK)
        return rc;
    for (int64_t i = 0; i < core->npending; i++)
        order[i] = core->sort_keys[i].job;
    return CORE_OK;
}

/* The best-fit slot for a shape: least (free cores, free memory, slot) among the indexed
 * slots of its kinds that run fewer jobs than its cap and have room; CORE_NIL if none. */
int32_t match_best_for_shape(const core_t *core, const core_shape_t *shape)
{
    int32_t best = CORE_NIL;
    int64_t bc = 0, bm = 0;
    int64_t cores = shape->cores, memory = shape->memory;
    for (int32_t i = 0; i < shape->nkinds; i++) {
        int32_t kind = shape->kinds[i];
        if (kind >= core->kinds_cap)
            break; /* kinds ascend: none of the rest has slots either */
        const core_kind_t *k = &core->kinds[kind];
        if (k->nindexed == 0)
            continue;
        int64_t nmax = shape->cap < k->nroots ? shape->cap : k->nroots;
        for (int64_t n = 0; n < nmax; n++) {
            int32_t root = k->roots[n];
            if (root == CORE_NIL)
                continue;
            int64_t level = cores;
            for (;;) {
                int32_t x = index_lower_bound(core, root, level, memory, -1);
                if (x == CORE_NIL)
                    break;
                int64_t fc = core->slot_free_cores[x], fm = core->slot_free_memory[x];
                if (best != CORE_NIL && fc > bc)
                    break;
                if (fm >= memory) { /* fc == level, or the first slot of a higher level */
                    if (best == CORE_NIL || fc < bc || (fc == bc && (fm < bm ||
                                                                     (fm == bm && x < best)))) {
                        best = x;
                        bc = fc;
                        bm = fm;
                    }
                    break;
                }
                level = fc; /* a higher level whose least memory is short: look inside it */
            }
        }
    }
    return best;
}

int match_best_slot(const core_t *core, int64_t job, int64_t *slot_out)
{
    if (!core_job_exists(core, job))
        return CORE_ERR_NOENT;
    if (slot_out == NULL)
        return CORE_ERR_INVAL;
    *slot_out = match_best_for_shape(core, &core->shapes[core->job_shape[job]]);
    return CORE_OK;
}

int match_run(core_t *core, const match_params_t *p, match_result_t *r)
{
    if (p == NULL || r == NULL || !match_valid(p->now, p->w_fs, p->w_class, p->w_age))
        return CORE_ERR_INVAL;
    int64_t n = core->npending;
    r->n_order = r->n_placed = r->n_pending = r->n_reasons = 0;
    if (r->jobs_capacity < n || r->reasons_capacity < core->nshapes ||
        (n > 0 && (r->order == NULL || r->placed_jobs == NULL || r->placed_slots == NULL ||
                   r->pending_jobs == NULL || r->pending_reason_ids == NULL ||
                   r->reasons == NULL)))
        return CORE_ERR_SPACE;
    int rc = match_sorted(core, p->now, p->w_fs, p->w_class, p->w_age);
    if (rc != CORE_OK)
        return rc;
    /* Every placement needs the root for njobs + 1 of its slot's kind; reserving it can
     * fail, so a failure mid-cycle undoes the placements made so far. */
    int64_t cycle = ++core->cycle;
    const core_sortkey_t *keys = core->sort_keys;
    int64_t placed = 0, pending = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t j = keys[i].job;
        r->order[i] = j;
        core_shape_t *sh = &core->shapes[core->job_shape[j]];
        if (sh->failed_cycle == cycle || (p->limit >= 0 && placed >= p->limit)) {
            r->pending_jobs[pending++] = j;
            continue;
        }
        int32_t s = match_best_for_shape(core, sh);
        if (s == CORE_NIL) {
            sh->failed_cycle = cycle;
            r->pending_jobs[pending++] = j;
            continue;
        }
        rc = core_attach(core, j, s, p->now);
        if (rc != CORE_OK) {
            for (int64_t u = placed - 1; u >= 0; u--) {
                int32_t pj = r->placed_jobs[u];
                core_detach(core, pj);
                core->job_pending_pos[pj] = (int32_t)core->npending;
                core->pending[core->npending++] = pj;
            }
            return rc;
        }
        r->placed_jobs[placed] = j;
        r->placed_slots[placed] = s;
        placed++;
    }
    /* reasons from the final state, once per shape */
    int64_t rows = 0;
    for (int64_t i = 0; i < pending; i++) {
        core_shape_t *sh = &core->shapes[core->job_shape[r->pending_jobs[i]]];
        if (sh->reason_cycle != cycle) {
            sh->reason_cycle = cycle;
            sh->reason_row = (int32_t)rows;
            reasons_for_shape(core, sh, r->reasons + rows * CORE_NREASONS);
            rows++;
        }
        r->pending_reason_ids[i] = sh->reason_row;
    }
    if (p->dry_run) {
        for (int64_t u = placed - 1; u >= 0; u--) {
            int32_t pj = r->placed_jobs[u];
            core_detach(core, pj);
            core->job_pending_pos[pj] = (int32_t)core->npending;
            core->pending[core->npending++] = pj;
        }
    }
    r->n_order = n;
    r->n_placed = placed;
    r->n_pending = pending;
    r->n_reasons = rows;
    return CORE_OK;
}
