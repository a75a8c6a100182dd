/*
 * fault_inject.c — OS failures at every point of a scripted workload
 * (debug builds only: needs SPANALLOC=fail_os_after=N and sa_heap_check).
 *
 * Contract assumed (from the lead, issue 7): in a -DSPANALLOC_DEBUG=ON build,
 * SPANALLOC=fail_os_after=N makes the OS layer's N-th mmap/madvise call fail
 * (that one call only; N counts from the start of the process);
 * sa_build_option("debug") is "on"; int sa_heap_check(void) returns 0 when
 * every invariant holds.
 *
 * The parent sweeps N = 1 .. NMAX (argument, default 64): for each N it
 * re-executes itself as a child with SPANALLOC=fail_os_after=N, under a
 * 60-second alarm. The child runs every entry point (malloc, calloc, realloc,
 * reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc) on
 * sizes that need new spans, new large runs and new 64 MiB arenas, frees half
 * of the blocks and calls sa_scavenge(0) (madvise) in between, and checks:
 *   - a failed call returns NULL with errno == ENOMEM (posix_memalign:
 *     returns ENOMEM and leaves *memptr untouched; realloc: the old block is
 *     intact and still usable); a madvise failure just carries on;
 *   - every block allocated before (or after) the failure keeps its pattern;
 *   - no lock stays held: another thread then allocates and frees (small,
 *     large, aligned) and must finish within 10 seconds;
 *   - once a call has failed, every entry point works again afterwards;
 *   - sa_heap_check() == 0 at the end.
 * The parent requires every child to exit 0 and at least one child to have
 * seen a failed call (else the injection did not reach the entry points and
 * the sweep proved nothing), and a child without injection to see none.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
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
#define MiB (KiB * 1024)
#define MAXB 512

/* no stdio in the child: it allocates, and allocation is what fails here */
static void say(int fd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1)
        n = sizeof buf - 1;
    if (n > 0 && write(fd, buf, (size_t)n) < 0)
        _exit(3);
}
#define CFAIL(...)                                                                     \
    do {                                                                               \
        say(2, "fault_inject[N=%s]: FAIL: ", getenv("SPANALLOC") ? getenv("SPANALLOC") : "-"); \
        say(2, __VA_ARGS__);                                                           \
        say(2, "\n");                                                                  \
        _exit(1);                                                                      \
    } while (0)

typedef struct {
    void *p;
    size_t n;
} blk;
static blk blocks[MAXB];
static int nblocks;
static int nulls;      /* failed calls seen */
static int must_serve; /* a call failed already: everything must work now */

/* Huge blocks get their pattern only on the first and last 64 KiB. */
static void fill(blk b)
{
    if (b.n <= 256 * KiB) {
        sa_fill(b.p, b.n);
        return;
    }
    uint64_t seed = sa_pattern_seed(b.p, b.n);
    sa_fill_seed(b.p, 0, 64 * KiB, seed);
    sa_fill_seed(b.p, b.n - 64 * KiB, b.n, seed);
}
static void check(blk b, const char *when)
{
    uint64_t seed = sa_pattern_seed(b.p, b.n);
    size_t bad;
    if (b.n <= 256 * KiB) {
        bad = sa_check_seed(b.p, b.n, seed);
    } else {
        bad = sa_check_seed(b.p, 64 * KiB, seed);
        if (bad == (size_t)-1) {
            /* the tail pattern is indexed from the block start */
            for (size_t i = b.n - 64 * KiB; i < b.n; i++)
                if (((unsigned char *)b.p)[i] != sa_pattern_byte(seed, i)) {
                    bad = i;
                    break;
                }
        }
    }
    if (bad != (size_t)-1)
        CFAIL("block %p (%zu bytes) byte %zu changed (%s)", b.p, b.n, bad, when);
    if (sa_malloc_usable_size(b.p) < b.n)
        CFAIL("block %p usable size %zu < %zu", b.p, sa_malloc_usable_size(b.p), b.n);
}

/* The result of one allocating call for n bytes. */
static void got(const char *call, void *p, size_t n, int err, size_t align)
{
    if (!p) {
        if (must_serve)
            CFAIL("%s(%zu) failed again after an earlier failure (errno %d): allocation does not recover",
                  call, n, err);
        if (err != ENOMEM)
            CFAIL("%s(%zu) returned NULL with errno %d, want ENOMEM", call, n, err);
        nulls++;
        return;
    }
    if (!sa_is_aligned(p, align < 16 ? 16 : align))
        CFAIL("%s(%zu) = %p not aligned to %zu", call, n, p, align);
    if (nblocks == MAXB)
        CFAIL("too many blocks");
    blk b = { p, n };
    fill(b);
    blocks[nblocks++] = b;
}

