/*
 * mcache.c — the per-thread cache.
 *
 * Owns: the spans the calling thread owns -- per span class the one it
 * allocates from (alloc[]) and, for malloc's classes, up to SA_OWNED_MAX more
 * it has filled (avail and parked, below) -- and the thread's counters. The
 * malloc fast path (api.c) reads only the thread's mcache and the span it
 * points to: a TLS load, a table load, a count-trailing-zeros on the span's
 * allocCache, a few stores -- no lock and no atomic read-modify-write. This
 * file is the slow path behind it: refilling a window, rescanning a span,
 * switching to another owned span or one from the mcentral.
 *
 * Invariants:
 *  - alloc[spc] is never NULL: an empty span (allocCache == 0) stands in, so
 *    the fast path needs no NULL check; a thread starts with sa_mcache_empty,
 *    whose every entry is that empty span.
 *  - every span the mcache owns (alloc[], avail, parked) has state CACHED and
 *    owner == this mcache and is in exactly one of those places (while a
 *    span moves, it is written to its new place first: see fork below); only
 *    this thread writes its allocCache, freeindex, allocBits, allocCount.
 *  - windowFree is the number of free slots in allocCache when the window was
 *    loaded; windowFree - popcount(allocCache) objects were handed out from
 *    it. Counting happens when a window is retired, off the fast path.
 *    allocCount counts the window's slots as allocated while it is loaded.
 *
 * Frees. A span stays owned by the thread that filled it while it has live
 * objects, so the thread's own frees -- into any span it owns, not only the
 * one it allocates from -- are plain stores (api.c): the allocBits bit and
 * allocCount. A filled span is parked; the owner's free that leaves a
 * quarter of it free wakes it (one compare on the fast path against the
 * span's wakeAt), and a switch takes it up again; a span that becomes empty
 * goes back to the mheap (a few empty spans per class are kept). Frees by other
 * threads go through sa_free_remote (span.c): an atomic OR into the span's
 * remoteFree bitmap, which raises the class's bit in remote_classes the
 * first time, so the owner folds them at its next switch; into a span sitting in an mcentral,
 * plus a lock-free notification there. A producer/consumer pair keeps
 * reusing the producer's spans.
 *
 * Bounds. At most SA_OWNED_MAX spans per class besides the current one:
 * past that a long-parked span goes back to the mcentral (frees into it
 * take the remote path from then on). Empty spans do not linger: the free
 * that empties one returns it; remote frees that empty one are found at the
 * owner's next switch of that class, or when the thread exits.
 *
 * Thread exit. A pthread key destructor (sa_thread_exit) returns every span
 * to its mcentral, folds the counters into the global ones and switches the
 * thread to sa_mcache_dead. If a later key destructor allocates again, the
 * dead cache sends it to the mcentral directly (one object at a time, under
 * the lock): nothing is cached after the flush, so nothing leaks, however the
 * destructors are ordered.
 *
 * Fork. A thread stopped by fork anywhere leaves its cache orphaned in the
 * child; the child's handler returns every span the orphan still owns,
 * skipping a span seen twice (mid-move) because the first return made it
 * CENTRAL. A span is never in none of the places.
 *
 * Locking: mcache_list_lock guards the list of live mcaches and the pool of
 * mcache structs; it is never held while calling into mcentral. An mcache's
 * spans are its thread's alone: no lock.
 */
#include <stddef.h>
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
/* A recycled mcache is cleared up to remote_classes: other threads may
 * still OR a stale hint into that word (span.c), so it is reset with an
 * atomic store instead. */
static sa_fixalloc mcache_pool = {.size = sizeof(sa_mcache),
                                  .zero = offsetof(sa_mcache, remote_classes)};
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
        sa_store_relaxed(&mc->remote_classes, 0);
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

/* Counts the objects handed out from s's current window and retires it;
 * the slots left in it stop counting as allocated. Returns how many were
 * handed out. */
