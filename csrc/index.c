/*
 * index.c - the index of slots that can take a job: per (kind, jobs in slot) a treap of
 * slots ordered by (free cores, free memory, slot handle).
 *
 * The treap's nodes are the slot handles themselves: left, right and subtree size live in
 * the slot table, the heap priority is a hash of the handle, so nothing is allocated when a
 * slot moves. Expected depth ~2 ln(n); insert, erase, lower_bound and rank are O(log n).
 * A node's key is read from the slot's free cores and memory, so a slot must leave the
 * index (index_out) before those change and come back (index_in) after.
 */
#define VMSCHED_CORE_INTERNAL
#include "vmsched_core.h"

#include <stdlib.h>

/* The treap priority of a slot: a fixed mix of its handle (splitmix64 finaliser). */
static uint64_t index_prio(int32_t slot)
{
    uint64_t z = (uint64_t)(uint32_t)slot + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Whether slot a goes above slot b in the heap order (ties, impossible in practice, by
 * handle). */
static int index_above(int32_t a, int32_t b)
{
    uint64_t pa = index_prio(a), pb = index_prio(b);
    return pa > pb || (pa == pb && a < b);
}

/* Whether node x's key is less than the key (fc, fm, s). */
static int index_less(const core_t *core, int32_t x, int64_t fc, int64_t fm, int64_t s)
{
    int64_t xc = core->slot_free_cores[x], xm = core->slot_free_memory[x];
    if (xc != fc)
        return xc < fc;
    if (xm != fm)
        return xm < fm;
    return x < s;
}

/* Whether node x's key is less than node y's. */
static int index_node_less(const core_t *core, int32_t x, int32_t y)
{
    return index_less(core, x, core->slot_free_cores[y], core->slot_free_memory[y], y);
}

static int32_t index_size(const core_t *core, int32_t t)
{
    return t == CORE_NIL ? 0 : core->slot_size[t];
}

static void index_fix(core_t *core, int32_t t)
{
    core->slot_size[t] = 1 + index_size(core, core->slot_left[t]) +
                         index_size(core, core->slot_right[t]);
}

/* Split treap t into the keys below node x's key (*l) and above it (*r); x is not in t. */
static void index_split(core_t *core, int32_t t, int32_t x, int32_t *l, int32_t *r)
{
    if (t == CORE_NIL) {
        *l = *r = CORE_NIL;
        return;
    }
    if (index_node_less(core, t, x)) {
        int32_t rl, rr;
        index_split(core, core->slot_right[t], x, &rl, &rr);
        core->slot_right[t] = rl;
        *l = t;
        *r = rr;
    } else {
        int32_t ll, lr;
        index_split(core, core->slot_left[t], x, &ll, &lr);
        core->slot_left[t] = lr;
        *l = ll;
        *r = t;
    }
    index_fix(core, t);
}

/* Join treaps a and b, all of a's keys below all of b's. */
static int32_t index_merge(core_t *core, int32_t a, int32_t b)
{
    if (a == CORE_NIL)
        return b;
    if (b == CORE_NIL)
        return a;
    if (index_above(a, b)) {
        core->slot_right[a] = index_merge(core, core->slot_right[a], b);
        index_fix(core, a);
        return a;
    }
    core->slot_left[b] = index_merge(core, a, core->slot_left[b]);
    index_fix(core, b);
    return b;
}

static int32_t index_insert(core_t *core, int32_t t, int32_t x)
{
    if (t == CORE_NIL || index_above(x, t)) {
        int32_t l, r;
        index_split(core, t, x, &l, &r);
        core->slot_left[x] = l;
        core->slot_right[x] = r;
        index_fix(core, x);
        return x;
    }
    if (index_node_less(core, x, t))
        core->slot_left[t] = index_insert(core, core->slot_left[t], x);
    else
        core->slot_right[t] = index_insert(core, core->slot_right[t], x);
    core->slot_size[t]++;
    return t;
}

static int32_t index_erase(core_t *core, int32_t t, int32_t x)
{
    if (t == x)
        return index_merge(core, core->slot_left[t], core->slot_right[t]);
    if (index_node_less(core, x, t))
        core->slot_left[t] = index_erase(core, core->slot_left[t], x);
    else
        core->slot_right[t] = index_erase(core, core->slot_right[t], x);
    core->slot_size[t]--;
    return t;
}

int32_t index_lower_bound(const core_t *core, int32_t t, int64_t fc, int64_t fm, int64_t s)
{
    int32_t found = CORE_NIL;
    while (t != CORE_NIL) {
        if (index_less(core, t, fc, fm, s)) {
            t = core->slot_right[t];
        } else {
            found = t;
            t = core->slot_left[t];
        }
    }
    return found;
}

int64_t index_count_less(const core_t *core, int32_t t, int64_t fc, int64_t fm, int64_t s)
{
    int64_t n = 0;
    while (t != CORE_NIL) {
        if (index_less(core, t, fc, fm, s)) {
            n += index_size(core, core->slot_left[t]) + 1;
            t = core->slot_right[t];
        } else {
            t = core->slot_left[t];
        }
    }
    return n;
}

/* Make room for a treap root of slots of this kind running njobs jobs, so that a later
 * index_in cannot fail. */
int index_reserve(core_t *core, int32_t kind, int64_t njobs)
{
    core_kind_t *k = &core->kinds[kind];
    if (njobs < k->nroots)
        return CORE_OK;
    int64_t n = k->nroots ? (int64_t)k->nroots * 2 : 4;
    if (n <= njobs)
        n = njobs + 1;
    void *p = k->roots;
    int rc = core_realloc(core, &p, sizeof(int32_t), k->nroots, n);
    if (rc != CORE_OK)
        return rc;
    k->roots = p;
    for (int64_t i = k->nroots; i < n; i++)
        k->roots[i] = CORE_NIL;
    k->nroots = (int32_t)n;
    return CORE_OK;
}

/* Take a slot out of its kind's counters and, if indexed, out of its treap. */
void index_out(core_t *core, int32_t slot)
{
    core_kind_t *k = &core->kinds[core->slot_kind[slot]];
    if (core->slot_state[slot] != CORE_SLOT_ACTIVE) {
        k->ninactive--;
    } else if (core->slot_indexed[slot]) {
        int32_t *root = &k->roots[core->slot_njobs[slot]];
        *root = index_erase(core, *root, slot);
        core->slot_indexed[slot] = 0;
        k->nindexed--;
    } else {
        k->nfull--;
    }
}

/* Put a slot into its kind's counters and, if ACTIVE and not full, into its treap (whose
 * root index_reserve made room for). */
void index_in(core_t *core, int32_t slot)
{
    core_kind_t *k = &core->kinds[core->slot_kind[slot]];
    if (core->slot_state[slot] != CORE_SLOT_ACTIVE) {
        k->ninactive++;
    } else if (core->slot_njobs[slot] < core->slot_jobcap[slot]) {
        int32_t *root = &k->roots[core->slot_njobs[slot]];
        *root = index_insert(core, *root, slot);
        core->slot_indexed[slot] = 1;
        k->nindexed++;
    } else {
        k->nfull++;
    }
}