static void one_round(int r)
{
    void *p;
    int err;
#define CALL(name, expr, n, align)                                                     \
    do {                                                                               \
        errno = 0;                                                                     \
        p = (expr);                                                                    \
        err = errno;                                                                   \
        got(name, p, n, err, align);                                                   \
    } while (0)
    for (int i = 0; i < 40; i++)
        CALL("sa_malloc", sa_malloc(16 + 48 * (size_t)i), 16 + 48 * (size_t)i, 16);
    CALL("sa_malloc", sa_malloc(1 * MiB + (size_t)r), 1 * MiB + (size_t)r, 16);
    errno = 0;
    p = sa_calloc(1, 2 * MiB);
    err = errno;
    if (p && sa_first_nonzero(p, 2 * MiB) != (size_t)-1)
        CFAIL("calloc block %p not zero", p);
    got("sa_calloc", p, 2 * MiB, err, 16);
    CALL("sa_posix_memalign", ({
             void *m = (void *)(uintptr_t)0x1234;
             int rc = sa_posix_memalign(&m, 1 * MiB, 1 * MiB);
             if (rc != 0 && (rc != ENOMEM || m != (void *)(uintptr_t)0x1234))
                 CFAIL("posix_memalign failed with %d, *memptr %p (want ENOMEM, untouched)", rc, m);
             if (rc)
                 errno = ENOMEM;
             rc ? NULL : m;
         }),
         1 * MiB, 1 * MiB);
    CALL("sa_aligned_alloc", sa_aligned_alloc(2 * MiB, 3 * MiB), 3 * MiB, 2 * MiB);
    CALL("sa_memalign", sa_memalign(64 * KiB, 600 * KiB), 600 * KiB, 64 * KiB);
    CALL("sa_valloc", sa_valloc(5 * MiB), 5 * MiB, 4096);
    CALL("sa_pvalloc", sa_pvalloc(5 * MiB - 100), 5 * MiB - 100, 4096);
    CALL("sa_malloc", sa_malloc(96 * MiB), 96 * MiB, 16); /* more than an arena */

    /* realloc / reallocarray of existing blocks to sizes that need new memory */
    for (int k = 0; k < 2 && nblocks > 0; k++) {
        int i = (r * 7 + k * 13) % nblocks;
        size_t m = (k ? 7 : 3) * MiB + (size_t)r * 4096;
        check(blocks[i], "before realloc");
        errno = 0;
        void *q = k ? sa_reallocarray(blocks[i].p, m / 4096, 4096) : sa_realloc(blocks[i].p, m);
        err = errno;
        if (k)
            m = m / 4096 * 4096;
        if (!q) {
            if (must_serve)
                CFAIL("realloc failed after an earlier failure: allocation does not recover");
            if (err != ENOMEM)
                CFAIL("realloc returned NULL with errno %d, want ENOMEM", err);
            nulls++;
            check(blocks[i], "after a failed realloc: the old block must be intact");
            continue;
        }
        size_t keep = blocks[i].n < m ? blocks[i].n : m;
        if (keep > 64 * KiB)
            keep = 64 * KiB;
        if (sa_check_seed(q, keep, sa_pattern_seed(blocks[i].p, blocks[i].n)) != (size_t)-1)
            CFAIL("realloc lost the contents");
        blocks[i].p = q;
        blocks[i].n = m;
        fill(blocks[i]);
    }
    /* free every other block (pages go back to the heap), then madvise */
    int w = 0;
    for (int i = 0; i < nblocks; i++) {
        check(blocks[i], "before free");
        if ((i + r) % 2)
            sa_free(blocks[i].p);
        else
            blocks[w++] = blocks[i];
    }
    nblocks = w;
    (void)sa_scavenge(0);
    for (int i = 0; i < nblocks; i++)
        check(blocks[i], "after a scavenge");
#undef CALL
}

