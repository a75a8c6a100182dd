/*
 * stress.c — multi-threaded stress of the sa_ API as a plain program (no
 * Criterion, so it runs under ThreadSanitizer, and as the soak driver).
 *
 * One round: T worker threads each run OPS operations with a deterministic
 * PRNG: allocate (sa_malloc, sa_calloc checked zero, sa_aligned_alloc checked
 * aligned, sa_realloc checked to keep the prefix) random sizes from the
 * round's size mix, fill each block with a pattern derived from its address
 * and size, free their own blocks, hand blocks to a shared queue and free
 * blocks other threads allocated. Every block is pattern-checked before it is
 * freed or reallocated. Half of the workers exit early, leaving their blocks
 * in the queue for the others (frees of blocks whose owning thread is gone).
 * After the join the main thread frees what is left, then checks:
 *   - no live object left over: heap_objects (sa_read_memstats) is back to
 *     its value before the round;
 *   - sa_heap_check() == 0 (compiled in when the header declares it:
 *     SA_TEST_HEAP_CHECK=1, set by tests/CMakeLists.txt); in a
 *     SPANALLOC_DEBUG build (SA_TEST_DEBUG=1) sa_build_option("debug") must
 *     say "on";
 *   - --rss-bound-mib M: after sa_scavenge(0), RSS is at most the first
 *     round's plus M MiB (no leak, no unbounded growth).
 *
 * usage: sa_stress [-t threads] [-r rounds] [-n ops] [-m mix] [-s seed]
 *                  [-d seconds] [--random] [--rss-bound-mib M] [-v]
 *   mix: 0 small, 1 mixed (default), 2 large-heavy
 *   -d: run rounds until this many seconds passed (soak); --random: each
 *   round picks its thread count (1..8) and mix at random.
 * Prints one summary line "sa_stress: OK ..." and exits 0, or one line
 * "sa_stress: FAIL ..." and exits 1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spanalloc.h"
#include "test_util.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define LOCAL_MAX 256
#define QCAP 4096

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sa_stress: FAIL ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    abort();
}

typedef struct {
    void *p;
    size_t n;
} block;

/* ---- shared queue of blocks to be freed by another thread ------------------------ */
static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static block q_slots[QCAP];
static size_t q_head, q_count;

static int q_push(block b)
{
    int ok = 0;
    pthread_mutex_lock(&q_mu);
    if (q_count < QCAP) {
        q_slots[(q_head + q_count++) % QCAP] = b;
        ok = 1;
    }
    pthread_mutex_unlock(&q_mu);
    return ok;
}
static int q_pop(block *b)
{
    int ok = 0;
    pthread_mutex_lock(&q_mu);
    if (q_count) {
        *b = q_slots[q_head];
        q_head = (q_head + 1) % QCAP;
        q_count--;
        ok = 1;
    }
    pthread_mutex_unlock(&q_mu);
    return ok;
}

/* ---- blocks --------------------------------------------------------------------- */

static size_t pick_size(sa_rng *r, int mix)
{
    uint64_t x = sa_rng_below(r, 1000);
    switch (mix) {
    case 0: return 1 + sa_rng_below(r, 512);
    case 2:
        if (x < 500)
            return 1 + sa_rng_below(r, 1024);
        if (x < 990)
            return 32 * KiB + sa_rng_below(r, 480 * KiB);
        return 1 * MiB + sa_rng_below(r, 3 * MiB);
    default:
        if (x < 900)
            return 1 + sa_rng_below(r, 1024);
        if (x < 980)
            return 1024 + sa_rng_below(r, 31 * KiB);
        return 32 * KiB + sa_rng_below(r, 224 * KiB);
    }
}

static void check_block(block b, const char *when)
{
    size_t bad = sa_check(b.p, b.n);
    if (bad != (size_t)-1)
        fail("block %p (%zu bytes): byte %zu changed (%s)", b.p, b.n, bad, when);
    size_t u = sa_malloc_usable_size(b.p);
    if (u < b.n)
        fail("block %p: usable size %zu < %zu", b.p, u, b.n);
}
static void free_block(block b, const char *when)
{
    check_block(b, when);
    if (b.n & 1)
        sa_free_sized(b.p, b.n);
    else
        sa_free(b.p);
}

