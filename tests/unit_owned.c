/*
 * unit_owned.c — spans owned by the thread that filled them (mcache.c):
 * the owner's frees stay local, parked spans wake, empty spans go back,
 * frees from other threads and from exiting threads are never lost, double
 * frees across threads are reported, and producer/consumer memory stays flat.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "test_util.h"

/* A class nothing else in this process uses much (Criterion allocates
 * small blocks through us too). */
#define OBJ 2304

/* The span class sa_malloc(OBJ) is served from (debug builds add a
 * trailer, so it is read off a real block). */
static unsigned obj_class(void)
{
    void *p = sa_malloc(OBJ);
    unsigned spc = sa_span_of((uintptr_t)p)->spanclass;
    sa_free(p);
    return spc;
}

static unsigned obj_nelems(void)
{
    return sa_class_to_nelems[sa_spanclass_sizeclass(obj_class())];
}

static bool in_set(sa_span *const *set, unsigned n, const sa_span *s)
{
    for (unsigned i = 0; i < n; i++)
        if (set[i] == s)
            return true;
    return false;
}

/* Allocated slots of class spc in every span no live thread but the caller
 * owns: the mcentral's lists (after draining what remote frees left
 * pending) and the caller's own spans. */
static unsigned live_in_class(unsigned spc)
{
    sa_mcentral_reclaim_all();
    sa_mcentral *c = &sa_central[spc];
    unsigned n = 0;
    pthread_mutex_lock(&c->lock);
    sa_span *lists[] = {c->partial, c->few, c->full};
    for (unsigned l = 0; l < 3; l++)
        for (sa_span *s = lists[l]; s; s = s->next)
            n += sa_span_count_alloc(s);
    pthread_mutex_unlock(&c->lock);
    sa_mcache *mc = sa_tls_mcache;
    if (mc->alloc[spc] != &sa_emptyspan)
        n += sa_span_count_alloc(mc->alloc[spc]);
    for (unsigned i = 0; i < mc->navail[spc]; i++)
        n += sa_span_count_alloc(mc->avail[spc][i]);
    for (unsigned i = 0; i < mc->nparked[spc]; i++)
        n += sa_span_count_alloc(mc->parked[spc][i]);
    return n;
}

Test(owned, owner_frees_into_a_filled_span_are_local_and_wake_it)
{
    unsigned spc = obj_class(), n = obj_nelems();
    void *a[SA_MAX_SPAN_OBJS] = {0}, *b = NULL;
    for (unsigned i = 0; i < n; i++)
        a[i] = sa_malloc(OBJ);
    sa_span *s = sa_span_of((uintptr_t)a[0]);
    for (unsigned i = 1; i < n; i++)
        cr_assert_eq(sa_span_of((uintptr_t)a[i]), s, "one span holds the first nelems objects");
    b = sa_malloc(OBJ); /* the span ran out: the thread switched */
    sa_mcache *mc = sa_tls_mcache;
    cr_assert_neq(sa_span_of((uintptr_t)b), s);
    cr_assert_eq(s->owner, mc, "a filled span stays with the thread that filled it");
    cr_assert_eq(s->state, SA_SPAN_CACHED);
    cr_assert(in_set(mc->parked[spc], mc->nparked[spc], s), "a full span is parked");
    sa_heap_check();

    unsigned quarter = (n + 3) / 4;
    for (unsigned i = 0; i < quarter; i++) {
        cr_assert(in_set(mc->parked[spc], mc->nparked[spc], s));
        sa_free(a[i]);
        cr_assert_eq(sa_load_relaxed(&s->hasRemote), 0, "the owner's free is not a remote free");
        cr_assert_eq(s->allocCount, n - 1 - i);
    }
    cr_assert(in_set(mc->avail[spc], mc->navail[spc], s), "a quarter free wakes a parked span");
    cr_assert(!in_set(mc->parked[spc], mc->nparked[spc], s));
    sa_heap_check();
    for (unsigned i = quarter; i < n; i++)
        sa_free(a[i]);
    cr_assert_eq(s->allocCount, 0);
    sa_heap_check();
    sa_free(b);
}

Test(owned, emptied_spans_beyond_a_few_go_back_to_the_mheap)
{
    unsigned spc = obj_class(), n = obj_nelems();
    enum { SPANS = 12 };
    static void *a[SPANS * SA_MAX_SPAN_OBJS];
    sa_span *spans[SPANS];
    for (unsigned i = 0; i < SPANS * n; i++) {
        a[i] = sa_malloc(OBJ);
        if (i % n == 0)
            spans[i / n] = sa_span_of((uintptr_t)a[i]);
    }
    sa_mcache *mc = sa_tls_mcache;
    for (unsigned i = 0; i < SPANS * n; i++)
        sa_free(a[i]);
    sa_heap_check();
    unsigned kept = 0;
    for (unsigned k = 0; k < SPANS; k++)
        if (spans[k]->owner == mc)
            kept++;
        else
            cr_assert_neq(spans[k]->state, SA_SPAN_CACHED);
    /* the span it allocates from, and a few empty ones for the next round */
    cr_assert_leq(kept, 1 + 4, "%u empty spans stayed with the thread", kept);
    cr_assert_geq(kept, 2, "a few empty spans are kept for reuse");
    cr_assert_leq(mc->navail[spc] + mc->nparked[spc], SA_OWNED_MAX);
}

