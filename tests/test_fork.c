/*
 * test_fork.c — fork() from a multi-threaded parent while other threads
 * allocate (after glibc's tst-malloc-fork-deadlock, bounded to ~2 s).
 *
 * Allocator threads keep every tier busy (small, large, aligned, cross-thread
 * frees, glibc-internal allocations through the overridden malloc) while
 * forking threads fork repeatedly. Each child allocates at once, uses and
 * frees blocks of every kind, also frees blocks its parent allocated before
 * the fork, starts a thread that allocates, and exits 0. A deadlock in a
 * child is turned into a failure by its alarm() (SIGALRM kills it), one in
 * the parent by the Criterion timeout.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spanalloc.h"
#include "test_util.h"

#define KiB ((size_t)1024)

static atomic_int g_stop;
static atomic_long g_forks;
static atomic_int g_bad_children;
static char g_first_bad[160];

/* Blocks live across every fork, freed by the children. */
static void *g_pre_fork[64];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *allocator_thread(void *v)
{
    sa_rng r = { (uint64_t)(uintptr_t)v };
    void *live[128] = { 0 };
    while (!atomic_load(&g_stop)) {
        for (int i = 0; i < 200; i++) {
            size_t slot = sa_rng_below(&r, 128);
            if (live[slot]) {
                sa_free(live[slot]);
                live[slot] = NULL;
                continue;
            }
            uint64_t k = sa_rng_below(&r, 100);
            size_t n = k < 90 ? sa_rng_below(&r, 2000) : k < 98 ? 32 * KiB + sa_rng_below(&r, 200 * KiB)
                                                                : sa_rng_below(&r, 5000);
            void *p = k < 98 ? (k & 1 ? malloc(n) : sa_malloc(n)) : sa_aligned_alloc(4096, n);
            if (p)
                memset(p, 0x5c, n < 256 ? n : 256);
            live[slot] = p;
        }
        /* glibc internals allocating through our malloc (stdio, strdup) */
        char *s = strdup("fork-while-allocating");
        char *line = NULL;
        if (asprintf(&line, "%s %d", s, (int)sa_rng_below(&r, 1000)) > 0)
            free(line);
        free(s);
    }
    for (int i = 0; i < 128; i++)
        sa_free(live[i]);
    return NULL;
}

static void *child_thread(void *v)
{
    void *p = sa_malloc(3000);
    void *q = malloc(100 * KiB);
    if (!p || !q)
        return (void *)1;
    memset(p, 1, 3000);
    memset(q, 2, 100 * KiB);
    free(q);
    return p; /* freed by the main thread of the child */
}

/* Runs in the child, at once after fork(). Exit status 0 = all good. */
static void child_body(void)
{
    alarm(sa_test_under_valgrind() ? 120 : 10); /* deadlock watchdog */
    static const size_t sizes[] = { 0, 8, 24, 100, 1000, 4000, 30000, 40000, 1 << 20 };
    void *p[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p[i] = (i & 1) ? malloc(sizes[i]) : sa_malloc(sizes[i]);
        if (!p[i])
            _exit(2);
        sa_fill(p[i], sizes[i]);
    }
    void *a = sa_aligned_alloc(65536, 1000);
    void *c = sa_calloc(100, 100);
    if (!a || !c || sa_first_nonzero(c, 10000) != (size_t)-1)
        _exit(3);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (sa_check(p[i], sizes[i]) != (size_t)-1)
            _exit(4);
        sa_free(p[i]);
    }
    sa_free(a);
    sa_free(c);
    /* the parent's blocks are valid here and ours to free */
    for (int i = 0; i < 64; i++) {
        if (sa_check(g_pre_fork[i], 100 + (size_t)i * 997) != (size_t)-1)
            _exit(5);
        sa_free(g_pre_fork[i]);
    }
    pthread_t t;
    void *ret;
    if (pthread_create(&t, NULL, child_thread, NULL) || pthread_join(t, &ret))
        _exit(6);
    if (ret == (void *)1 || ret == NULL)
        _exit(7);
    sa_free(ret);
    char *s = strdup("child");
    free(s);
    _exit(0);
}

static void note_child(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if (atomic_fetch_add(&g_bad_children, 1) == 0)
            snprintf(g_first_bad, sizeof g_first_bad, "%s %d%s",
                     WIFSIGNALED(st) ? "killed by signal" : "exit status",
                     WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
                     WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM ? " (deadlocked: watchdog alarm)" : "");
    }
}

/* The fork tests run for a time window AND until enough forks were made:
 * a count reached within a window would be a speed assertion, which fails
 * on a loaded machine (seen: 13 forks in 2 s). Criterion's timeout bounds
 * the run. */
static long min_forks(void) { return sa_test_under_valgrind() ? 3 : 30; }

