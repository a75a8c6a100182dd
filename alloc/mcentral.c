/*
 * mcentral.c — one central list per span class.
 *
 * Owns: the spans of its class that no mcache holds, in three lists --
 * partial (a quarter or more of the slots free), few (some free) and full --
 * and a pending stack of spans that
 * received frees from other threads. It refills mcaches (cache_span), takes
 * spans back from them (uncache_span), gets new spans from the mheap and
 * gives empty ones back.
 *
 * How a free reaches a span that sits here. The freeing thread owns nothing
 * of the span, so it never writes allocBits and takes no lock: it ORs the
 * object's bit into the span's remoteFree word (span.c), then, if the span is
 * CENTRAL, calls sa_mcentral_notify, which pushes the span onto this class's
 * pending stack unless it is already there (the span's `pending` flag, won
 * by CAS, guarantees one membership at a time). The common case -- a span
 * already pending -- costs one load. Whoever next takes the lock drains the
 * stack: it clears `pending` before folding remoteFree into allocBits (so a
 * free landing after the fold finds `pending` clear and notifies again), then
 * files the span as partial or full, or returns it to the mheap when empty.
 * So producer/consumer programs (one thread allocates, another frees) see
 * their spans come back as soon as the producer needs a span, and memory
 * stays flat.
 *
 * The notification may land on a span that was emptied and recycled in the
 * meantime (span structs are type-stable, never unmapped): the drainer checks
 * that the span is still CENTRAL and of its class, hands it to the right
 * mcentral's stack otherwise (keeping `pending` set), or just clears
 * `pending` when no mcentral owns it. A stale notification therefore costs
 * one extra look, never a lost or misfiled span.
 *
 * Locking: `lock` guards the lists, nspans, and the allocBits of CENTRAL
 * spans of this class. It is never held while calling the mheap or taking
 * another mcentral's lock. The pending stack is lock-free (push by CAS, pop
 * everything by exchange, so there is no ABA).
 */
#include "internal.h"

SA_HIDDEN sa_mcentral sa_central[SA_NUM_SPAN_CLASSES];

void sa_mcentral_init_all(void)
{
    for (unsigned i = 0; i < SA_NUM_SPAN_CLASSES; i++) {
        pthread_mutex_init(&sa_central[i].lock, NULL);
        sa_central[i].spanclass = (uint8_t)i;
    }
}

/* ---- lists (lock held) --------------------------------------------------- */

static sa_span **list_head(sa_mcentral *c, uint8_t list)
{
    return list == SA_LIST_PARTIAL ? &c->partial : list == SA_LIST_FEW ? &c->few : &c->full;
}

static void list_remove(sa_mcentral *c, sa_span *s)
{
    if (s->list == SA_LIST_NONE)
        return;
    sa_span **head = list_head(c, s->list);
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->list = SA_LIST_NONE;
}

static void list_push(sa_mcentral *c, sa_span *s, uint8_t list)
{
    sa_span **head = list_head(c, list);
    s->prev = NULL;
    s->next = *head;
    if (*head)
        (*head)->prev = s;
    *head = s;
    s->list = list;
}

/* Files a CENTRAL span by its occupancy; empty spans go onto *tofree (linked
 * through next) to be returned to the mheap once the lock is dropped. */
static void reclassify(sa_mcentral *c, sa_span *s, sa_span **tofree)
{
    unsigned n = s->allocCount;
    unsigned nfree = s->nelems - n;
    uint8_t want = n == 0               ? SA_LIST_NONE
                   : nfree == 0         ? SA_LIST_FULL
                   : nfree * 4 >= s->nelems ? SA_LIST_PARTIAL
                                        : SA_LIST_FEW;
    if (want == SA_LIST_NONE) {
        list_remove(c, s);
        c->nspans--;
        /* Freed to the mheap after our lock is dropped (we never hold it
         * while calling the mheap): until then no list holds the span. A
         * notification landing meanwhile finds it not CENTRAL and is
         * dropped (an empty span has nothing left to free). */
        sa_store_sc(&s->state, SA_SPAN_TRANSIT);
        s->next = *tofree;
        *tofree = s;
        return;
    }
    if (s->list != want) {
        list_remove(c, s);
        list_push(c, s, want);
    }
}

