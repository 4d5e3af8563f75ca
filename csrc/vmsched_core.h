/*
 * vmsched_core.h - the C matching core of vmsched (the one umbrella header).
 *
 * The core keeps a batch cluster's state between scheduling cycles: hosts, VM slots
 * ("domains"), jobs and the fair-share factors. Callers feed it changes (a job queued,
 * started, ended, suspended, requeued; a domain activated or lost) and run a cycle with
 * match_run(); a cycle never rebuilds its tables. Everything is addressed by small integer
 * handles that the caller assigns (0 <= handle < CORE_HANDLE_LIMIT); the tables are arrays
 * indexed by handle, so handles should be dense (recycle them). vmsched/matching.py holds
 * the Python reference (PyEngine) of exactly this algorithm; property tests keep both equal.
 *
 * ALGORITHM
 * ---------
 * Hosts. A host has a size in cores and MB and at most max_active slots taking room on it
 * at once. core_set_host adds a host or changes its size and max_active (its slots stay;
 * only later preemption searches see the change); core_add_host is the same call;
 * core_remove_host drops a host that holds no slots (else CORE_ERR_BUSY).
 *
 * Slots. A slot has a kind (the caller's id for "image + host features"), a size in cores
 * and MB, a state and the jobs it runs. The states (vmsched.matching.SLOT_*, same numbers):
 *   CORE_SLOT_IDLE (0)        inactive but activatable (Magrathea "occupied"/"suspended"):
 *                             takes no host room, takes no jobs, may be the domain that
 *                             domain-mode preemption activates (if it holds no jobs);
 *   CORE_SLOT_ACTIVE (1)      free or running: takes host room, takes jobs, may be
 *                             suspended as a domain-mode victim;
 *   CORE_SLOT_STARTING (2)    booting or resuming: takes host room, takes no jobs, is never
 *                             activated nor suspended by preemption;
 *   CORE_SLOT_UNAVAILABLE (3) down or shutting down: takes no host room, takes no jobs, is
 *                             never chosen.
 * Any other state is CORE_ERR_INVAL; core_set_slot_active(slot, a) is
 * core_set_slot_state(slot, a ? ACTIVE : IDLE); core_set_slot_states sets n slots to one
 * state in one call (all or none: an unknown handle changes nothing). Jobs may sit in a slot of any state (a
 * suspended domain keeps its jobs); the state only decides what the searches may use.
 * A slot's cap is the smallest per-domain cap among its jobs (CORE_UNLIMITED_CAP when
 * empty); it is *full* when it runs cap jobs.
 * An ACTIVE slot that is not full is *indexed*: it sits in the ordered set of its
 * (kind, jobs it runs) pair, ordered by the key (free cores, free memory, slot handle).
 * The ordered set is a treap whose nodes are the slot handles themselves (left/right/size
 * arrays in the slot table, priority = a hash of the handle), so indexing allocates nothing.
 *
 * Priority. prio = w_fs * factor[entity] + w_class * rank + w_age * age_h, evaluated left
 * to right in IEEE double exactly as Python does (compile with -ffp-contract=off), where
 * age_h = (now - submit) / 3600.0 clamped at 0, and factor = 0.0 for an entity beyond the
 * factors array. Pending jobs are sorted by (-prio, submit, handle); -0.0 equals 0.0.
 *
 * Matching (match_run). Jobs are taken in priority order. A job of shape (allowed kinds,
 * cores, memory, cap) may use indexed slots of its kinds that run n < cap jobs; among them
 * it takes the best fit, the least (free cores, free memory, slot). For each (kind, n) the
 * search is a lower_bound for (cores, memory, -) in the treap: the slot found either is in
 * the level free cores == cores (then it fits), or is the first slot of a higher level (it
 * fits if its free memory suffices; else the search jumps to (that level, memory, -)). A
 * level no better than the best candidate so far stops the scan. A shape that found nothing
 * is marked failed for the rest of the cycle (capacity only shrinks within a cycle), so
 * identical pending jobs then cost O(1). A placement moves the slot between treaps.
 *
 * Pending reasons. After matching, each pending shape (cached per shape and cycle) gets the
 * counts of slots that are: of a wrong kind; not active (any state but ACTIVE); full (for
 * this job's cap); short of cores; short of memory (each slot under the first that applies).
 * They come from counters and order statistics, not a slot scan: per kind the numbers of
 * slots, slots not ACTIVE and ACTIVE unindexed (full) slots; per (kind, n) the treap sizes; "short of cores" is a rank
 * query for (cores, -, -); "short of memory" sums, level by level above cores, rank queries
 * for (level, memory, -).
 *
 * Preemption (preempt_find). A job of rank r may displace only jobs of rank < r. Mode
 * CORE_MODE_SUSPEND_JOBS / CORE_MODE_REQUEUE: in one ACTIVE slot of an allowed kind, take
 * the slot's lower-rank, not suspended jobs by least loss (suspend: cores; requeue:
 * cores x whole elapsed seconds), then handle, until the job fits (cores, memory, and the
 * remaining jobs' caps). CORE_MODE_SUSPEND_DOMAIN (Magrathea): activate an IDLE slot of an
 * allowed kind that holds no jobs. The host's room (slots against max_active, cores,
 * memory) is taken by its ACTIVE and STARTING slots; ACTIVE slots whose jobs all rank lower
 * are suspended, least loss (their jobs' cores) first, then handle, until the host has room
 * for the slot; a slot that has room without preemption is no candidate. STARTING and
 * UNAVAILABLE slots are never activated, STARTING ones never suspended. Candidates compare by (highest
 * victim rank, total loss, number of victim jobs, slot) and the least wins.
 *
 * COMPLEXITY (S slots, J pending jobs, K = kinds a job allows, N = distinct job counts of
 * indexed slots per kind (<= the largest cap in use), L = distinct free-core levels that a
 * search passes before it finds a fit, log = expected treap depth, ~2 ln S):
 *   state changes (add/remove/start/end/requeue, slot state): O(log S) each, plus O(jobs in
 *                                   the slot) to recompute its cap when a job leaves it;
 *   hosts (set/remove):             O(1) (amortised: the host table grows geometrically);
 *   priority sort:                  O(J log J) (merge sort of 24-byte keys);
 *   matching:                       O(J + P * K * N * L * log S) for P placements plus one
 *                                   failed search per distinct shape; in practice L is a few
 *                                   (free cores are small integers) and K * N is a handful;
 *   pending reasons:                O(D * K * N * L * log S) for D distinct pending shapes
 *                                   (the reference scans all slots: O(D * S));
 *   preempt_find:                   a scan of the slots of the allowed kinds, as in the
 *                                   reference: O(slots x k^2) in the jobs modes for k jobs
 *                                   per slot (an insertion sort of a slot's few jobs), and
 *                                   O(idle slots x (m^2 + jobs on the host)) in domain mode
 *                                   for m slots per host (only IDLE empty slots of an
 *                                   allowed kind are tried); it is meant for few jobs per
 *                                   cycle.
 *   memory:                         about 90 bytes per slot handle, 75 per job handle, 52
 *                                   per pending job (sort keys, kept between cycles), plus
 *                                   one shape per distinct (kinds, cores, memory, cap).
 * Nothing in a cycle allocates except the caller's result arrays, the core's scratch arrays
 * on first use (grown geometrically, kept for later cycles) and a kind's array of treap
 * roots when one of its slots first reaches a new job count.
 *
 * CONVENTIONS. Every function returns CORE_OK (0) or a negative CORE_ERR_* code and writes
 * its results into caller-allocated memory. A function that fails leaves the state as it
 * was. There is no global state: everything lives in a core_t from core_new().
 *
 * LIMITS (checked; the Python reference checks the same): handles, kinds and entities in
 * [0, CORE_HANDLE_LIMIT); cores in [0, CORE_CORES_LIMIT]; memory (MB) in
 * [0, CORE_MEMORY_LIMIT]; per-domain cap in [1, CORE_UNLIMITED_CAP]; rank in
 * [0, CORE_RANK_LIMIT); max_active in [1, CORE_RANK_LIMIT); slot state in [0, 3]; times
 * finite with |t| <= 2^40 s; weights and factors finite with |x| <= 1e150 (so no sum can overflow).
 */