static void *forking_thread(void *v)
{
    double end = *(double *)v;
    while (now() < end || atomic_load(&g_forks) < min_forks()) {
        pid_t pid = fork();
        if (pid < 0) {
            usleep(1000);
            continue;
        }
        if (pid == 0)
            child_body();
        atomic_fetch_add(&g_forks, 1);
        note_child(pid);
    }
    return NULL;
}

Test(fork, fork_while_threads_allocate, .timeout = 120)
{
    for (int i = 0; i < 64; i++) {
        g_pre_fork[i] = (i % 3) ? sa_malloc(100 + (size_t)i * 997) : malloc(100 + (size_t)i * 997);
        cr_assert_not_null(g_pre_fork[i]);
        sa_fill(g_pre_fork[i], 100 + (size_t)i * 997);
    }
    double end = now() + (sa_test_under_valgrind() ? 6.0 : 2.0);
    pthread_t alloc[3], forker[2];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&alloc[i], NULL, allocator_thread, (void *)(uintptr_t)(i + 1)), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&forker[i], NULL, forking_thread, &end), 0);
    /* the main thread forks too */
    forking_thread(&end);
    for (int i = 0; i < 2; i++)
        pthread_join(forker[i], NULL);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(alloc[i], NULL);

    cr_assert_eq(atomic_load(&g_bad_children), 0, "%d of %ld children failed; first: %s",
                 atomic_load(&g_bad_children), atomic_load(&g_forks), g_first_bad);
    cr_assert_geq(atomic_load(&g_forks), min_forks());
    /* the parent's heap is intact and usable */
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(sa_check(g_pre_fork[i], 100 + (size_t)i * 997), (size_t)-1);
        sa_free(g_pre_fork[i]);
    }
    void *p = sa_malloc(12345);
    cr_assert_not_null(p);
    sa_free(p);
}

/* The child's heap must be consistent however the other threads were caught
 * by the fork: a thread between giving a span back and clearing its cache
 * slot once left the span both on an mcentral list and in its orphaned cache,
 * and the child's fork handler gave it back a second time (a span linked
 * twice; later a live block "not allocated"). sa_heap_check in the child
 * sees any span in two places or in none. */
static void *refilling_thread(void *v)
{
    sa_rng r = { (uint64_t)(uintptr_t)v };
    enum { N = 512 };
    void **objs = sa_malloc(N * sizeof *objs);
    while (!atomic_load(&g_stop)) {
        /* fill spans of a few classes (they go back full), then free them
         * (they come back partial): refills and give-backs all the time */
        size_t size = 16 + 16 * sa_rng_below(&r, 24);
        for (int i = 0; i < N; i++)
            objs[i] = sa_malloc(size);
        for (int i = 0; i < N; i++)
            sa_free(objs[i]);
    }
    sa_free(objs);
    return NULL;
}

Test(fork, child_heap_passes_the_heap_check, .timeout = 120)
{
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, refilling_thread, (void *)(uintptr_t)(i + 7)), 0);
    double end = now() + (sa_test_under_valgrind() ? 4.0 : 1.5);
    long forks = 0;
    int bad = 0, first = 0;
    while (now() < end || forks < min_forks()) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            alarm(sa_test_under_valgrind() ? 120 : 10);
            sa_heap_check(); /* aborts with its one-line report */
            void *p = sa_malloc(100);
            sa_free(p);
            sa_heap_check();
            _exit(0);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (bad++ == 0)
                first = st;
        }
        forks++;
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(bad, 0, "%d of %ld children failed the heap check (first wait status %#x)", bad,
                 forks, first);
    cr_assert_geq(forks, min_forks());
}

/* A child of a child: the atfork state must be right after a fork in a child. */
Test(fork, nested_fork_children_allocate, .timeout = 60)
{
    for (int i = 0; i < 64; i++) {
        g_pre_fork[i] = sa_malloc(100 + (size_t)i * 997);
        sa_fill(g_pre_fork[i], 100 + (size_t)i * 997);
    }
    pthread_t t;
    atomic_store(&g_stop, 0);
    cr_assert_eq(pthread_create(&t, NULL, allocator_thread, (void *)7), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        alarm(sa_test_under_valgrind() ? 120 : 10);
        pthread_t t2;
        atomic_store(&g_stop, 0);
        if (pthread_create(&t2, NULL, allocator_thread, (void *)8))
            _exit(10);
        pid_t gc = fork();
        if (gc < 0)
            _exit(11);
        if (gc == 0)
            child_body();
        int st;
        if (waitpid(gc, &st, 0) != gc || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            _exit(12);
        atomic_store(&g_stop, 1);
        pthread_join(t2, NULL);
        child_body();
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    atomic_store(&g_stop, 1);
    pthread_join(t, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %s %d", WIFSIGNALED(st) ? "signal" : "exit",
              WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}