static void *other_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        size_t n = (i % 10 == 9) ? 200 * KiB : 16 + (size_t)(i % 500) * 8;
        void *p = (i % 7 == 3) ? sa_aligned_alloc(4096, n) : sa_malloc(n);
        if (!p)
            return (void *)1; /* counted below */
        memset(p, 0x5a, n);
        sa_free(p);
    }
    return NULL;
}

static int child(void)
{
    const char *dbg = sa_build_option("debug");
    if (!dbg || strcmp(dbg, "on") != 0)
        CFAIL("not a debug build (sa_build_option(\"debug\") = %s)", dbg ? dbg : "NULL");
    for (int r = 0; r < 6; r++)
        one_round(r);
    int nulls_during = nulls;
    for (int i = 0; i < nblocks; i++)
        check(blocks[i], "after the workload");

    /* no lock held: another thread allocates and frees, with a deadline */
    pthread_t t;
    if (pthread_create(&t, NULL, other_thread, NULL) != 0)
        CFAIL("pthread_create");
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    void *res = NULL;
    int jr = pthread_timedjoin_np(t, &res, &dl);
    if (jr == ETIMEDOUT)
        CFAIL("another thread could not allocate within 10 s after the failure: a lock stays held");
    if (jr != 0)
        CFAIL("pthread_timedjoin_np: %d", jr);
    if (res != NULL && nulls_during > 0)
        CFAIL("another thread's allocation failed after the failure");

    /* allocation works again: a round in which nothing may fail */
    if (nulls_during > 0)
        must_serve = 1;
    one_round(99);
    for (int i = 0; i < nblocks; i++)
        check(blocks[i], "at the end");
    int hc = sa_heap_check();
    if (hc != 0)
        CFAIL("sa_heap_check() = %d", hc);
    for (int i = 0; i < nblocks; i++)
        sa_free(blocks[i].p);
    say(1, "nulls=%d\n", nulls);
    return 0;
}

/* Runs one child with SPANALLOC=fail_os_after=n (n < 0: no injection);
 * returns its failed-call count, or -1 when it failed. */
static int run_child(const char *self, int n)
{
    int out[2];
    if (pipe(out) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        char env[64];
        if (n >= 0) {
            snprintf(env, sizeof env, "fail_os_after=%d", n);
            setenv("SPANALLOC", env, 1);
        } else {
            unsetenv("SPANALLOC");
        }
        alarm(60);
        execl(self, self, "--child", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char buf[128] = { 0 };
    size_t got_n = 0;
    ssize_t r;
    while (got_n < sizeof buf - 1 && (r = read(out[0], buf + got_n, sizeof buf - 1 - got_n)) > 0)
        got_n += (size_t)r;
    close(out[0]);
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if (WIFSIGNALED(st))
            fprintf(stderr, "fault_inject: N=%d: child killed by signal %d%s\n", n, WTERMSIG(st),
                    WTERMSIG(st) == SIGALRM ? " (60 s timeout: deadlock?)" : "");
        else
            fprintf(stderr, "fault_inject: N=%d: child exited %d\n", n, WEXITSTATUS(st));
        return -1;
    }
    int k = -1;
    if (sscanf(buf, "nulls=%d", &k) != 1) {
        fprintf(stderr, "fault_inject: N=%d: no result line from the child\n", n);
        return -1;
    }
    return k;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--child"))
        return child();
    int nmax = argc > 1 ? atoi(argv[1]) : 64;
    char self[4096];
    ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
    if (l <= 0)
        return 1;
    self[l] = 0;

    int base = run_child(self, -1);
    if (base != 0) {
        fprintf(stderr, "fault_inject: FAIL: without injection the workload %s\n",
                base < 0 ? "failed" : "saw failed calls");
        return 1;
    }
    int bad = 0, with_nulls = 0;
    for (int n = 1; n <= nmax; n++) {
        int k = run_child(self, n);
        if (k < 0)
            bad++;
        else if (k > 0)
            with_nulls++;
    }
    if (with_nulls == 0) {
        fprintf(stderr, "fault_inject: FAIL: no N in 1..%d made an entry point fail: "
                        "fail_os_after has no effect?\n", nmax);
        return 1;
    }
    if (bad) {
        fprintf(stderr, "fault_inject: FAIL: %d of %d injection points failed\n", bad, nmax);
        return 1;
    }
    printf("fault_inject: OK: %d injection points, %d made a call fail, all recovered\n", nmax, with_nulls);
    return 0;
}
