/* mcache: thread-exit flush, producer/consumer memory stays flat. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "internal.h"

static sa_span *seen_span;

static void *alloc_and_exit(void *arg)
{
    void **out = arg;
    *out = sa_malloc(100);
    seen_span = sa_span_of((uintptr_t)*out);
    cr_assert_eq(seen_span->owner, sa_tls_mcache);
    return NULL;
}

Test(mcache, thread_exit_returns_its_spans)
{
    void *p;
    pthread_t t;
    pthread_create(&t, NULL, alloc_and_exit, &p);
    pthread_join(t, NULL);
    cr_assert_null(seen_span->owner, "the span went back to its mcentral");
    cr_assert_eq(seen_span->state, SA_SPAN_CENTRAL);
    sa_free(p);
}

static pthread_key_t late_key;
static void *late_block;
static void late_destructor(void *v)
{
    (void)v;
    /* runs after (or before) spanalloc's own destructor: must not leak */
    late_block = sa_malloc(64);
    sa_free(sa_malloc(200));
}

static void *thread_with_late_destructor(void *arg)
{
    (void)arg;
    pthread_setspecific(late_key, (void *)1);
    sa_free(sa_malloc(64));
    return NULL;
}

Test(mcache, allocation_from_a_late_key_destructor_is_served_and_not_cached)
{
    pthread_key_create(&late_key, late_destructor);
    for (int i = 0; i < 20; i++) {
        pthread_t t;
        pthread_create(&t, NULL, thread_with_late_destructor, NULL);
        pthread_join(t, NULL);
        cr_assert_not_null(late_block);
        sa_span *s = sa_span_of((uintptr_t)late_block);
        cr_assert_not_null(s);
        cr_assert(s->owner == NULL || s->owner == sa_tls_mcache,
                  "no span stays with a dead thread's cache");
        sa_free(late_block);
    }
}

#define QLEN 1024
static void *_Atomic queue[QLEN];
static atomic_bool done;

static void *consumer(void *arg)
{
    (void)arg;
    unsigned i = 0;
    for (;;) {
        void *p = atomic_exchange(&queue[i], NULL);
        if (p) {
            sa_free(p);
        } else if (!atomic_load(&done)) {
            sched_yield(); /* empty slot: let the producer run (valgrind
                            * runs one thread at a time) */
        } else {
            bool empty = true;
            for (unsigned k = 0; k < QLEN; k++)
                if (atomic_load(&queue[k])) empty = false;
            if (empty) break;
        }
        i = (i + 1) % QLEN;
    }
    return NULL;
}

Test(mcache, producer_consumer_memory_stays_flat)
{
    pthread_t t;
    atomic_store(&done, false);
    pthread_create(&t, NULL, consumer, NULL);
    sa_counters c;
    size_t after_first = 0;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 200000; i++) {
            void *p = sa_malloc(16 + (i % 8) * 48);
            unsigned k = (unsigned)i % QLEN;
            void *expect = NULL;
            while (!atomic_compare_exchange_weak(&queue[k], &expect, p)) {
                expect = NULL;
                sched_yield(); /* full slot: let the consumer run */
            }
        }
        sa_get_counters(&c);
        if (round == 0)
            after_first = c.heap_inuse;
    }
    atomic_store(&done, true);
    pthread_join(t, NULL);
    sa_get_counters(&c);
    cr_assert_leq(c.heap_inuse, after_first * 2 + 1024 * 1024,
                  "heap in use grew from %zu to %zu", after_first, c.heap_inuse);
}