static uint32_t retire_window(sa_mcache *mc, sa_span *s)
{
    uint32_t left = (uint32_t)sa_popcount64(s->allocCache);
    uint32_t handed = s->windowFree - left;
    stat_add(&mc->stats.nmalloc[s->spanclass], handed);
    s->allocCount -= left;
    s->windowFree = 0;
    s->allocCache = 0;
    return handed;
}

/* Loads s's window from fromword on; its free slots count as allocated from
 * here on (the fast path hands them out without counting). */
static bool load_window(sa_span *s, unsigned fromword)
{
    if (!sa_span_load_window(s, fromword))
        return false;
    s->allocCount += s->windowFree;
    return true;
}

/* Folds the frees other threads made into s (owner only). */
static void fold_remote(sa_span *s)
{
    s->allocCount -= sa_span_merge_remote(s, "free");
}

static inline uint32_t free_slots(const sa_span *s)
{
    return s->nelems - s->allocCount;
}

/* Free slots that make a span worth allocating from: a span with fewer
 * waits for more frees (a refill that yields a couple of objects costs more
 * than it saves; the mcentral's "partial" rule). */
static inline bool well_stocked(const sa_span *s)
{
    return free_slots(s) * 4 >= s->nelems;
}

/* ---- owned spans -------------------------------------------------------------
 * Besides the span it allocates from, a thread keeps the spans of a class it
 * has filled, up to SA_OWNED_MAX, in two sets:
 *   avail   spans with at least a quarter of their slots free (wakeAt 0);
 *   parked  spans with fewer, waiting for frees: wakeAt is the allocCount at
 *           which they have a quarter free, so the owner's free that gets
 *           there moves the span to avail (sa_mcache_span_wake) -- nobody
 *           scans parked spans for the owner's frees.
 * Frees by other threads reach owned spans through remoteFree; the first one
 * into a span since the owner last folded it raises the class's bit in
 * mc->remote_classes, and the next switch (of any class) folds the owned
 * spans of the flagged classes that have some (span.c's hasRemote).
 *
 * Every step writes a span into its new place before taking it out of the
 * old one, with a compiler barrier between: a fork that stops this thread
 * anywhere finds each span in at least one place of the orphaned cache, and
 * release_spans skips a second sighting (the span is no longer CACHED by the
 * cache after the first). */
#define ORDERED() __atomic_signal_fence(__ATOMIC_SEQ_CST)

static void set_add(sa_span **set, uint8_t *n, sa_span *s)
{
    set[*n] = s;
    s->ownedIdx = *n;
    ORDERED();
    *n = (uint8_t)(*n + 1);
}

static void set_remove(sa_span **set, uint8_t *n, unsigned i)
{
    unsigned last = *n - 1u;
    if (i != last) {
        set[i] = set[last];
        set[i]->ownedIdx = (uint8_t)i;
    }
    ORDERED();
    *n = (uint8_t)last;
}

static unsigned nowned(const sa_mcache *mc, unsigned spc)
{
    return mc->navail[spc] + mc->nparked[spc];
}

/* Gives span i of an owned set back to the mcentral (which frees it to the
 * mheap when it is empty). */
static void owned_release(unsigned spc, sa_span **set, uint8_t *n, unsigned i)
{
    sa_span *s = set[i];
    s->wakeAt = 0;
    sa_mcentral_uncache_span(&sa_central[spc], s, &set[i]);
    set_remove(set, n, i);
}

/* Files s (no window) as avail or parked by its free slots. */
static void file_owned(sa_mcache *mc, unsigned spc, sa_span *s)
{
    if (well_stocked(s)) {
        s->wakeAt = 0;
        set_add(mc->avail[spc], &mc->navail[spc], s);
    } else {
        s->wakeAt = s->nelems - (s->nelems + 3u) / 4u; /* a quarter free */
        set_add(mc->parked[spc], &mc->nparked[spc], s);
    }
}

/* Makes span i of an owned set the one spc allocates from (the current one
 * is filed already), window loaded. */
