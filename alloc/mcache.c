/*
 * mcache.c — the per-thread cache.
 *
 * Owns: one span per span class for the calling thread (alloc[]), and the
 * thread's counters. The malloc fast path (api.c) reads only the thread's
 * mcache and the span it points to: a TLS load, a table load, a
 * count-trailing-zeros on the span's allocCache, a few stores -- no lock and
 * no atomic read-modify-write. This file is the slow path behind it:
 * refilling a window, rescanning a span, trading a full span for another.
 *
 * Invariants:
 *  - alloc[spc] is never NULL: an empty span (allocCache == 0) stands in, so
 *    the fast path needs no NULL check; a thread starts with sa_mcache_empty,
 *    whose every entry is that empty span.
 *  - a span in alloc[] has state CACHED and owner == this mcache; only this
 *    thread writes its allocCache, freeindex and allocBits.
 *  - windowFree is the number of free slots in allocCache when the window was
 *    loaded; windowFree - popcount(allocCache) objects were handed out from
 *    it. Counting happens when a window is retired, off the fast path.
 *
 * Frees. A free of an object whose span this thread caches clears the
 * allocBits bit directly (api.c). Every other free -- the span cached by
 * another thread, or sitting in an mcentral -- goes through sa_free_remote
 * (span.c): an atomic OR into the span's remoteFree bitmap, plus a lock-free
 * notification when the span is in its mcentral. The owner folds remoteFree
 * into allocBits when its window runs dry, so a producer/consumer pair keeps
 * reusing the same spans.
 *
 * Thread exit. A pthread key destructor (sa_thread_exit) returns every span
 * to its mcentral, folds the counters into the global ones and switches the
 * thread to sa_mcache_dead. If a later key destructor allocates again, the
 * dead cache sends it to the mcentral directly (one object at a time, under
 * the lock): nothing is cached after the flush, so nothing leaks, however the
 * destructors are ordered.
 *
 * Locking: mcache_list_lock guards the list of live mcaches and the pool of
 * mcache structs; it is never held while calling into mcentral.
 */
#include <string.h>

#include "internal.h"

SA_HIDDEN sa_span sa_emptyspan;

#define SA_EMPTY_ALLOC {[0 ... SA_NUM_SPAN_CLASSES - 1] = &sa_emptyspan}
SA_HIDDEN sa_mcache sa_mcache_empty = {.alloc = SA_EMPTY_ALLOC};
SA_HIDDEN sa_mcache sa_mcache_dead = {.alloc = SA_EMPTY_ALLOC, .dead = true};

SA_HIDDEN __thread sa_mcache *sa_tls_mcache __attribute__((tls_model("initial-exec"))) =
    &sa_mcache_empty;

static pthread_mutex_t mcache_list_lock = PTHREAD_MUTEX_INITIALIZER;
static sa_mcache *mcache_list;
static sa_fixalloc mcache_pool = {.size = sizeof(sa_mcache)};
extern SA_HIDDEN pthread_key_t sa_thread_key;

static inline void stat_add(uint64_t *p, uint64_t v)
{
    sa_store_relaxed(p, sa_load_relaxed(p) + v);
}

/* Returns the calling thread's mcache, creating it on first use. NULL while
 * this thread is initialising the library or when metadata memory ran out:
 * the caller then allocates through the mcentral directly. */
sa_mcache *sa_mcache_for_thread(void)
{
    sa_mcache *mc = sa_tls_mcache;
    if (mc != &sa_mcache_empty)
        return mc;
    sa_ensure_init();
    if (!sa_is_ready())
        return NULL;
    pthread_mutex_lock(&mcache_list_lock);
    mc = sa_fixalloc_alloc(&mcache_pool);
    if (mc) {
        for (unsigned i = 0; i < SA_NUM_SPAN_CLASSES; i++)
            mc->alloc[i] = &sa_emptyspan;
        mc->next = mcache_list;
        mc->prev = NULL;
        if (mcache_list)
            mcache_list->prev = mc;
        mcache_list = mc;
    }
    pthread_mutex_unlock(&mcache_list_lock);
    if (!mc)
        return NULL;
    /* TLS first: if pthread_setspecific allocates, it finds the cache. */
    sa_tls_mcache = mc;
    pthread_setspecific(sa_thread_key, mc);
    return mc;
}