#ifndef VMSCHED_CORE_H
#define VMSCHED_CORE_H

#include <stdint.h>

/* CDEF-BEGIN: the public API; csrc/build_core.py hands this part to cffi verbatim. */

#define CORE_OK 0
#define CORE_ERR_NOENT -1       /* unknown host, slot or job handle */
#define CORE_ERR_EXISTS -2      /* the slot or job handle is already in use */
#define CORE_ERR_NOMEM -3       /* an allocation failed; the state is unchanged */
#define CORE_ERR_INVAL -4       /* an argument is out of its range (see LIMITS) */
#define CORE_ERR_NOFIT -5       /* the job does not fit the slot's free cores or memory */
#define CORE_ERR_FULL -6        /* the slot already runs as many jobs as a cap allows */
#define CORE_ERR_BUSY -7        /* the slot holds jobs, the host holds slots, or the job runs */
#define CORE_ERR_STATE -8       /* the job is not running */
#define CORE_ERR_SPACE -9       /* a caller's result array is too small; sizes are reported */

#define CORE_HANDLE_LIMIT 67108864      /* 2^26: handles, kinds and entities are below */
#define CORE_CORES_LIMIT 1048576        /* 2^20 cores per job, slot or host */
#define CORE_MEMORY_LIMIT 1099511627776 /* 2^40 MB per job, slot or host */
#define CORE_UNLIMITED_CAP 1073741824   /* 2^30: a job without a per-domain cap */
#define CORE_RANK_LIMIT 2147483647      /* ranks and max_active are below */