/* ---- frees from other threads ---------------------------------------------- */

struct batch {
    void **objs;
    unsigned from, to;
};

static void *free_range(void *arg)
{
    struct batch *b = arg;
    for (unsigned i = b->from; i < b->to; i++)
        sa_free(b->objs[i]);
    return NULL;
}

static void *alloc_range(void *arg)
{
    struct batch *b = arg;
    for (unsigned i = b->from; i < b->to; i++) {
        b->objs[i] = sa_malloc(OBJ);
        memset(b->objs[i], 0x3c, 64);
    }
    return NULL;
}

Test(owned, blocks_freed_by_a_thread_that_then_exits_are_not_lost)
{
    unsigned spc = obj_class();
    unsigned base = live_in_class(spc);
    enum { N = 300 };
    static void *objs[N];
    /* allocated by a thread that exits (its spans go to the mcentral) */
    struct batch all = {objs, 0, N};
    pthread_t t;
    pthread_create(&t, NULL, alloc_range, &all);
    pthread_join(t, NULL);
    cr_assert_eq(live_in_class(spc), base + N);
    /* freed by threads that exit right after their frees */
    for (unsigned k = 0; k < 3; k++) {
        struct batch part = {objs, k * 100, k * 100 + 100};
        pthread_create(&t, NULL, free_range, &part);
        pthread_join(t, NULL);
        cr_assert_eq(live_in_class(spc), base + N - (k + 1) * 100,
                     "every free of an exited thread is accounted for");
    }
    sa_heap_check();
}

/* An owner that exits while another thread frees into its spans. */
static atomic_int go;

static void *alloc_then_exit(void *arg)
{
    struct batch *b = arg;
    alloc_range(b);
    atomic_store(&go, 1);
    return NULL; /* exits at once: its cache is flushed while frees land */
}

Test(owned, frees_into_the_spans_of_a_thread_that_is_exiting)
{
    unsigned spc = obj_class();
    unsigned base = live_in_class(spc);
    enum { N = 200 };
    static void *objs[N];
    int rounds = sa_test_under_valgrind() ? 10 : 200;
    for (int r = 0; r < rounds; r++) {
        atomic_store(&go, 0);
        struct batch b = {objs, 0, N};
        pthread_t t;
        pthread_create(&t, NULL, alloc_then_exit, &b);
        while (!atomic_load(&go))
            sched_yield();
        for (unsigned i = 0; i < N; i++)
            sa_free(objs[i]);
        pthread_join(t, NULL);
        cr_assert_eq(live_in_class(spc), base, "round %d: a free was lost", r);
    }
    sa_heap_check();
}

/* ---- double frees across threads ------------------------------------------------ */

/* Runs fn in a child with stderr in a pipe; returns what it printed, and
 * whether it died of SIGABRT. */