static block new_block(sa_rng *r, int mix)
{
    size_t n = pick_size(r, mix);
    block b = { NULL, n };
    uint64_t how = sa_rng_below(r, 10);
    if (how < 6) {
        b.p = sa_malloc(n);
    } else if (how < 8) {
        b.p = sa_calloc(1, n);
        if (b.p && sa_first_nonzero(b.p, n) != (size_t)-1)
            fail("calloc(%zu) = %p not zero at byte %zu", n, b.p, sa_first_nonzero(b.p, n));
    } else {
        size_t a = (size_t)16 << sa_rng_below(r, 9); /* 16 .. 4096 */
        b.p = sa_aligned_alloc(a, n);
        if (b.p && !sa_is_aligned(b.p, a))
            fail("aligned_alloc(%zu, %zu) = %p misaligned", a, n, b.p);
    }
    if (!b.p)
        fail("allocation of %zu bytes failed (errno %d)", n, errno);
    if (!sa_is_aligned(b.p, 16))
        fail("%p not 16-byte aligned", b.p);
    sa_fill(b.p, n);
    return b;
}

static block realloc_block(sa_rng *r, block b, int mix)
{
    check_block(b, "before realloc");
    size_t m = pick_size(r, mix);
    void *q = sa_realloc(b.p, m);
    if (!q)
        fail("realloc(%p, %zu) failed", b.p, m);
    size_t keep = b.n < m ? b.n : m;
    size_t bad = sa_check_seed(q, keep, sa_pattern_seed(b.p, b.n));
    if (bad != (size_t)-1)
        fail("realloc %p(%zu) -> %p(%zu): byte %zu lost", b.p, b.n, q, m, bad);
    block nb = { q, m };
    sa_fill(q, m);
    return nb;
}

/* ---- workers ---------------------------------------------------------------------- */