static sa_span *install(sa_mcache *mc, unsigned spc, sa_span **set, uint8_t *n, unsigned i)
{
    sa_span *s = set[i];
    mc->alloc[spc] = s;
    ORDERED();
    set_remove(set, n, i);
    s->wakeAt = 0;
    s->needzero = 1;
    if (!load_window(s, 0))
        sa_report_fatal("mcache: owned span without a free slot");
    return s;
}

/* Empty spans a thread keeps per class for its next switches: a batch that
 * allocates a few spans' worth and frees it all then reuses them without a
 * trip to the mheap (measured: the page allocator's summary updates were 7%
 * of a batch workload when every emptied span went back at once), while an
 * idle thread holds at most this many empty spans per class. */
#define KEEP_EMPTY 4

/* Are KEEP_EMPTY avail spans of spc other than s empty? */
static bool enough_empty(const sa_mcache *mc, unsigned spc, const sa_span *s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < mc->navail[spc]; i++)
        if (mc->avail[spc][i] != s && mc->avail[spc][i]->allocCount == 0 && ++n >= KEEP_EMPTY)
            return true;
    return false;
}

/* Folds the remote frees of every owned span of spc that has some, waking
 * parked spans that now have enough free slots and giving back avail spans
 * that became empty beyond KEEP_EMPTY. */
static void fold_owned(sa_mcache *mc, unsigned spc)
{
    for (unsigned i = 0; i < mc->nparked[spc];) {
        sa_span *t = mc->parked[spc][i];
        if (sa_load_relaxed(&t->hasRemote)) {
            fold_remote(t);
            if (well_stocked(t)) {
                t->wakeAt = 0;
                set_add(mc->avail[spc], &mc->navail[spc], t);
                set_remove(mc->parked[spc], &mc->nparked[spc], i);
                continue;
            }
        }
        i++;
    }
    for (unsigned i = 0; i < mc->navail[spc];) {
        sa_span *t = mc->avail[spc][i];
        if (sa_load_relaxed(&t->hasRemote))
            fold_remote(t);
        if (t->allocCount == 0 && enough_empty(mc, spc, t)) {
            owned_release(spc, mc->avail[spc], &mc->navail[spc], i);
            continue;
        }
        i++;
    }
}

/* A span from the mcentral installed as the one spc allocates from, window
 * loaded; NULL when the heap is out of memory. */
static sa_span *from_central(sa_mcache *mc, unsigned spc)
{
    sa_span *s = sa_mcentral_cache_span(&sa_central[spc], mc, &mc->alloc[spc]);
    if (!s)
        return NULL;
    s->allocCount += s->windowFree; /* the window the mcentral loaded */
    s->wakeAt = 0;
    /* Only now, with the cache consistent: starting the scavenger thread
     * allocates (pthread_create) and may come back here. */
    sa_scavenger_after_alloc();
    return s;
}

/* The span spc allocates from ran low. It joins the owned spans, and the
 * most recently filed avail span becomes current; with none, the mcentral
 * provides one (past SA_OWNED_MAX owned spans, a long-parked one goes back
 * to it first: frees into that span take the remote path from then on,
 * so what a thread holds stays bounded). Returns the new current span,
 * window loaded, or NULL when the heap is out of memory. */
