/* mcentral: partial/full moves, remote-free notification, empty spans back
 * to the heap. Uses a managed span class, which malloc never touches, so the
 * test owns the mcentral outright. */
#include <criterion/criterion.h>
#include <string.h>
#include <pthread.h>

#include "internal.h"
#include "track.h"

/* Debug builds (SPANALLOC_DEBUG) add a trailer to every block and report
 * usable size = requested size: these tests call the tiers directly, below the layer that adds it. */
static void skip_in_debug_build(void)
{
    if (strcmp(sa_build_option("debug"), "on") == 0)
        cr_skip_test("release semantics (debug build)");
}
TestSuite(mcentral, .init = skip_in_debug_build);

/* The tiers below the entry points do not announce blocks to memcheck (the
 * entry points do); these tests call the tiers directly and free through
 * sa_free, so announce what they allocate. */
static void *announced(void *p)
{
    if (p) {
        sa_span *s = sa_span_of((uintptr_t)p);
        SA_TRACK_MALLOC(p, s->elemsize, 0);
        (void)s;
    }
    return p;
}
#define sa_mcentral_alloc_one(c, nz) announced(sa_mcentral_alloc_one((c), (nz)))
#define sa_mcache_refill_alloc(mc, spc, nz) announced(sa_mcache_refill_alloc((mc), (spc), (nz), NULL))

static unsigned test_class(unsigned sc)
{
    return SA_SPANCLASS_MANAGED | SA_SPANCLASS_NOSCAN | sc;
}

static bool in_list(sa_span *head, sa_span *s)
{
    for (; head; head = head->next)
        if (head == s)
            return true;
    return false;
}

Test(mcentral, full_span_moves_to_partial_after_a_remote_free_then_back_to_heap)
{
    sa_ensure_init();
    unsigned sc = sa_size_to_class(4096);
    sa_mcentral *c = &sa_central[test_class(sc)];
    int nz;
    unsigned n = sa_class_to_nelems[sc];
    void *objs[SA_MAX_SPAN_OBJS];
    for (unsigned i = 0; i < n; i++)
        objs[i] = sa_mcentral_alloc_one(c, &nz);
    sa_span *s = sa_span_of((uintptr_t)objs[0]);
    cr_assert_not_null(s);
    cr_assert_eq(s->state, SA_SPAN_CENTRAL);
    cr_assert(in_list(c->full, s), "a span with no free slot is on the full list");
    cr_assert(!in_list(c->partial, s));
    cr_assert_eq(c->nspans, 1);

    sa_free(objs[1]); /* not owned by any mcache: remote path + notify */
    cr_assert_eq(s->pending, 1);
    cr_assert_eq(c->pending, s);
    cr_assert(in_list(c->full, s), "still filed as full until drained");

    void *again = sa_mcentral_alloc_one(c, &nz); /* drains, reuses slot 1 */
    cr_assert_eq(again, objs[1]);
    cr_assert_eq(s->pending, 0);
    cr_assert(in_list(c->full, s));

    for (unsigned i = 0; i < n; i++)
        sa_free(objs[i]);
    cr_assert_eq(c->pending, s);
    void *fresh = sa_mcentral_alloc_one(c, &nz); /* drain: s empty -> heap */
    cr_assert_eq(c->nspans, 1, "the empty span went back, a new one came");
    sa_span *s2 = sa_span_of((uintptr_t)fresh);
    cr_assert(!in_list(c->full, s) || s2 == s);
    cr_assert(in_list(c->partial, s2));
    sa_free(fresh);
}

struct handoff {
    void **objs;
    unsigned n;
};

static void *free_all(void *arg)
{
    struct handoff *h = arg;
    for (unsigned i = 0; i < h->n; i++)
        sa_free(h->objs[i]);
    return NULL;
}