/* Counts the objects handed out from s's current window and retires it.
 * Returns how many. */
static uint32_t retire_window(sa_mcache *mc, sa_span *s)
{
    uint32_t left = (uint32_t)sa_popcount64(s->allocCache);
    uint32_t handed = s->windowFree - left;
    stat_add(&mc->stats.nmalloc[s->spanclass], handed);
    s->windowFree = 0;
    s->allocCache = 0;
    return handed;
}

/* The sampled allocation at a sample point (prof.c): the window was cut
 * just before it; put the rest back, start a new countdown, and serve this
 * allocation from a span of its own. */
static void *sample_point(sa_mcache *mc, sa_span *s, unsigned spc, int *needzero, void *ra)
{
    sa_prof_restore_window(mc, s, spc);
    sa_prof_reset_class(mc, spc);
    void *p = sa_alloc_sampled(mc, s->elemsize, ra, needzero);
    if (p)
        return p;
    /* No memory for the sample: serve it like any other object. */
    mc->sample_left[spc] = UINT64_MAX;
    return sa_mcache_refill_alloc(mc, spc, needzero, ra);
}

/* The fast path missed: s's window is empty. Next window of the same span;
 * else fold remote frees and rescan it; else trade it for another span.
 * ra is the program's call site (for heap profiling). */
void *sa_mcache_refill_alloc(sa_mcache *mc, unsigned spc, int *needzero, void *ra)
{
    sa_span *s = mc->alloc[spc];
    bool prof = spc < SA_NUM_SIZE_CLASSES && sa_prof_active(mc);
    if (s != &sa_emptyspan) {
        unsigned nextword = (s->freeindex + 63u) >> 6;
        uint32_t handed = retire_window(mc, s);
        if (prof) {
            sa_prof_consume(mc, spc, handed, s->elemsize);
            if (mc->hidden[spc])
                return sample_point(mc, s, spc, needzero, ra);
        }
        if (sa_span_load_window(s, nextword))
            goto have;
        sa_span_merge_remote(s, "free");
        if (sa_span_count_alloc(s) < s->nelems) {
            s->needzero = 1; /* second pass: slots were used before */
            sa_span_load_window(s, 0);
            goto have;
        }
        /* the slot is cleared under the mcentral's lock: a fork child finds
         * the span in exactly one place (see release_spans) */
        sa_mcentral_uncache_span(&sa_central[spc], s, &mc->alloc[spc]);
    }
    s = sa_mcentral_cache_span(&sa_central[spc], mc, &mc->alloc[spc]);
    if (!s)
        return NULL;
    /* Only now, with the cache consistent: starting the scavenger thread
     * allocates (pthread_create) and may come back here. */
    sa_scavenger_after_alloc();
have:
    if (prof) {
        sa_prof_mask_window(mc, s, spc);
        if (s->allocCache == 0)
            return sample_point(mc, s, spc, needzero, ra);
    }
    *needzero = s->needzero;
    return sa_span_take(s, s->allocCache);
}

/* Returns every cached span to its mcentral. */
static void release_spans(sa_mcache *mc)
{
    for (unsigned spc = 0; spc < SA_NUM_SPAN_CLASSES; spc++) {
        sa_span *s = mc->alloc[spc];
        if (s == &sa_emptyspan)
            continue;
        if (spc < SA_NUM_SIZE_CLASSES)
            mc->hidden[spc] = 0; /* set-aside slots are free in allocBits */
        retire_window(mc, s);
        /* The slot is cleared under the mcentral's lock, with the span's
         * return: if a fork stops this thread anywhere here, the child's
         * handler (which releases orphaned caches) finds the span either in
         * the slot or on a list, never both (it once gave it back twice) and
         * never neither. */
        sa_mcentral_uncache_span(&sa_central[spc], s, &mc->alloc[spc]);
    }
}

static void fold_into(sa_threadstats *dst, const sa_threadstats *src, bool atomic)
{
    const uint64_t *s = (const uint64_t *)src;
    uint64_t *d = (uint64_t *)dst;
    for (size_t i = 0; i < sizeof(sa_threadstats) / sizeof(uint64_t); i++) {
        uint64_t v = sa_load_relaxed(&s[i]);
        if (atomic)
            __atomic_fetch_add(&d[i], v, __ATOMIC_RELAXED);
        else
            d[i] += v;
    }
}

