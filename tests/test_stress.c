/*
 * test_stress.c — many threads, random sizes, cross-thread frees.
 *
 *  - mixed: 4+ worker threads allocate random sizes (deterministic PRNG per
 *    thread; mostly small, some medium, a few large and aligned), fill each
 *    block with a pattern derived from its address and size, realloc some,
 *    free most themselves and pass the rest to other threads through a shared
 *    queue; every block is checked before it is freed.
 *  - short-lived producers: threads allocate, hand every block to the queue
 *    and exit while consumer threads still hold and free their blocks.
 *  - producer/consumer: one thread allocates, another frees, for many
 *    rounds; memory must stay flat: after sa_scavenge(0), the RSS the kernel
 *    reports after the last round is within FLAT_KIB of the lowest after
 *    round 2 (a leak of 0.5 MiB per round fails it).
 * Under valgrind the iteration counts shrink (same code paths), and RSS is
 * valgrind's own: the check falls back to the heap's own size (heap_sys).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spanalloc.h"
#include "test_util.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* How far RSS may drift over the rounds once warm: measured flat to within
 * ~0.3 MiB (RelWithDebInfo); the slack is for the debug and UBSan trees. */
#define FLAT_KIB ((size_t)3 * 1024)

/* What a round leaves behind: resident KiB after releasing free pages
 * (under valgrind: heap_sys in KiB, RSS being valgrind's). */
static size_t retained_kib(void)
{
    sa_scavenge(0);
    if (sa_test_under_valgrind()) {
        sa_counters c;
        sa_get_counters(&c);
        return c.heap_sys / KiB;
    }
    return sa_proc_status_kib("VmRSS");
}

/* Asserts the last of rounds values is within FLAT_KIB (valgrind: 16 MiB
 * of heap_sys) of the lowest after the first two rounds. */
static void assert_flat(const size_t *kib, int rounds, const char *what)
{
    cr_assert_geq(rounds, 3);
    size_t warm = kib[1];
    for (int i = 2; i < rounds; i++)
        if (kib[i] < warm)
            warm = kib[i];
    size_t slack = sa_test_under_valgrind() ? 16 * 1024 : FLAT_KIB;
    cr_assert_gt(warm, 0);
    cr_assert_leq(kib[rounds - 1], warm + slack,
                  "%s: %s %zu KiB after round 2..%d at the lowest, %zu KiB after the last "
                  "(bound +%zu KiB)", what, sa_test_under_valgrind() ? "heap_sys" : "RSS", warm,
                  rounds, kib[rounds - 1], slack);
}

/* ---- a bounded MPMC queue of blocks (mutex + condvars: the allocator is
 * what is under test, not the queue) ---------------------------------------- */

typedef struct {
    void *p;
    size_t n;
} block;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    block *slots;
    size_t cap, head, count;
    int closed;
} queue;

static void q_init(queue *q, size_t cap)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    q->slots = sa_malloc(cap * sizeof(block));
    cr_assert_not_null(q->slots);
    q->cap = cap;
    q->head = q->count = 0;
    q->closed = 0;
}
static void q_destroy(queue *q) { sa_free(q->slots); }

/* Blocking push (used by producers that must not drop blocks). */
static void q_push(queue *q, block b)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap)
        pthread_cond_wait(&q->not_full, &q->mu);
    q->slots[(q->head + q->count++) % q->cap] = b;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}