#define CORE_MODE_SUSPEND_JOBS 0  /* preempt by suspending jobs inside a slot */
#define CORE_MODE_REQUEUE 1       /* preempt by requeueing jobs inside a slot */
#define CORE_MODE_SUSPEND_DOMAIN 2 /* preempt by suspending whole domains of a host */

#define CORE_SLOT_IDLE 0          /* inactive, activatable: no host room, no jobs */
#define CORE_SLOT_ACTIVE 1        /* free/running: host room, takes jobs */
#define CORE_SLOT_STARTING 2      /* booting/resuming: host room, no jobs, never chosen */
#define CORE_SLOT_UNAVAILABLE 3   /* down/shutting down: no host room, no jobs, never chosen */

#define CORE_REASON_WRONG_KIND 0  /* slot of a kind the job does not allow */
#define CORE_REASON_NOT_ACTIVE 1  /* slot in any state but CORE_SLOT_ACTIVE */
#define CORE_REASON_FULL 2        /* slot runs as many jobs as its or the job's cap allows */
#define CORE_REASON_CORES 3       /* slot short of free cores */
#define CORE_REASON_MEMORY 4      /* slot short of free memory */
#define CORE_NREASONS 5           /* number of reason codes */

typedef struct core core_t;

/* Counters, cheap to read at any time. */
typedef struct {
    int64_t hosts;        /* hosts defined */
    int64_t slots;        /* slots defined */
    int64_t jobs;         /* jobs defined, pending or running */
    int64_t pending;      /* jobs waiting for a slot */
    int64_t running;      /* jobs holding a slot (suspended ones included) */
    int64_t shapes;       /* distinct job shapes (kinds, cores, memory, cap) alive */
    int64_t cycles;       /* match_run calls so far */
    int64_t bytes;        /* bytes the core has allocated for its tables */
} core_stats_t;

/* What a cycle is asked to do. */
typedef struct {
    double now;           /* the cycle's time, seconds */
    double w_fs;          /* weight of the fair-share factor */
    double w_class;       /* weight of the class rank */
    double w_age;         /* weight of the age in hours */
    int64_t limit;        /* at most this many placements; negative: no limit */
    int dry_run;          /* nonzero: undo the placements before returning */
} match_params_t;