static sa_span *switch_span(sa_mcache *mc, unsigned spc)
{
    sa_span *cur = mc->alloc[spc];
    if (spc >= SA_NUM_SIZE_CLASSES) {
        /* A span class malloc does not use (the tiers' white-box tests use
         * them): no owned sets, the span goes back to its mcentral. */
        if (cur != &sa_emptyspan)
            sa_mcentral_uncache_span(&sa_central[spc], cur, &mc->alloc[spc]);
        return from_central(mc, spc);
    }
    if (cur != &sa_emptyspan)
        file_owned(mc, spc, cur);
    /* Remote frees into owned spans of any class: fold them now, so a class
     * this thread no longer allocates from does not hoard what others
     * freed. */
    if (sa_load_relaxed(&mc->remote_classes)) {
        uint64_t classes = __atomic_exchange_n(&mc->remote_classes, 0, __ATOMIC_SEQ_CST);
        for (; classes; classes &= classes - 1)
            fold_owned(mc, (unsigned)__builtin_ctzll(classes));
    }
    if (mc->navail[spc] > 0)
        return install(mc, spc, mc->avail[spc], &mc->navail[spc], mc->navail[spc] - 1u);
    if (nowned(mc, spc) >= SA_OWNED_MAX) {
        /* Every parked span is mostly full; the first is among the longest
         * parked (the set is unordered only by removals), whose objects are
         * likely to live on: searching for the fullest was 1.5% of
         * server_churn's instructions. */
        owned_release(spc, mc->parked[spc], &mc->nparked[spc], 0);
    }
    sa_span *s = from_central(mc, spc);
    if (s)
        return s;
    /* The heap cannot grow: any parked span with a free slot will do. */
    for (unsigned i = 0; i < mc->nparked[spc]; i++) {
        sa_span *t = mc->parked[spc][i];
        fold_remote(t);
        if (free_slots(t) > 0)
            return install(mc, spc, mc->parked[spc], &mc->nparked[spc], i);
    }
    return NULL;
}

/* An owner free brought s's allocCount to its wakeAt or below: a parked
 * span has a quarter of its slots free (it becomes avail), or a span became
 * empty. The
 * span spc allocates from stays; KEEP_EMPTY empty spans per class are kept
 * for the next switches; any other goes back to the mheap through the
 * mcentral. */
void sa_mcache_span_wake(sa_mcache *mc, sa_span *s)
{
    unsigned spc = s->spanclass;
    if (mc->alloc[spc] == s || spc >= SA_NUM_SIZE_CLASSES)
        return; /* a class without owned sets owns only its current span */
    unsigned i = s->ownedIdx;
    if (i < mc->nparked[spc] && mc->parked[spc][i] == s) {
        s->wakeAt = 0;
        set_add(mc->avail[spc], &mc->navail[spc], s);
        set_remove(mc->parked[spc], &mc->nparked[spc], i);
        if (s->allocCount != 0) /* else: also empty, see below */
            return;
        i = s->ownedIdx;
    }
    if (i < mc->navail[spc] && mc->avail[spc][i] == s) {
        if (enough_empty(mc, spc, s)) {
            owned_release(spc, mc->avail[spc], &mc->navail[spc], i);
            sa_scavenger_kick(); /* the sets are whole again */
        }
        return;
    }
    sa_report_fatal("mcache: a freed span is not owned by the freeing thread");
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
 * else fold remote frees and rescan it while it has a free slot; else switch to another owned span or one from the mcentral.
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
        if (nextword < sa_span_nwords(s) && load_window(s, nextword))
            goto have;
        fold_remote(s);
        if (free_slots(s) > 0) { /* use a span up before switching */
            s->needzero = 1; /* second pass: slots were used before */
            load_window(s, 0);
            goto have;
        }
    }
    s = switch_span(mc, spc);
    if (!s)
        return NULL;
have:
    if (prof) {
        sa_prof_mask_window(mc, s, spc);
        if (s->allocCache == 0)
            return sample_point(mc, s, spc, needzero, ra);
    }
    *needzero = s->needzero;
    void *p = sa_span_take(s, s->allocCache);
    /* A switch may have given spans back: with the cache whole again, the
     * scavenger may start (pthread_create allocates). */
    sa_scavenger_kick();
    return p;
}

/* Is s still mc's? A span a fork caught on its way between two places of
 * an orphaned cache is seen twice; it went back at the first sighting. */
static bool still_owned(const sa_mcache *mc, const sa_span *s)
{
    return s != &sa_emptyspan && s->owner == mc && s->state == SA_SPAN_CACHED;
}

