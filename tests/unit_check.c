/* sa_heap_check: passes on a heap in any state the allocator produces, and
 * catches each kind of corruption it promises to catch. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "internal.h"

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    static void *slots[4][4096];
    void **mine = slots[(uintptr_t)arg % 4];
    for (int i = 0; i < 200000; i++) {
        int k = rand_r(&seed) % 4096;
        sa_free(mine[k]);
        size_t n = rand_r(&seed) % 8 == 0 ? (size_t)(rand_r(&seed) % 100000) : (size_t)(rand_r(&seed) % 700);
        mine[k] = sa_malloc(n);
    }
    return NULL;
}

Test(check, passes_after_threads_churn_and_exit)
{
    cr_assert_eq(sa_heap_check(), 0);
    for (int round = 0; round < 3; round++) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 4 * round));
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
        cr_assert_eq(sa_heap_check(), 0);
        sa_scavenge(0);
        cr_assert_eq(sa_heap_check(), 0);
    }
}

/* Spans emptied by other threads' frees travel from the mcentral to the
 * mheap outside both locks (the drainer files them under the mcentral lock,
 * unlocks, then frees them to the mheap): a check in that window must not
 * call them lost. Found by the TSan stress run, where the scavenger thread
 * drained while the main thread checked between rounds. */
#define TRAVEL_OBJS 4096
static void *travel_objs[TRAVEL_OBJS];
static int travel_stop;

static void *alloc_and_exit(void *arg)
{
    (void)arg;
    for (int i = 0; i < TRAVEL_OBJS; i++)
        travel_objs[i] = sa_malloc(1024 + (size_t)(i % 4) * 512);
    return NULL; /* thread exit: the spans go to their mcentrals */
}

static void *drainer(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&travel_stop, __ATOMIC_RELAXED))
        sa_mcentral_reclaim_all();
    return NULL;
}

Test(check, passes_while_emptied_spans_travel_to_the_mheap)
{
    for (int round = 0; round < 20; round++) {
        pthread_t a, d;
        pthread_create(&a, NULL, alloc_and_exit, NULL);
        pthread_join(a, NULL);
        __atomic_store_n(&travel_stop, 0, __ATOMIC_RELAXED);
        pthread_create(&d, NULL, drainer, NULL);
        for (int i = 0; i < TRAVEL_OBJS; i++) {
            sa_free(travel_objs[i]); /* remote: the span is another's */
            if (i % 16 == 15)
                cr_assert_eq(sa_heap_check(), 0);
        }
        __atomic_store_n(&travel_stop, 1, __ATOMIC_RELAXED);
        pthread_join(d, NULL);
        cr_assert_eq(sa_heap_check(), 0);
    }
}

/* Several releasers at once (the background thread, eager frees, a memory
 * limit, sa_scavenge): each run in flight while the heap lock is dropped
 * around madvise must be accounted for, by the check and across fork. */
static void *scavenger_loop(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&travel_stop, __ATOMIC_RELAXED))
        sa_scavenge(0);
    return NULL;
}

Test(check, passes_while_threads_scavenge_at_once)
{
    pthread_t t[2];
    __atomic_store_n(&travel_stop, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, scavenger_loop, NULL);
    for (int round = 0; round < 300; round++) {
        char *p[8];
        for (int i = 0; i < 8; i++) {
            p[i] = sa_malloc((size_t)(1 + i) << 20);
            cr_assert_not_null(p[i]);
            for (size_t off = 0; off < (size_t)(1 + i) << 20; off += 8192)
                p[i][off] = 1; /* back the pages, so there is work to release */
        }
        for (int i = 0; i < 8; i++)
            sa_free(p[i]);
        cr_assert_eq(sa_heap_check(), 0);
    }
    __atomic_store_n(&travel_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(sa_heap_check(), 0);
}

/* A full span parked in its mcentral (no mcache holds it). */
static sa_span *central_span(void **objs, unsigned *n)
{
    unsigned sc = sa_size_to_class(2048);
    sa_mcentral *c = &sa_central[SA_SPANCLASS_MANAGED | sc];
    int nz;
    *n = sa_class_to_nelems[sc];
    for (unsigned i = 0; i < *n; i++)
        objs[i] = sa_mcentral_alloc_one(c, &nz);
    return sa_span_of((uintptr_t)objs[0]);
}

Test(check, catches_a_bitmap_that_disagrees_with_its_count, .signal = SIGABRT)
{
    void *objs[16];
    unsigned n;
    sa_span *s = central_span(objs, &n);
    cr_assert_eq(sa_heap_check(), 0);
    s->allocBits[0] &= ~(uint64_t)1; /* a lost block */
    sa_heap_check();
}

Test(check, catches_a_span_on_two_lists, .signal = SIGABRT)
{
    void *objs[16];
    unsigned n;
    sa_span *s = central_span(objs, &n);
    sa_mcentral *c = &sa_central[s->spanclass];
    /* splice it onto the partial list as well (it stays on the full list) */
    c->partial = s;
    sa_heap_check();
}

Test(check, catches_a_page_map_entry_without_a_span, .signal = SIGABRT)
{
    void *p = sa_malloc(100000);
    sa_heaparena *a = sa_mheap_arena_of((uintptr_t)p);
    size_t pg = ((uintptr_t)p - a->base) >> SA_PAGE_SHIFT;
    a->spans[pg + 1] = NULL; /* the second page of the block forgets it */
    sa_heap_check();
}

Test(check, catches_a_remote_free_of_a_free_slot, .signal = SIGABRT)
{
    void *objs[16];
    unsigned n;
    sa_span *s = central_span(objs, &n);
    s->allocBits[0] &= ~(uint64_t)2;
    s->allocCount--;
    s->remoteFree[0] |= 2; /* freed twice: once folded, once pending */
    sa_heap_check();
}