/* Caller-allocated result arrays of a cycle, with their capacities, and the counts filled.
 * order, pending_jobs, pending_reason_ids, placed_jobs and placed_slots need room for every
 * pending job (core_stats().pending); reasons needs CORE_NREASONS * (core_stats().shapes).
 * If one is too small the call fails with CORE_ERR_SPACE before changing anything. */
typedef struct {
    int32_t *order;              /* out: pending jobs by priority, best first */
    int32_t *placed_jobs;        /* out: placed jobs, in placement order */
    int32_t *placed_slots;       /* out: the slot each placed job went to */
    int32_t *pending_jobs;       /* out: jobs left pending, in priority order */
    int32_t *pending_reason_ids; /* out: per pending job, its row in reasons */
    int64_t *reasons;            /* out: rows of CORE_NREASONS counts, one per pending shape */
    int64_t jobs_capacity;       /* in: length of each of the five job arrays above */
    int64_t reasons_capacity;    /* in: number of rows reasons can hold */
    int64_t n_order;             /* out: jobs written to order */
    int64_t n_placed;            /* out: jobs written to placed_jobs/placed_slots */
    int64_t n_pending;           /* out: jobs written to pending_jobs */
    int64_t n_reasons;           /* out: rows written to reasons */
} match_result_t;

/* Caller-allocated result of a preemption search. */
typedef struct {
    int32_t *jobs;               /* out: victim jobs, ascending handles */
    int32_t *suspend_slots;      /* out: slots to suspend (domain mode), ascending */
    int64_t jobs_capacity;       /* in: length of jobs */
    int64_t slots_capacity;      /* in: length of suspend_slots */
    int64_t found;               /* out: 1 if a candidate was found, else 0 */
    int64_t slot;                /* out: the slot the preemptor would get */
    int64_t n_jobs;              /* out: victims (also set when CORE_ERR_SPACE) */
    int64_t n_slots;             /* out: slots to suspend (also set when CORE_ERR_SPACE) */
    int64_t cost[4];             /* out: (highest victim rank, loss, victims, slot) */
} preempt_result_t;

/* core.c: the state and its changes */
int core_new(core_t **out);
void core_free(core_t *core);
int core_stats(const core_t *core, core_stats_t *out);
int core_set_host(core_t *core, int64_t host, int64_t cores, int64_t memory, int64_t max_active);
int core_add_host(core_t *core, int64_t host, int64_t cores, int64_t memory, int64_t max_active);
int core_remove_host(core_t *core, int64_t host);
int core_add_slot(core_t *core, int64_t slot, int64_t host, int64_t kind, int64_t cores,
                  int64_t memory, int64_t state);
int core_set_slot_state(core_t *core, int64_t slot, int64_t state);
int core_set_slot_states(core_t *core, const int64_t *slots, int64_t n, int64_t state);
int core_set_slot_active(core_t *core, int64_t slot, int active);
int core_remove_slot(core_t *core, int64_t slot);
int core_add_job(core_t *core, int64_t job, const int64_t *kinds, int64_t nkinds, int64_t cores,
                 int64_t memory, int64_t cap, int64_t rank, int64_t entity, double submit);
int core_remove_job(core_t *core, int64_t job);
int core_start_job(core_t *core, int64_t job, int64_t slot, double now);
int core_suspend_job(core_t *core, int64_t job);
int core_resume_job(core_t *core, int64_t job);
int core_requeue_job(core_t *core, int64_t job);
int core_set_factors(core_t *core, const double *factors, int64_t n);

/* match.c: priorities, order, best fit, the cycle */
int match_priority(const core_t *core, int64_t job, double now, double w_fs, double w_class,
                   double w_age, double *out);
int match_order(core_t *core, double now, double w_fs, double w_class, double w_age,
                int32_t *order, int64_t capacity, int64_t *n_out);
int match_best_slot(const core_t *core, int64_t job, int64_t *slot_out);
int match_run(core_t *core, const match_params_t *params, match_result_t *result);

/* reasons.c: why a job's shape fits no slot */
int reasons_for_job(const core_t *core, int64_t job, int64_t *counts);

/* preempt.c: whom a preemptor may displace */
int preempt_find(core_t *core, int64_t job, int mode, double now, preempt_result_t *result);