typedef struct {
    pthread_t th;
    uint64_t seed;
    long ops;
    int mix;
    int exits_early; /* leaves its blocks to the others and returns early */
    long allocs, frees, remote_frees;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    sa_rng r = { w->seed };
    block local[LOCAL_MAX];
    int n = 0;
    long ops = w->exits_early ? w->ops / 4 : w->ops;
    for (long i = 0; i < ops; i++) {
        uint64_t x = sa_rng_below(&r, 100);
        if (x < 45 || n == 0) {
            if (n == LOCAL_MAX) {
                int k = (int)sa_rng_below(&r, (uint64_t)n);
                free_block(local[k], "evicted by its owner");
                w->frees++;
                local[k] = local[--n];
            }
            local[n++] = new_block(&r, w->mix);
            w->allocs++;
        } else if (x < 52) {
            int k = (int)sa_rng_below(&r, (uint64_t)n);
            local[k] = realloc_block(&r, local[k], w->mix);
        } else if (x < 75) {
            int k = (int)sa_rng_below(&r, (uint64_t)n);
            free_block(local[k], "freed by its owner");
            w->frees++;
            local[k] = local[--n];
        } else if (x < 88) {
            int k = (int)sa_rng_below(&r, (uint64_t)n);
            if (q_push(local[k]))
                local[k] = local[--n];
        } else {
            block b;
            if (q_pop(&b)) {
                if (x < 95 && n < LOCAL_MAX) {
                    check_block(b, "adopted from another thread");
                    local[n++] = b; /* freed later, maybe reallocated first */
                } else {
                    free_block(b, "freed by another thread");
                    w->remote_frees++;
                }
            }
        }
    }
    for (int k = 0; k < n; k++) {
        if (w->exits_early && q_push(local[k]))
            continue; /* someone else frees it after this thread is gone */
        free_block(local[k], "freed by its owner at exit");
        w->frees++;
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *idle(void *arg) { return arg; }

/* When the library is the process malloc, glibc allocates a descriptor for
 * each new thread and keeps it (with the stack) in its cache after the join:
 * start and join as many threads as a round can use once, before counting,
 * so later rounds reuse them and the live-object count is the harness's own. */
static void warm_thread_cache(int n)
{
    pthread_t th[64];
    for (int i = 0; i < n; i++)
        if (pthread_create(&th[i], NULL, idle, NULL))
            fail("pthread_create");
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

/* Live objects, and how many helper threads started or stopped so far: a
 * helper's start or idle stop moves glibc's thread bookkeeping, blocks the
 * program does not own. */
static uint64_t live_objects(uint64_t *helper_events)
{
    static sa_memstats ms; /* large: not on the stack */
    sa_read_memstats(&ms);
    *helper_events = ms.helpers_started + ms.helpers_stopped;
    return ms.heap_objects;
}

int main(int argc, char **argv)
{
    int threads = 4, rounds = 3, mix = 1, verbose = 0, randomize = 0;
    long ops = 20000;
    double seconds = 0;
    uint64_t seed = 1;
    long rss_bound_mib = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-v"))
            verbose = 1;
        else if (!strcmp(a, "--random"))
            randomize = 1;
        else if (v && !strcmp(a, "-t"))
            threads = atoi(v), i++;
        else if (v && !strcmp(a, "-r"))
            rounds = atoi(v), i++;
        else if (v && !strcmp(a, "-n"))
            ops = atol(v), i++;
        else if (v && !strcmp(a, "-m"))
            mix = atoi(v), i++;
        else if (v && !strcmp(a, "-s"))
            seed = strtoull(v, NULL, 0), i++;
        else if (v && !strcmp(a, "-d"))
            seconds = atof(v), i++;
        else if (v && !strcmp(a, "--rss-bound-mib"))
            rss_bound_mib = atol(v), i++;
        else {
            fprintf(stderr, "usage: %s [-t threads] [-r rounds] [-n ops] [-m mix] [-s seed] "
                            "[-d seconds] [--random] [--rss-bound-mib M] [-v]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || mix < 0 || mix > 2 || ops < 1)
        fail("bad arguments");
#if SA_TEST_DEBUG
    const char *dbg = sa_build_option("debug");
    if (!dbg || strcmp(dbg, "on") != 0)
        fail("built for a SPANALLOC_DEBUG library but sa_build_option(\"debug\") is %s", dbg ? dbg : "NULL");
#endif
#if SA_TEST_HEAP_CHECK
    const int heap_check = 1;
#else
    const int heap_check = 0;
#endif

    sa_rng master = { seed };
    double t0 = now_s();
    size_t rss_first = 0, rss_max = 0;
    long total_allocs = 0, total_frees = 0, total_remote = 0;
    int round = 0, skipped_counts = 0;
    worker *ws = calloc(64, sizeof *ws);
    warm_thread_cache(randomize ? 8 : threads);
    sa_test_start_helpers();
    for (;; round++) {
        if (seconds > 0 ? now_s() - t0 >= seconds && round > 0 : round >= rounds)
            break;
        int t = threads, m = mix;
        if (randomize) {
            t = 1 + (int)sa_rng_below(&master, 8);
            m = (int)sa_rng_below(&master, 3);
        }
        uint64_t hbefore, hafter;
        uint64_t before = live_objects(&hbefore);
        for (int i = 0; i < t; i++) {
            memset(&ws[i], 0, sizeof ws[i]);
            ws[i].seed = sa_rng_next(&master);
            ws[i].ops = ops;
            ws[i].mix = m;
            ws[i].exits_early = t > 1 && (i & 1);
            if (pthread_create(&ws[i].th, NULL, work, &ws[i]))
                fail("pthread_create");
        }
        for (int i = 0; i < t; i++) {
            pthread_join(ws[i].th, NULL);
            total_allocs += ws[i].allocs;
            total_frees += ws[i].frees;
            total_remote += ws[i].remote_frees;
        }
        block b;
        while (q_pop(&b)) {
            free_block(b, "freed by main after its owner exited");
            total_remote++;
        }
        uint64_t after = live_objects(&hafter);
        /* A round in which a helper thread started or stopped cannot be
         * counted exactly; every other round must come back to the count. */
        if (hafter != hbefore)
            skipped_counts++;
        else if (after != before)
            fail("round %d: %lld live objects left over (heap_objects %llu -> %llu)", round,
                 (long long)(after - before), (unsigned long long)before, (unsigned long long)after);
#if SA_TEST_HEAP_CHECK
        int hc = sa_heap_check();
        if (hc != 0)
            fail("round %d: sa_heap_check() = %d", round, hc);
#endif
        (void)sa_scavenge(0);
        size_t rss = sa_proc_status_kib("VmRSS");
        if (round == 0)
            rss_first = rss;
        if (rss > rss_max)
            rss_max = rss;
        if (verbose)
            printf("round %d: threads %d mix %d rss %zu KiB\n", round, t, m, rss);
        if (rss_bound_mib >= 0 && rss > rss_first + (size_t)rss_bound_mib * 1024)
            fail("round %d: RSS %zu KiB after the round, first round %zu KiB, bound +%ld MiB",
                 round, rss, rss_first, rss_bound_mib);
    }
    free(ws);
    if (round >= 8 && skipped_counts * 2 > round)
        fail("%d of %d rounds had a helper thread start or stop: too few were counted",
             skipped_counts, round);
    printf("sa_stress: OK rounds=%d allocs=%ld frees=%ld cross_thread_frees=%ld "
           "rss_first=%zuKiB rss_max=%zuKiB heap_check=%s counted_rounds=%d %.1fs\n",
           round, total_allocs, total_frees, total_remote, rss_first, rss_max,
           heap_check ? "on" : "off", round - skipped_counts, now_s() - t0);
    return 0;
}