Test(mcentral, cached_span_returns_with_frees_from_another_thread)
{
    sa_ensure_init();
    unsigned sc = sa_size_to_class(512);
    unsigned spc = test_class(sc);
    sa_mcentral *c = &sa_central[spc];
    sa_mcache *mc = sa_mcache_for_thread();
    int nz;
    unsigned n = sa_class_to_nelems[sc];
    void *objs[SA_MAX_SPAN_OBJS];
    for (unsigned i = 0; i < n; i++) {
        objs[i] = sa_mcache_refill_alloc(mc, spc, &nz);
        cr_assert_not_null(objs[i]);
    }
    sa_span *s = mc->alloc[spc];
    cr_assert_eq(s->state, SA_SPAN_CACHED);
    cr_assert_eq(s->owner, mc);

    pthread_t t;
    struct handoff h = {objs, n};
    pthread_create(&t, NULL, free_all, &h);
    pthread_join(t, NULL);
    cr_assert_eq(sa_span_count_alloc(s), n, "remote frees wait in remoteFree");
    cr_assert_null(c->pending, "a cached span is not put on the pending stack");

    /* The owner's next allocation folds them in and reuses the span. */
    void *p = sa_mcache_refill_alloc(mc, spc, &nz);
    cr_assert_eq(mc->alloc[spc], s);
    cr_assert_eq(p, objs[0]);
    cr_assert_eq(nz, 1, "reused slots may be dirty");
    cr_assert_eq(sa_span_count_alloc(s), 1);
}

Test(mcentral, uncache_files_spans_by_occupancy)
{
    sa_ensure_init();
    unsigned sc = sa_size_to_class(2048);
    unsigned spc = test_class(sc);
    sa_mcentral *c = &sa_central[spc];
    sa_mcache *mc = sa_mcache_for_thread();
    int nz;
    void *p = sa_mcache_refill_alloc(mc, spc, &nz);
    sa_span *s = mc->alloc[spc];
    sa_mcentral_uncache_span(c, s, &mc->alloc[spc]);
    cr_assert_eq(mc->alloc[spc], &sa_emptyspan, "the slot is cleared with the return");
    cr_assert_eq(s->state, SA_SPAN_CENTRAL);
    cr_assert_null(s->owner);
    cr_assert(in_list(c->partial, s));
    sa_free(p); /* the last object: notify, then empty on drain */
    sa_span *s2 = sa_mcentral_cache_span(c, mc, &mc->alloc[spc]);
    cr_assert_not_null(s2);
    cr_assert_eq(s2->owner, mc);
    cr_assert_eq(s2->state, SA_SPAN_CACHED);
    cr_assert_eq(mc->alloc[spc], s2, "installed in the cache by the mcentral");
}

/* A late notification can leave a span struct on a pending stack after the
 * span was emptied and its struct recycled (structs are type-stable). The
 * recycled span must keep `pending` set until that stale entry is drained,
 * and the drain must file it correctly -- never free a span holding a live
 * block. (Regression: the recycling memset cleared `pending`, so the struct
 * could be pushed twice and the span freed under a live block.) */
Test(mcentral, stale_pending_entry_on_a_recycled_span_is_harmless)
{
    sa_ensure_init();
    unsigned sca = sa_size_to_class(3072), scb = sa_size_to_class(6144);
    sa_mcentral *ca = &sa_central[test_class(sca)], *cb = &sa_central[test_class(scb)];
    int nz;
    /* A span of class A, emptied and returned to the heap. */
    void *o = sa_mcentral_alloc_one(ca, &nz);
    sa_span *s = sa_span_of((uintptr_t)o);
    sa_free(o);                 /* remote path: pushed on A's stack */
    sa_mcentral_reclaim_all();  /* drains: s empty -> heap */
    cr_assert_null(sa_span_of((uintptr_t)o), "the emptied span went back to the heap");
    /* The late freer's notification lands after the recycling decision. */
    s->pending = 1;
    s->pendingNext = NULL;
    __atomic_store_n(&ca->pending, s, __ATOMIC_RELEASE);
    /* The struct is reused for a span of class B holding a live block. */
    void *live = sa_mcentral_alloc_one(cb, &nz);
    sa_span *sb = sa_span_of((uintptr_t)live);
    cr_assert_eq(sb, s, "the span struct pool is LIFO: the struct was reused");
    cr_assert_eq(sb->pending, 1, "recycling keeps the stale entry's pending flag");
    /* Draining A meets a CENTRAL span of class B: hands it to B. */
    void *other = sa_mcentral_alloc_one(ca, &nz);
    cr_assert_eq(cb->pending, sb);
    /* Draining B files it as the partial span it is. */
    sa_mcentral_reclaim_all();
    void *more = sa_mcentral_alloc_one(cb, &nz);
    cr_assert_eq(sb->pending, 0);
    cr_assert_eq(sa_span_of((uintptr_t)live), sb, "the span of a live block stays");
    cr_assert(sa_span_count_alloc(sb) >= 1);
    sa_free(live);
    sa_free(more);
    sa_free(other);
}