/* CDEF-END */

#ifdef VMSCHED_CORE_INTERNAL
/* ---------------------------------------------------------------------------------------
 * Internal: the tables, shared by the csrc C files and seen by nobody else.
 * ------------------------------------------------------------------------------------- */
#include <stddef.h>

#define CORE_NIL (-1)          /* no handle */
#define CORE_TIME_LIMIT 1099511627776.0 /* 2^40 s */
#define CORE_FLOAT_LIMIT 1e150 /* largest weight or factor magnitude */

/* One distinct job shape, interned: jobs of equal shape share it. */
typedef struct {
    int32_t *kinds;        /* allowed kinds, ascending, no duplicates */
    int32_t nkinds;        /* length of kinds */
    int32_t refs;          /* jobs using this shape; 0 = free entry */
    int64_t cores;         /* cores a job needs */
    int64_t memory;        /* MB a job needs */
    int64_t cap;           /* most jobs a slot may run for this job to join it */
    uint64_t hash;         /* hash of all the above */
    int32_t next;          /* next shape in its hash chain, or in the free list */
    int32_t reason_row;    /* row in this cycle's reasons table (valid if reason_cycle) */
    int64_t failed_cycle;  /* cycle in which a search for this shape found nothing */
    int64_t reason_cycle;  /* cycle in which reason_row was assigned */
} core_shape_t;

/* Per kind: its slots and its index of indexed slots by job count. */
typedef struct {
    int32_t *slots;        /* all slots of this kind, in no order */
    int32_t nslots;        /* length of slots */
    int32_t slots_cap;     /* allocated length of slots */
    int32_t ninactive;     /* slots of this kind in any state but CORE_SLOT_ACTIVE */
    int32_t nfull;         /* ACTIVE slots that are full by their own cap (unindexed) */
    int32_t nindexed;      /* slots in the treaps below */
    int32_t *roots;        /* roots[n]: treap of indexed slots running n jobs, or CORE_NIL */
    int32_t nroots;        /* length of roots (largest n seen + 1) */
} core_kind_t;

/* One entry of the priority sort. */
typedef struct {
    double key;            /* -priority */
    double submit;         /* submit time */
    int32_t job;           /* job handle */
} core_sortkey_t;

struct core {
    /* hosts (struct of arrays, indexed by host handle) */
    int64_t hosts_cap;          /* allocated length of the host arrays */
    int64_t nhosts;             /* hosts defined */
    uint8_t *host_live;         /* 1 if the host handle is defined */
    int64_t *host_cores;        /* cores of the host */
    int64_t *host_memory;       /* MB of the host */
    int64_t *host_max_active;   /* most slots taking room (ACTIVE, STARTING) at once */
    int32_t *host_first_slot;   /* head of the host's slot list (slot_host_next) */

    /* slots (struct of arrays, indexed by slot handle) */
    int64_t slots_cap;          /* allocated length of the slot arrays */
    int64_t nslots;             /* slots defined */
    int32_t *slot_host;         /* host of the slot, CORE_NIL if the handle is free */
    int32_t *slot_kind;         /* kind of the slot */
    int64_t *slot_cores;        /* cores of the slot */
    int64_t *slot_memory;       /* MB of the slot */
    int64_t *slot_free_cores;   /* cores not used by its jobs */
    int64_t *slot_free_memory;  /* MB not used by its jobs */
    int64_t *slot_jobcap;       /* smallest cap among its jobs, CORE_UNLIMITED_CAP if none */
    int32_t *slot_njobs;        /* jobs it runs */
    int32_t *slot_first_job;    /* head of its job list (job_next/job_prev) */
    int32_t *slot_host_next;    /* next slot on the same host */
    int32_t *slot_host_prev;    /* previous slot on the same host */
    int32_t *slot_kind_pos;     /* position in its kind's slots array */
    int32_t *slot_left;         /* treap: left child */
    int32_t *slot_right;        /* treap: right child */
    int32_t *slot_size;         /* treap: nodes in the subtree rooted here */
    uint8_t *slot_state;        /* CORE_SLOT_IDLE .. CORE_SLOT_UNAVAILABLE */
    uint8_t *slot_indexed;      /* 1 if in its (kind, njobs) treap */