/* Unlinks mc and recycles it. mcache_list_lock held. */
static void retire_mcache_locked(sa_mcache *mc)
{
    fold_into(&sa_global_stats, &mc->stats, true);
    if (mc->prev)
        mc->prev->next = mc->next;
    else
        mcache_list = mc->next;
    if (mc->next)
        mc->next->prev = mc->prev;
    sa_fixalloc_free(&mcache_pool, mc);
}

void sa_mcache_release_all(sa_mcache *mc)
{
    release_spans(mc);
    pthread_mutex_lock(&mcache_list_lock);
    retire_mcache_locked(mc);
    pthread_mutex_unlock(&mcache_list_lock);
}

void sa_thread_exit(void *arg)
{
    sa_mcache *mc = arg;
    if (!mc || mc == &sa_mcache_empty || mc == &sa_mcache_dead)
        return;
    sa_tls_mcache = &sa_mcache_dead;
    sa_mcache_release_all(mc);
}

/* Sums every live mcache's counters into *out (which the caller zeroed or
 * seeded with the global ones). The owners keep running: each counter is
 * read atomically, the sum is a consistent-enough snapshot. */
void sa_mcache_fold_stats(sa_threadstats *out)
{
    pthread_mutex_lock(&mcache_list_lock);
    for (sa_mcache *mc = mcache_list; mc; mc = mc->next) {
        fold_into(out, &mc->stats, false);
        /* Objects handed out from windows not yet retired. The owner may be
         * moving the window right now; the estimate is clamped, and exact
         * for the calling thread's own cache. */
        for (unsigned spc = 0; spc < SA_NUM_SPAN_CLASSES; spc++) {
            sa_span *s = sa_load_relaxed(&mc->alloc[spc]);
            if (s == &sa_emptyspan)
                continue;
            uint32_t wf = sa_load_relaxed(&s->windowFree);
            uint32_t left = (uint32_t)sa_popcount64(sa_load_relaxed(&s->allocCache));
            if (wf > left)
                out->nmalloc[spc] += wf - left;
        }
    }
    pthread_mutex_unlock(&mcache_list_lock);
}

/* Heap check: every cached span is CACHED, owned by its mcache, of the
 * class it is cached for, and cached once. */
void sa_mcache_check(uint32_t epoch, uint64_t *cached_per_class)
{
    for (sa_mcache *mc = mcache_list; mc; mc = mc->next)
        for (unsigned spc = 0; spc < SA_NUM_SPAN_CLASSES; spc++) {
            sa_span *s = mc->alloc[spc];
            if (s == &sa_emptyspan)
                continue;
            sa_check_visit(s, epoch, "mcache");
            if (s->state != SA_SPAN_CACHED || s->owner != mc)
                sa_check_fail("span in an mcache is not CACHED by it", s);
            if (s->spanclass != spc)
                sa_check_fail("span cached under another span class", s);
            if (s->list != SA_LIST_NONE)
                sa_check_fail("cached span still on an mcentral list", s);
            sa_check_span_bits(s);
            cached_per_class[spc]++;
        }
}

void sa_mcache_pool_stats(size_t *inuse, size_t *sys)
{
    pthread_mutex_lock(&mcache_list_lock);
    *inuse = mcache_pool.inuse;
    *sys = mcache_pool.sys;
    pthread_mutex_unlock(&mcache_list_lock);
}

/* ---- fork ---------------------------------------------------------------- */

void sa_mcache_fork_prepare(void)
{
    pthread_mutex_lock(&mcache_list_lock);
}

void sa_mcache_fork_parent(void)
{
    pthread_mutex_unlock(&mcache_list_lock);
}

/* In the child only the forking thread survives: the other threads' caches
 * are orphans. Return their spans so their free slots are not stranded. Runs
 * after every lock was re-initialised. */
void sa_mcache_fork_child(void)
{
    pthread_mutex_init(&mcache_list_lock, NULL);
    sa_mcache *self = sa_tls_mcache;
    sa_mcache *mc = mcache_list;
    while (mc) {
        sa_mcache *next = mc->next;
        if (mc != self) {
            release_spans(mc);
            retire_mcache_locked(mc);
        }
        mc = next;
    }
}