static void push_pending(sa_mcentral *c, sa_span *s)
{
    sa_span *head = __atomic_load_n(&c->pending, __ATOMIC_RELAXED);
    do {
        s->pendingNext = head;
    } while (!__atomic_compare_exchange_n(&c->pending, &head, s, true, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
}

void sa_mcentral_notify(sa_span *s, unsigned spc)
{
    if (sa_load_relaxed(&s->pending))
        return;
    uint8_t expect = 0;
    if (!__atomic_compare_exchange_n(&s->pending, &expect, 1, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_RELAXED))
        return;
    push_pending(&sa_central[spc], s);
    /* Without a running scavenger thread nobody drains stacks of classes no
     * thread allocates from any more: every SA_DRAIN_EVERY pushes, the
     * pusher drains them all (a few locks per that many spans, not per
     * free). */
    static uint64_t npushes;
    if (!sa_scavenger_running() &&
        __atomic_add_fetch(&npushes, 1, __ATOMIC_RELAXED) % SA_DRAIN_EVERY == 0)
        sa_mcentral_reclaim_all();
}

static void drain_pending(sa_mcentral *c, sa_span **tofree)
{
    sa_span *s = __atomic_exchange_n(&c->pending, NULL, __ATOMIC_ACQUIRE);
    while (s) {
        sa_span *next = s->pendingNext;
        uint8_t state = sa_load_sc(&s->state);
        uint8_t spc = sa_load_relaxed(&s->spanclass);
        if (state == SA_SPAN_CENTRAL && spc != c->spanclass) {
            push_pending(&sa_central[spc], s); /* stale: someone else's */
        } else if (state != SA_SPAN_CENTRAL) {
            sa_store_sc(&s->pending, 0); /* cached or recycled: owner merges */
        } else {
            /* CENTRAL and ours: on one of our lists (every transition to
             * CENTRAL completes under our lock). */
            sa_store_sc(&s->pending, 0);
            s->allocCount -= sa_span_merge_remote(s, "free");
            reclassify(c, s, tofree);
        }
        s = next;
    }
}

static void free_spans(sa_span *list)
{
    while (list) {
        sa_span *next = list->next;
        sa_mheap_free_span(list);
        list = next;
    }
}

/* ---- mcache interface ---------------------------------------------------- */

/* The span to allocate from: a well-stocked partial span (a quarter of its
 * slots free); else, after filing what other threads' frees changed
 * (draining is deferred until needed, as Go sweeps lazily), a well-stocked
 * one again. Spans with only a few free slots are left to collect more
 * frees: a refill that yields a couple of objects costs more than it saves
 * (measured on a churn benchmark: 33% fewer instructions, 3% more RSS, when
 * a fresh span is taken instead); they are used when the heap cannot grow
 * (few_ok). Unlinked; NULL when there is none. Lock held. */
static sa_span *take_partial(sa_mcentral *c, sa_span **tofree, bool few_ok)
{
    if (!c->partial && __atomic_load_n(&c->pending, __ATOMIC_RELAXED))
        drain_pending(c, tofree);
    sa_span *s = c->partial ? c->partial : few_ok ? c->few : NULL;
    if (s)
        list_remove(c, s);
    return s;
}

/* Takes a partial span for mc (CACHED by it from here on) and installs it in
 * mc's slot in the same critical section, or returns NULL. One critical
 * section matters for fork: a child must never find a span both on a list
 * and in an (orphaned) cache, nor in neither. */
static sa_span *claim(sa_mcentral *c, sa_mcache *mc, bool few_ok, sa_span **slot)
{
    sa_span *tofree = NULL;
    pthread_mutex_lock(&c->lock);
    sa_span *s = take_partial(c, &tofree, few_ok);
    if (s) {
        sa_store_relaxed(&s->owner, mc);
        sa_store_sc(&s->state, SA_SPAN_CACHED);
        *slot = s;
    }
    pthread_mutex_unlock(&c->lock);
    free_spans(tofree);
    return s;
}

/* Hands mc a span with at least one free slot, window loaded, and installs
 * it in *slot (mc->alloc[spc]); NULL when the heap is out of memory. Partial
 * spans first (they may hold dirty slots), a fresh span from the mheap
 * otherwise. */
sa_span *sa_mcentral_cache_span(sa_mcentral *c, sa_mcache *mc, sa_span **slot)
{
    sa_span *s = claim(c, mc, false, slot);
    if (!s) {
        s = sa_mheap_alloc_small_span(c->spanclass);
        if (s) {
            /* fresh from the mheap: all slots free, window at slot 0 */
            pthread_mutex_lock(&c->lock);
            sa_store_relaxed(&s->owner, mc);
            sa_store_sc(&s->state, SA_SPAN_CACHED);
            c->nspans++;
            *slot = s;
            pthread_mutex_unlock(&c->lock);
            sa_span_load_window(s, 0);
            return s;
        }
        /* The heap cannot grow: settle for a span with a few free slots. */
        s = claim(c, mc, true, slot);
        if (!s)
            return NULL;
    }
    s->needzero = 1;
    s->allocCount -= sa_span_merge_remote(s, "free");
    if (!sa_span_load_window(s, 0)) {
        /* Cannot happen: partial spans have a free slot and only the owner
         * (now us) allocates. */
        sa_report_fatal("mcentral: partial span without a free slot");
    }
    return s;
}

/* Takes back a span from its mcache (window already retired) and clears the
 * cache's slot for it in the same critical section (see claim). */
void sa_mcentral_uncache_span(sa_mcentral *c, sa_span *s, sa_span **slot)
{
    sa_span *tofree = NULL;
    pthread_mutex_lock(&c->lock);
    *slot = &sa_emptyspan;
    sa_span_unload_window(s);
    sa_store_relaxed(&s->owner, NULL);
    /* Publish CENTRAL before draining remoteFree (see sa_free_remote). */
    sa_store_sc(&s->state, SA_SPAN_CENTRAL);
    s->needzero = 1;
    sa_span_merge_remote(s, "free");
    s->allocCount = sa_span_count_alloc(s);
    s->list = SA_LIST_NONE;
    reclassify(c, s, &tofree);
    pthread_mutex_unlock(&c->lock);
    free_spans(tofree);
}

/* One object for a thread without an mcache (during bootstrap, or after its
 * cache was flushed at exit). *needzero tells whether the slot may be dirty. */
void *sa_mcentral_alloc_one(sa_mcentral *c, int *needzero)
{
    sa_span *tofree = NULL;
    pthread_mutex_lock(&c->lock);
    sa_span *s = take_partial(c, &tofree, false);
    if (!s) {
        pthread_mutex_unlock(&c->lock);
        s = sa_mheap_alloc_small_span(c->spanclass);
        pthread_mutex_lock(&c->lock);
        if (!s) {
            s = take_partial(c, &tofree, true);
            if (!s) {
                pthread_mutex_unlock(&c->lock);
                free_spans(tofree);
                return NULL;
            }
        }
    }
    if (s->state == SA_SPAN_CENTRAL) {
        list_push(c, s, SA_LIST_FEW); /* refiled below */
    } else {
        /* CENTRAL only once it is on a list, under the lock: a drainer that
         * meets a (recycled) span of its class in state CENTRAL files it. */
        c->nspans++;
        list_push(c, s, SA_LIST_PARTIAL);
        sa_store_sc(&s->state, SA_SPAN_CENTRAL);
    }
    s->allocCount -= sa_span_merge_remote(s, "free");
    void *p = sa_span_alloc_slow_one(s);
    if (p)
        s->allocCount++;
    reclassify(c, s, &tofree);
    pthread_mutex_unlock(&c->lock);
    free_spans(tofree);
    *needzero = 1;
    return p;
}

static void drain_now(sa_mcentral *c)
{
    sa_span *tofree = NULL;
    pthread_mutex_lock(&c->lock);
    drain_pending(c, &tofree);
    pthread_mutex_unlock(&c->lock);
    free_spans(tofree);
}

/* Files every span other threads' frees left on a pending stack, so spans
 * they emptied reach the mheap even when nobody allocates in their class
 * any more (the scavenger's and sa_scavenge's first step). */
void sa_mcentral_reclaim_all(void)
{
    for (unsigned i = 0; i < SA_NUM_SPAN_CLASSES; i++) {
        sa_mcentral *c = &sa_central[i];
        if (__atomic_load_n(&c->pending, __ATOMIC_RELAXED) != NULL)
            drain_now(c);
    }
}

/* Heap check: every listed span is CENTRAL, of this class, on the list its
 * occupancy says, with an exact allocCount; the class's span count adds up
 * with the spans mcaches hold. */
void sa_mcentral_check(uint32_t epoch, const uint64_t *cached_per_class)
{
    for (unsigned i = 0; i < SA_NUM_SPAN_CLASSES; i++) {
        sa_mcentral *c = &sa_central[i];
        uint64_t n = 0;
        uint8_t lists[] = {SA_LIST_PARTIAL, SA_LIST_FEW, SA_LIST_FULL};
        for (unsigned l = 0; l < 3; l++) {
            sa_span *prev = NULL;
            for (sa_span *s = *list_head(c, lists[l]); s; prev = s, s = s->next) {
                sa_check_visit(s, epoch, "mcentral");
                if (s->prev != prev)
                    sa_check_fail("mcentral list links broken", s);
                if (s->state != SA_SPAN_CENTRAL || s->spanclass != i || s->list != lists[l])
                    sa_check_fail("span on an mcentral list in the wrong state or class", s);
                unsigned cnt = sa_span_count_alloc(s);
                if (cnt != s->allocCount)
                    sa_check_fail("mcentral span allocCount differs from its bitmap", s);
                unsigned nfree = s->nelems - cnt;
                bool ok = lists[l] == SA_LIST_FULL      ? nfree == 0
                          : lists[l] == SA_LIST_PARTIAL ? nfree * 4 >= s->nelems
                                                        : nfree > 0 && nfree * 4 < s->nelems;
                if (!ok || cnt == 0)
                    sa_check_fail("span on the wrong mcentral list for its occupancy", s);
                sa_check_span_bits(s);
                n++;
            }
        }
        if (n + cached_per_class[i] != c->nspans)
            sa_check_fail("mcentral span count differs from its lists and caches", NULL);
    }
}

/* ---- fork ------------------------------------------------------------------ */

void sa_mcentral_fork_prepare(void)
{
    for (unsigned i = 0; i < SA_NUM_SPAN_CLASSES; i++)
        pthread_mutex_lock(&sa_central[i].lock);
}

void sa_mcentral_fork_parent(void)
{
    for (unsigned i = SA_NUM_SPAN_CLASSES; i-- > 0;)
        pthread_mutex_unlock(&sa_central[i].lock);
}

void sa_mcentral_fork_child(void)
{
    for (unsigned i = 0; i < SA_NUM_SPAN_CLASSES; i++)
        pthread_mutex_init(&sa_central[i].lock, NULL);
}