static bool child_aborts(void (*fn)(void), char *out, size_t cap)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fd[1], 2);
        signal(SIGABRT, SIG_DFL);
        fn();
        _exit(0);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t k;
    while (len + 1 < cap && (k = read(fd[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)k;
    out[len] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void *victim;
static char victim_text[32];

static void *free_victim(void *arg)
{
    (void)arg;
    sa_free(victim);
    return NULL;
}

/* The owner filled the span, another thread freed the block (remoteFree,
 * not folded yet), the owner frees it again. */
static void remote_then_owner(void)
{
    pthread_t t;
    pthread_create(&t, NULL, free_victim, NULL);
    pthread_join(t, NULL);
    sa_free(victim);
}

/* Two other threads free the same block of a span the owner keeps. */
static void remote_twice(void)
{
    pthread_t t;
    pthread_create(&t, NULL, free_victim, NULL);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, free_victim, NULL);
    pthread_join(t, NULL);
}

/* The owner frees it, then another thread. */
static void owner_then_remote(void)
{
    sa_free(victim);
    pthread_t t;
    pthread_create(&t, NULL, free_victim, NULL);
    pthread_join(t, NULL);
}

Test(owned, double_frees_across_threads_are_reported_naming_the_block)
{
    unsigned n = obj_nelems();
    void *fill[SA_MAX_SPAN_OBJS + 1];
    for (unsigned i = 0; i <= n; i++)
        fill[i] = sa_malloc(OBJ); /* the first span is full and parked */
    victim = fill[1];
    snprintf(victim_text, sizeof victim_text, "%p", victim);
    void (*cases[])(void) = {remote_then_owner, remote_twice, owner_then_remote};
    for (unsigned c = 0; c < 3; c++) {
        char out[512];
        cr_assert(child_aborts(cases[c], out, sizeof out), "case %u: no abort (%s)", c, out);
        cr_assert(strstr(out, "double free") != NULL, "case %u: %s", c, out);
        cr_assert(strstr(out, victim_text) != NULL, "case %u names %s: %s", c, victim_text, out);
        cr_assert(strstr(out, "sa_free()") != NULL, "case %u names the call: %s", c, out);
    }
    for (unsigned i = 0; i <= n; i++)
        sa_free(fill[i]);
}

/* The heap check sees an owned span whose count disagrees with its bitmap. */
static void corrupt_owned_count(void)
{
    sa_span *s = sa_span_of((uintptr_t)victim);
    s->allocCount--;
    sa_heap_check();
}

Test(owned, heap_check_walks_owned_spans)
{
    unsigned n = obj_nelems();
    void *fill[SA_MAX_SPAN_OBJS + 1];
    for (unsigned i = 0; i <= n; i++)
        fill[i] = sa_malloc(OBJ);
    victim = fill[0];
    char out[512];
    cr_assert(child_aborts(corrupt_owned_count, out, sizeof out), "no abort: %s", out);
    cr_assert(strstr(out, "owned span allocCount differs") != NULL, "%s", out);
    for (unsigned i = 0; i <= n; i++)
        sa_free(fill[i]);
}

/* ---- producer / consumer ----------------------------------------------------------- */

#define PAIRS 4
#define RING 1024
struct ring {
    void *_Atomic slot[RING];
    atomic_bool done;
};
static struct ring rings[PAIRS];
static atomic_bool stop_all;

static void *producer(void *arg)
{
    struct ring *r = arg;
    sa_rng rng = {(uint64_t)(uintptr_t)arg};
    unsigned i = 0;
    while (!atomic_load(&stop_all)) {
        size_t n = 16 + sa_rng_below(&rng, 1000);
        void *p = sa_malloc(n);
        cr_assert_not_null(p);
        memset(p, 0x77, n < 32 ? n : 32);
        void *expect = NULL;
        while (!atomic_compare_exchange_weak(&r->slot[i], &expect, p)) {
            expect = NULL;
            if (atomic_load(&stop_all)) {
                sa_free(p);
                goto out;
            }
            sched_yield();
        }
        i = (i + 1) % RING;
    }
out:
    atomic_store(&r->done, true);
    return NULL;
}

static void *consumer(void *arg)
{
    struct ring *r = arg;
    unsigned i = 0, idle = 0;
    for (;;) {
        void *p = atomic_exchange(&r->slot[i], NULL);
        if (p) {
            cr_assert_eq(*(unsigned char *)p, 0x77);
            sa_free(p);
            idle = 0;
        } else if (atomic_load(&r->done) && ++idle > RING) {
            break;
        } else {
            sched_yield();
        }
        i = (i + 1) % RING;
    }
    return NULL;
}

Test(owned, producer_consumer_eight_threads_keep_rss_flat, .timeout = 120)
{
    bool vg = sa_test_under_valgrind();
    double secs = vg ? 2.0 : 10.0;
    pthread_t t[2 * PAIRS];
    atomic_store(&stop_all, false);
    for (int k = 0; k < PAIRS; k++) {
        memset(&rings[k], 0, sizeof rings[k]);
        pthread_create(&t[2 * k], NULL, producer, &rings[k]);
        pthread_create(&t[2 * k + 1], NULL, consumer, &rings[k]);
    }
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    size_t first = sa_proc_status_kib("VmRSS"), peak = first;
    for (double s = 1.0; s < secs; s += 0.25) {
        ts.tv_sec = 0;
        ts.tv_nsec = 250000000;
        nanosleep(&ts, NULL);
        size_t now = sa_proc_status_kib("VmRSS");
        if (now > peak)
            peak = now;
    }
    atomic_store(&stop_all, true);
    for (int k = 0; k < 2 * PAIRS; k++)
        pthread_join(t[k], NULL);
    sa_heap_check();
    /* at most RING live messages of <= 1 KiB per pair: 4 MiB in all; the
     * heap after the first second must not keep growing */
    if (!vg)
        cr_assert_leq(peak, first + first / 4 + 2048, "VmRSS grew from %zu KiB to %zu KiB", first,
                      peak);
}

/* free of an object start that was never handed out: the report says what
 * is known (a double free and a pointer never returned look alike). */
static void free_never_returned(void)
{
    sa_free((char *)victim + sa_span_of((uintptr_t)victim)->elemsize);
}

Test(owned, free_of_a_slot_never_handed_out_says_so)
{
    void *fill[2];
    for (unsigned i = 0; i < 2; i++)
        fill[i] = sa_malloc(OBJ);
    sa_free(fill[1]); /* now the slot after fill[0] is not allocated */
    victim = fill[0];
    char out[512], want[64];
    snprintf(want, sizeof want, "%p", (void *)((char *)victim + sa_span_of((uintptr_t)victim)->elemsize));
    cr_assert(child_aborts(free_never_returned, out, sizeof out), "no abort: %s", out);
    cr_assert(strstr(out, "double free or a pointer never returned") != NULL, "%s", out);
    cr_assert(strstr(out, want) != NULL, "names %s: %s", want, out);
    sa_free(fill[0]);
}
