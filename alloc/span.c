/*
 * span.c — a span's objects and their bitmaps.
 *
 * A small span holds nelems objects of one size class. Its state is three
 * bitmaps outside the span's memory:
 *
 *   allocBits   1 = allocated. Written only by the span's owner (the mcache
 *               that caches it, or its mcentral under the lock); read by
 *               anyone (relaxed atomics) to reject double frees.
 *   allocCache  the complement of allocBits from freeindex on, so that the
 *               malloc fast path finds the next free slot with one
 *               count-trailing-zeros (Go's nextFreeFast). A window covers one
 *               bitmap word; slots past nelems are pre-marked allocated, so
 *               the fast path never compares against nelems.
 *   remoteFree  objects freed by threads that do not own the span, set with
 *               an atomic OR. The owner folds them into allocBits with an
 *               atomic exchange per word (sa_span_merge_remote) when its
 *               window runs out, when it takes or returns the span, and the
 *               mcentral does the same when notified.
 *
 * Allocation walks forward through the span; slots freed behind freeindex
 * (by the owner directly, by others through remoteFree) are found again when
 * the owner reaches the end and rescans from slot 0 -- the same life cycle as
 * Go's sweep, minus the collector.
 *
 * A free by the owner clears the allocBits bit: no atomics, no lock. A free by
 * anyone else never writes allocBits; see sa_free_remote for the protocol
 * with the owner and mcentral.c for how a span sitting in an mcentral learns
 * about it.
 */
#include "internal.h"

void sa_span_init_small(sa_span *s, unsigned spc)
{
    s->allocCount = 0;
    s->wakeAt = 0;
    sa_store_relaxed(&s->hasRemote, 0);
    unsigned sc = sa_spanclass_sizeclass(spc);
    s->spanclass = (uint8_t)spc;
    s->elemsize = sa_class_to_size[sc];
    s->nelems = sa_class_to_nelems[sc];
    s->divmul = sa_class_to_divmul[sc];
    s->freeindex = 0;
    s->allocCache = 0;
    s->windowFree = 0;
    for (unsigned w = 0; w < SA_BITMAP_WORDS; w++) {
        sa_store_relaxed(&s->allocBits[w], 0);
        sa_store_relaxed(&s->remoteFree[w], 0);
    }
}

/* Bits of word w that stand for slots past nelems (always "allocated"). */
static inline uint64_t tail_mask(const sa_span *s, unsigned w)
{
    unsigned last = (s->nelems - 1u) >> 6;
    unsigned used = s->nelems & 63u;
    if (w != last || used == 0)
        return 0;
    return ~(uint64_t)0 << used;
}

/* Loads the allocation window from the first word at or after fromword that
 * has a free slot. Returns false when there is none. */
bool sa_span_load_window(sa_span *s, unsigned fromword)
{
    unsigned nwords = sa_span_nwords(s);
    for (unsigned w = fromword; w < nwords; w++) {
        uint64_t bits = sa_load_relaxed(&s->allocBits[w]) | tail_mask(s, w);
        if (bits != ~(uint64_t)0) {
            s->allocCache = ~bits;
            s->freeindex = w * 64;
            s->windowFree = (uint32_t)sa_popcount64(~bits);
            return true;
        }
    }
    s->allocCache = 0;
    s->freeindex = s->nelems;
    s->windowFree = 0;
    return false;
}

void sa_span_unload_window(sa_span *s)
{
    s->allocCache = 0;
    s->windowFree = 0;
}

unsigned sa_span_count_alloc(const sa_span *s)
{
    unsigned n = 0, nwords = sa_span_nwords(s);
    for (unsigned w = 0; w < nwords; w++)
        n += sa_popcount64(sa_load_relaxed(&s->allocBits[w]));
    return n;
}

/* Folds remote frees into allocBits; owner only. Returns how many. A bit
 * freed remotely whose allocBits bit is already clear was freed twice (once
 * by the owner, once by someone else): report it, naming the object. */