    /* kinds (indexed by kind id) */
    int64_t kinds_cap;          /* allocated length of kinds */
    core_kind_t *kinds;         /* per kind: slots and index */

    /* jobs (struct of arrays, indexed by job handle) */
    int64_t jobs_cap;           /* allocated length of the job arrays */
    int64_t njobs;              /* jobs defined */
    int32_t *job_shape;         /* shape id, CORE_NIL if the handle is free */
    int64_t *job_cores;         /* cores (copy of the shape's, for locality) */
    int64_t *job_memory;        /* MB (copy of the shape's) */
    int64_t *job_cap;           /* per-domain cap (copy of the shape's) */
    int32_t *job_rank;          /* class rank */
    int32_t *job_entity;        /* fair-share entity */
    double *job_submit;         /* submit time */
    double *job_start;          /* start time of the current or last run */
    int32_t *job_slot;          /* slot it runs in, CORE_NIL if pending */
    int32_t *job_next;          /* next job in its slot's list */
    int32_t *job_prev;          /* previous job in its slot's list */
    int32_t *job_pending_pos;   /* position in pending, CORE_NIL if running */
    uint8_t *job_suspended;     /* 1 if suspended in place */

    /* the pending set */
    int32_t *pending;           /* pending job handles, in no order */
    int64_t npending;           /* length of pending */
    int64_t pending_cap;        /* allocated length of pending */

    /* shapes */
    core_shape_t *shapes;       /* shape table */
    int32_t nshapes_alloc;      /* entries used in shapes (live or free) */
    int32_t shapes_cap;         /* allocated length of shapes */
    int32_t nshapes;            /* live shapes */
    int32_t shape_free;         /* head of the free-entry list */
    int32_t *shape_buckets;     /* hash heads */
    int32_t shape_nbuckets;     /* length of shape_buckets, a power of 2 */

    /* fair-share factors, indexed by entity */
    double *factors;            /* factor per entity */
    int64_t nfactors;           /* length of factors */

    /* the cycle counter and scratch arrays (kept between cycles) */
    int64_t cycle;              /* match_run calls so far (stamps the shape caches) */
    core_sortkey_t *sort_keys;  /* priority sort: keys */
    core_sortkey_t *sort_tmp;   /* priority sort: merge buffer */
    int64_t sort_cap;           /* allocated length of sort_keys and sort_tmp */
    int32_t *scratch;           /* preemption: candidate handles */
    int64_t *scratch_key;       /* preemption: their losses */
    int64_t *scratch_min;       /* preemption: suffix minima of caps */
    int64_t scratch_cap;        /* allocated length of the three scratch arrays */
    int64_t bytes;              /* bytes allocated for the tables (for core_stats) */
};

/* core.c */
int core_realloc(core_t *core, void **ptr, size_t elem, int64_t old_n, int64_t new_n);
int core_valid_time(double t);
int core_valid_weight(double w);
int core_job_exists(const core_t *core, int64_t job);
int core_attach(core_t *core, int32_t job, int32_t slot, double now);
void core_detach(core_t *core, int32_t job);
int core_scratch_reserve(core_t *core, int64_t n);

/* index.c: the treaps of indexed slots */
int index_reserve(core_t *core, int32_t kind, int64_t njobs);
void index_out(core_t *core, int32_t slot);
void index_in(core_t *core, int32_t slot);
int32_t index_lower_bound(const core_t *core, int32_t root, int64_t fc, int64_t fm, int64_t s);
int64_t index_count_less(const core_t *core, int32_t root, int64_t fc, int64_t fm, int64_t s);

/* match.c */
int32_t match_best_for_shape(const core_t *core, const core_shape_t *shape);

/* reasons.c */
void reasons_for_shape(const core_t *core, const core_shape_t *shape, int64_t *counts);

#endif /* VMSCHED_CORE_INTERNAL */

#endif /* VMSCHED_CORE_H */