static void release_set(sa_mcache *mc, unsigned spc, sa_span **set, uint8_t *n)
{
    while (*n > 0) {
        unsigned last = *n - 1u;
        if (still_owned(mc, set[last]))
            owned_release(spc, set, n, last);
        else
            set_remove(set, n, last);
    }
}

/* Returns every span mc owns to its mcentral. */
static void release_spans(sa_mcache *mc)
{
    for (unsigned spc = 0; spc < SA_NUM_SPAN_CLASSES; spc++) {
        sa_span *s = mc->alloc[spc];
        if (s == &sa_emptyspan)
            continue;
        if (spc < SA_NUM_SIZE_CLASSES)
            mc->hidden[spc] = 0; /* set-aside slots are free in allocBits */
        if (!still_owned(mc, s)) {
            mc->alloc[spc] = &sa_emptyspan;
            continue;
        }
        retire_window(mc, s);
        /* The slot is cleared under the mcentral's lock, with the span's
         * return: if a fork stops this thread anywhere here, the child's
         * handler (which releases orphaned caches) finds the span either in
         * the slot or on a list, never both (it once gave it back twice) and
         * never neither. */
        sa_mcentral_uncache_span(&sa_central[spc], s, &mc->alloc[spc]);
    }
    for (unsigned spc = 0; spc < SA_NUM_SIZE_CLASSES; spc++) {
        release_set(mc, spc, mc->avail[spc], &mc->navail[spc]);
        release_set(mc, spc, mc->parked[spc], &mc->nparked[spc]);
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
    sa_scavenger_kick();
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

/* Heap check of one span mc owns for spc. */
static void check_owned(const sa_mcache *mc, unsigned spc, const sa_span *s, uint32_t epoch)
{
    sa_check_visit(s, epoch, "mcache");
    if (s->state != SA_SPAN_CACHED || s->owner != mc)
        sa_check_fail("span in an mcache is not CACHED by it", s);
    if (s->spanclass != spc)
        sa_check_fail("span cached under another span class", s);
    if (s->list != SA_LIST_NONE)
        sa_check_fail("cached span still on an mcentral list", s);
    sa_check_span_bits(s);
    /* allocCount counts the loaded window as allocated. */
    if (s->allocCount != sa_span_count_alloc(s) + sa_popcount64(s->allocCache))
        sa_check_fail("owned span allocCount differs from its bitmap and window", s);
}

/* Heap check: every span an mcache owns (the one it allocates from and the
 * others) is CACHED, owned by it, of the class it is filed under, counted
 * exactly, and in one place. */
void sa_mcache_check(uint32_t epoch, uint64_t *cached_per_class)
{
    for (sa_mcache *mc = mcache_list; mc; mc = mc->next) {
        for (unsigned spc = 0; spc < SA_NUM_SPAN_CLASSES; spc++) {
            sa_span *s = mc->alloc[spc];
            if (s == &sa_emptyspan)
                continue;
            check_owned(mc, spc, s, epoch);
            cached_per_class[spc]++;
        }
        for (unsigned spc = 0; spc < SA_NUM_SIZE_CLASSES; spc++) {
            if (nowned(mc, spc) > SA_OWNED_MAX)
                sa_check_fail("mcache owns more spans of a class than its bound", NULL);
            for (unsigned i = 0; i < mc->navail[spc]; i++) {
                const sa_span *s = mc->avail[spc][i];
                check_owned(mc, spc, s, epoch);
                if (s->allocCache != 0 || s->wakeAt != 0)
                    sa_check_fail("avail owned span has a window or a wake-up count", s);
                cached_per_class[spc]++;
            }
            for (unsigned i = 0; i < mc->nparked[spc]; i++) {
                const sa_span *s = mc->parked[spc][i];
                check_owned(mc, spc, s, epoch);
                if (s->allocCache != 0 || s->allocCount <= s->wakeAt)
                    sa_check_fail("parked owned span has a window or is past its wake-up", s);
                cached_per_class[spc]++;
            }
        }
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
