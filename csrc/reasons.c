/*
 * reasons.c - why a job's shape fits no slot: counts of slots per reason, from counters and
 * treap rank queries instead of a scan of all slots.
 *
 * For a shape (kinds K, cores c, memory m, cap p), each slot is counted once, under the
 * first reason that applies:
 *   WRONG_KIND  all slots minus the slots of the kinds in K;
 *   NOT_ACTIVE  inactive slots of K's kinds;
 *   FULL        active slots full by their own cap (unindexed), plus indexed slots that
 *               run n >= p jobs;
 *   CORES       indexed slots with n < p and free cores < c (a rank query per n);
 *   MEMORY      indexed slots with n < p, free cores >= c and free memory < m: per
 *               free-core level >= c, a rank query for (level, m, -).
 */
#define VMSCHED_CORE_INTERNAL
#include "vmsched_core.h"

#include <stdint.h>
#include <string.h>

void reasons_for_shape(const core_t *core, const core_shape_t *shape, int64_t *counts)
{
    memset(counts, 0, sizeof(int64_t) * CORE_NREASONS);
    int64_t of_kinds = 0;
    for (int32_t i = 0; i < shape->nkinds; i++) {
        int32_t kind = shape->kinds[i];
        if (kind >= core->kinds_cap)
            break;
        const core_kind_t *k = &core->kinds[kind];
        of_kinds += k->nslots;
        counts[CORE_REASON_NOT_ACTIVE] += k->ninactive;
        counts[CORE_REASON_FULL] += k->nfull;
        int64_t nmax = shape->cap < k->nroots ? shape->cap : k->nroots;
        int64_t below_cap = 0;
        for (int64_t n = 0; n < nmax; n++) {
            int32_t root = k->roots[n];
            if (root == CORE_NIL)
                continue;
            below_cap += core->slot_size[root];
            counts[CORE_REASON_CORES] += index_count_less(core, root, shape->cores, INT64_MIN, -1);
            if (shape->memory == 0)
                continue; /* nothing is short of 0 MB */
            int64_t level = shape->cores;
            for (;;) {
                int32_t x = index_lower_bound(core, root, level, INT64_MIN, -1);
                if (x == CORE_NIL)
                    break;
                int64_t fc = core->slot_free_cores[x];
                counts[CORE_REASON_MEMORY] +=
                    index_count_less(core, root, fc, shape->memory, -1) -
                    index_count_less(core, root, fc, INT64_MIN, -1);
                level = fc + 1;
            }
        }
        counts[CORE_REASON_FULL] += k->nindexed - below_cap;
    }
    counts[CORE_REASON_WRONG_KIND] = core->nslots - of_kinds;
}

int reasons_for_job(const core_t *core, int64_t job, int64_t *counts)
{
    if (!core_job_exists(core, job))
        return CORE_ERR_NOENT;
    if (counts == NULL)
        return CORE_ERR_INVAL;
    reasons_for_shape(core, &core->shapes[core->job_shape[job]], counts);
    return CORE_OK;
}