/* Non-blocking push: 0 when full. */
static int q_try_push(queue *q, block b)
{
    int ok = 0;
    pthread_mutex_lock(&q->mu);
    if (q->count < q->cap) {
        q->slots[(q->head + q->count++) % q->cap] = b;
        pthread_cond_signal(&q->not_empty);
        ok = 1;
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}
/* Blocking pop; 0 when the queue is closed and empty. */
static int q_pop(queue *q, block *out)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->mu);
    if (q->count == 0) {
        pthread_mutex_unlock(&q->mu);
        return 0;
    }
    *out = q->slots[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    return 1;
}
static int q_try_pop(queue *q, block *out)
{
    int ok = 0;
    pthread_mutex_lock(&q->mu);
    if (q->count > 0) {
        *out = q->slots[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        pthread_cond_signal(&q->not_full);
        ok = 1;
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}
static void q_close(queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

/* ---- shared failure reporting (cr_assert only from the main thread) -------- */

static atomic_int g_failures;
static char g_first_failure[256];

__attribute__((format(printf, 1, 2))) static void report(const char *fmt, ...)
{
    if (atomic_fetch_add(&g_failures, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g_first_failure, sizeof g_first_failure, fmt, ap);
        va_end(ap);
    }
}

/* Verify the block's pattern and free it. */
static void check_and_free(block b)
{
    size_t bad = sa_check(b.p, b.n);
    if (bad != (size_t)-1)
        report("block %p size %zu corrupted at byte %zu", b.p, b.n, bad);
    if (sa_malloc_usable_size(b.p) < b.n)
        report("block %p size %zu: usable size shrank (%zu)", b.p, b.n, sa_malloc_usable_size(b.p));
    sa_free(b.p);
}

static size_t random_size(sa_rng *r)
{
    uint64_t k = sa_rng_below(r, 1000);
    if (k < 800)
        return sa_rng_below(r, 513);             /* small: 80% */
    if (k < 984)
        return 513 + sa_rng_below(r, 32 * KiB);  /* medium classes */
    if (k < 999)
        return 32 * KiB + sa_rng_below(r, 512 * KiB); /* large */
    return MiB + sa_rng_below(r, 3 * MiB);       /* rare big */
}

/* Allocates one block of a random kind and fills it. */
static block random_block(sa_rng *r)
{
    block b;
    b.n = random_size(r);
    uint64_t kind = sa_rng_below(r, 100);
    if (kind < 5) {
        size_t al = (size_t)16 << sa_rng_below(r, 9); /* 16 .. 4096 */
        b.p = sa_aligned_alloc(al, b.n);
        if (b.p && ((uintptr_t)b.p & (al - 1)))
            report("aligned block %p size %zu misaligned (align %zu)", b.p, b.n, al);
    } else if (kind < 10) {
        b.p = sa_calloc(1, b.n);
        if (b.p && sa_first_nonzero(b.p, b.n) != (size_t)-1)
            report("calloc block %p size %zu not zero at %zu", b.p, b.n, sa_first_nonzero(b.p, b.n));
    } else {
        b.p = sa_malloc(b.n);
    }
    if (!b.p) {
        report("allocation of %zu bytes failed", b.n);
        b.n = 0;
        return b;
    }
    if ((uintptr_t)b.p & 15)
        report("block %p size %zu not 16-aligned", b.p, b.n);
    sa_fill(b.p, b.n);
    return b;
}

/* ---- mixed workload --------------------------------------------------------- */

typedef struct {
    queue *q;
    int id;
    int iters;
    size_t allocated, cross_freed;
} worker_arg;

static void *mixed_worker(void *v)
{
    worker_arg *a = v;
    sa_rng r = { 0x5eed0000ull + (uint64_t)a->id };
    enum { LIVE = 256 };
    block live[LIVE];
    memset(live, 0, sizeof live);
    for (int i = 0; i < a->iters; i++) {
        size_t slot = sa_rng_below(&r, LIVE);
        block *b = &live[slot];
        uint64_t act = sa_rng_below(&r, 100);
        if (b->p && act < 15) {
            /* hand it to whichever thread pops it */
            if (q_try_push(a->q, *b))
                b->p = NULL;
        } else if (b->p && act < 25) {
            /* realloc keeps the common prefix */
            size_t nn = random_size(&r) + 1; /* realloc(p, 0) would free */
            size_t keep = nn < b->n ? nn : b->n;
            size_t bad = sa_check(b->p, b->n);
            if (bad != (size_t)-1)
                report("block %p size %zu corrupted at %zu before realloc", b->p, b->n, bad);
            uint64_t seed = sa_pattern_seed(b->p, b->n);
            void *np = sa_realloc(b->p, nn);
            if (!np) {
                report("realloc to %zu failed", nn);
                continue;
            }
            bad = sa_check_seed(np, keep, seed);
            if (bad != (size_t)-1)
                report("realloc %p to %zu lost byte %zu", np, nn, bad);
            b->p = np;
            b->n = nn;
            sa_fill(b->p, b->n);
            a->allocated++;
        } else if (b->p) {
            check_and_free(*b);
            b->p = NULL;
        } else {
            *b = random_block(&r);
            a->allocated++;
        }
        /* adopt and free blocks other threads passed along */
        block in;
        if ((i & 3) == 0 && q_try_pop(a->q, &in)) {
            check_and_free(in);
            a->cross_freed++;
        }
    }
    for (int s = 0; s < LIVE; s++)
        if (live[s].p)
            check_and_free(live[s]);
    return NULL;
}

Test(stress, mixed_threads_cross_frees, .timeout = 240)
{
    const int nthreads = 6;
    const int iters = sa_test_under_valgrind() ? 3000 : 40000;
    queue q;
    q_init(&q, 4096);
    pthread_t t[8];
    worker_arg a[8];
    for (int i = 0; i < nthreads; i++) {
        a[i] = (worker_arg){ .q = &q, .id = i, .iters = iters };
        cr_assert_eq(pthread_create(&t[i], NULL, mixed_worker, &a[i]), 0);
    }
    size_t cross = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        cross += a[i].cross_freed;
    }
    block b;
    while (q_try_pop(&q, &b))
        check_and_free(b);
    q_destroy(&q);
    cr_assert_eq(atomic_load(&g_failures), 0, "%d failures; first: %s", atomic_load(&g_failures),
                 g_first_failure);
    cr_assert_gt(cross, (size_t)iters / 100, "too few cross-thread frees happened (%zu)", cross);
}

/* ---- threads exit while others hold their blocks ----------------------------- */

typedef struct {
    queue *q;
    int id, nblocks;
} producer_arg;

static void *short_producer(void *v)
{
    producer_arg *a = v;
    sa_rng r = { 0xfeed0000ull + (uint64_t)a->id };
    for (int i = 0; i < a->nblocks; i++) {
        block b = random_block(&r);
        if (b.p)
            q_push(a->q, b);
    }
    /* and some blocks freed locally, so its cache holds partial spans at exit */
    for (int i = 0; i < 64; i++) {
        block b = random_block(&r);
        if (b.p)
            check_and_free(b);
    }
    return NULL;
}

static void *consumer(void *v)
{
    queue *q = v;
    block b;
    size_t n = 0;
    while (q_pop(q, &b)) {
        check_and_free(b);
        n++;
    }
    return (void *)(uintptr_t)n;
}

Test(stress, producers_exit_while_blocks_live, .timeout = 240)
{
    const int generations = sa_test_under_valgrind() ? 4 : 40;
    const int per_thread = sa_test_under_valgrind() ? 300 : 3000;
    queue q;
    /* capacity large enough that one generation's blocks are all still
     * queued (held) after its producers have exited */
    q_init(&q, 4 * (size_t)per_thread + 16);
    pthread_t cons[2];
    /* consumers start after the first generation so its blocks outlive their threads */
    int started = 0;
    for (int g = 0; g < generations; g++) {
        pthread_t prod[4];
        producer_arg pa[4];
        for (int i = 0; i < 4; i++) {
            pa[i] = (producer_arg){ .q = &q, .id = g * 4 + i, .nblocks = per_thread };
            cr_assert_eq(pthread_create(&prod[i], NULL, short_producer, &pa[i]), 0);
        }
        for (int i = 0; i < 4; i++)
            pthread_join(prod[i], NULL);
        if (!started) {
            for (int i = 0; i < 2; i++)
                cr_assert_eq(pthread_create(&cons[i], NULL, consumer, &q), 0);
            started = 1;
        }
    }
    q_close(&q);
    size_t consumed = 0;
    for (int i = 0; i < 2; i++) {
        void *ret;
        pthread_join(cons[i], &ret);
        consumed += (size_t)(uintptr_t)ret;
    }
    q_destroy(&q);
    cr_assert_eq(atomic_load(&g_failures), 0, "%d failures; first: %s", atomic_load(&g_failures),
                 g_first_failure);
    cr_assert_eq(consumed, (size_t)generations * 4 * per_thread, "consumers freed %zu blocks", consumed);
}

/* ---- producer/consumer memory stays flat ------------------------------------- */

typedef struct {
    queue *q;
    int rounds, per_round;
    int fresh_threads; /* unused by the thread itself */
    pthread_barrier_t *bar;
} pc_arg;

static size_t g_kib_after[64];

static void *pc_producer(void *v)
{
    pc_arg *a = v;
    sa_rng r = { 77 };
    for (int round = 0; round < a->rounds; round++) {
        for (int i = 0; i < a->per_round; i++) {
            block b;
            b.n = 16 + sa_rng_below(&r, 1000);
            if (i % 500 == 0)
                b.n = 40 * KiB + sa_rng_below(&r, 100 * KiB);
            b.p = sa_malloc(b.n);
            if (!b.p) {
                report("producer malloc(%zu) failed", b.n);
                continue;
            }
            sa_fill(b.p, b.n);
            q_push(a->q, b);
        }
        block end = { NULL, 0 }; /* end-of-round marker */
        q_push(a->q, end);
        pthread_barrier_wait(a->bar); /* consumer finished freeing this round */
        g_kib_after[round] = retained_kib();
        pthread_barrier_wait(a->bar);
    }
    return NULL;
}

static void *pc_consumer(void *v)
{
    pc_arg *a = v;
    for (int round = 0; round < a->rounds; round++) {
        block b;
        while (q_pop(a->q, &b) && b.p)
            check_and_free(b);
        pthread_barrier_wait(a->bar);
        pthread_barrier_wait(a->bar);
    }
    return NULL;
}

static void run_producer_consumer(int rounds, int per_round)
{
    queue q;
    q_init(&q, 1024);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    pc_arg a = { .q = &q, .rounds = rounds, .per_round = per_round, .bar = &bar };
    pthread_t p, c;
    cr_assert_eq(pthread_create(&p, NULL, pc_producer, &a), 0);
    cr_assert_eq(pthread_create(&c, NULL, pc_consumer, &a), 0);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    pthread_barrier_destroy(&bar);
    q_destroy(&q);
}

Test(stress, producer_consumer_memory_stays_flat, .timeout = 240)
{
    const int rounds = sa_test_under_valgrind() ? 6 : 30;
    const int per_round = sa_test_under_valgrind() ? 5000 : 30000; /* ~16 MB through the queue per round */
    run_producer_consumer(rounds, per_round);
    cr_assert_eq(atomic_load(&g_failures), 0, "%d failures; first: %s", atomic_load(&g_failures),
                 g_first_failure);
    /* each round pushes ~16 MB; a leak of the remote frees would add that per round */
    assert_flat(g_kib_after, rounds, "producer/consumer leak");
}

/* Same, but every round's producer is a new thread that exits at once: its
 * cache is handed back while the consumer still frees its blocks. */
static void *one_shot_producer(void *v)
{
    pc_arg *a = v;
    sa_rng r = { (uint64_t)a->fresh_threads };
    for (int i = 0; i < a->per_round; i++) {
        block b;
        b.n = 16 + sa_rng_below(&r, 2000);
        b.p = sa_malloc(b.n);
        if (!b.p) {
            report("one-shot producer malloc(%zu) failed", b.n);
            continue;
        }
        sa_fill(b.p, b.n);
        q_push(a->q, b);
    }
    return NULL;
}

Test(stress, exiting_producers_memory_stays_flat, .timeout = 240)
{
    const int rounds = sa_test_under_valgrind() ? 6 : 40;
    const int per_round = sa_test_under_valgrind() ? 3000 : 15000;
    queue q;
    q_init(&q, 512);
    pthread_t cons;
    cr_assert_eq(pthread_create(&cons, NULL, consumer, &q), 0);
    size_t kib[64];
    for (int round = 0; round < rounds; round++) {
        pc_arg a = { .q = &q, .per_round = per_round, .fresh_threads = round };
        pthread_t p;
        cr_assert_eq(pthread_create(&p, NULL, one_shot_producer, &a), 0);
        pthread_join(p, NULL);
        /* wait for the consumer to drain */
        for (;;) {
            pthread_mutex_lock(&q.mu);
            size_t left = q.count;
            pthread_mutex_unlock(&q.mu);
            if (!left)
                break;
            sched_yield();
        }
        kib[round] = retained_kib();
    }
    q_close(&q);
    void *ret;
    pthread_join(cons, &ret);
    q_destroy(&q);
    cr_assert_eq(atomic_load(&g_failures), 0, "%d failures; first: %s", atomic_load(&g_failures),
                 g_first_failure);
    cr_assert_eq((size_t)(uintptr_t)ret, (size_t)rounds * per_round);
    assert_flat(kib, rounds, "exited threads' spans leak");
}