unsigned sa_span_merge_remote(sa_span *s, const char *call)
{
    unsigned n = 0, nwords = sa_span_nwords(s);
    /* The hint is cleared before the words are read; a freer sets it after
     * its OR (sa_free_remote), so a bit that slips past this merge leaves
     * the hint set for the next one. */
    if (!sa_load_sc(&s->hasRemote) || !__atomic_exchange_n(&s->hasRemote, 0, __ATOMIC_SEQ_CST))
        return 0;
    for (unsigned w = 0; w < nwords; w++) {
        /* seq_cst load: pairs with the freer's OR-then-load-state (see
         * sa_free_remote) when the owner has just published a new state. */
        if (sa_load_sc(&s->remoteFree[w]) == 0)
            continue;
        uint64_t r = __atomic_exchange_n(&s->remoteFree[w], 0, __ATOMIC_SEQ_CST);
        uint64_t bits = sa_load_relaxed(&s->allocBits[w]);
        uint64_t twice = r & ~bits;
        if (SA_UNLIKELY(twice)) {
            uint32_t idx = w * 64 + (uint32_t)__builtin_ctzll(twice);
            sa_report_invalid(call, (void *)(s->base + (uintptr_t)idx * s->elemsize),
                              "double free: freed by two threads");
        }
        sa_store_relaxed(&s->allocBits[w], bits & ~r);
        n += sa_popcount64(r);
    }
    return n;
}

/* Allocates the first free slot; for an owner without a window (the mcentral
 * serving a thread that has no mcache). Returns NULL when full. */
void *sa_span_alloc_slow_one(sa_span *s)
{
    unsigned nwords = sa_span_nwords(s);
    for (unsigned w = 0; w < nwords; w++) {
        uint64_t bits = sa_load_relaxed(&s->allocBits[w]) | tail_mask(s, w);
        if (bits != ~(uint64_t)0) {
            uint32_t idx = w * 64 + (uint32_t)__builtin_ctzll(~bits);
            sa_bit_set(s->allocBits, idx);
            return (void *)(s->base + (uintptr_t)idx * s->elemsize);
        }
    }
    return NULL;
}

/*
 * Free of object idx by a thread that does not own the span.
 *
 * Protocol (every step a sequentially consistent atomic):
 *   freer: check the allocBits bit; OR the bit into remoteFree; set the
 *          span's hasRemote hint; then load the span's state; if it is
 *          CENTRAL, notify the mcentral.
 *   owner: when it gives the span up it first stores the new state (CENTRAL)
 *          and only then drains remoteFree (clearing the hint, then reading
 *          the words).
 * Either the owner's drain sees the bit, or the freer's load sees CENTRAL and
 * notifies: no bit is left behind in a span nobody will look at. After the
 * OR, the span may already be empty and recycled by another thread; the only
 * thing the freer still does is the notification, which tolerates a recycled
 * (type-stable) struct -- see mcentral.c.
 */
void sa_free_remote(sa_span *s, uint32_t idx, const char *call, void *p)
{
    uint64_t m = (uint64_t)1 << (idx & 63);
    unsigned w = idx >> 6;
    unsigned spc = s->spanclass;
    if (SA_UNLIKELY(!(sa_load_relaxed(&s->allocBits[w]) & m)))
        sa_report_invalid(call, p, "not an allocated block: double free or a pointer never returned");
    uint64_t old = __atomic_fetch_or(&s->remoteFree[w], m, __ATOMIC_SEQ_CST);
    if (SA_UNLIKELY(old & m))
        sa_report_invalid(call, p, "double free: block already freed by another thread");
    if (!sa_load_sc(&s->hasRemote)) {
        sa_store_sc(&s->hasRemote, 1);
        /* First remote free since the owner last folded: tell its mcache
         * (mcache structs are type-stable: a hint landing on one that has
         * been recycled costs its new thread one extra look). */
        sa_mcache *o = sa_load_relaxed(&s->owner);
        if (o != NULL && spc < SA_NUM_SIZE_CLASSES)
            __atomic_fetch_or(&o->remote_classes, (uint64_t)1 << spc, __ATOMIC_SEQ_CST);
    }
    if (sa_load_sc(&s->state) == SA_SPAN_CENTRAL)
        sa_mcentral_notify(s, spc);
}
