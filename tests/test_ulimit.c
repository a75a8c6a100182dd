/*
 * test_ulimit.c — out of address space (ulimit -v) gives NULL + ENOMEM.
 *
 * Each case runs in a forked child that lowers RLIMIT_AS to its current
 * size plus a few hundred MiB, then allocates until the allocator says no.
 * The answer must be NULL with errno == ENOMEM (ENOMEM as the return value
 * for posix_memalign), never a crash; after freeing everything the same
 * allocations must succeed again (the memory is reused, not lost). The
 * blocks are chained through their first word, so the child needs no other
 * memory to remember them. Children report through their exit status and
 * write(2) only (stdio would allocate).
 *
 * Skipped under valgrind: memcheck itself needs address space beyond the limit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanalloc.h"
#include "test_util.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define HEADROOM (384 * MiB)

typedef enum { K_MALLOC, K_CALLOC, K_ALIGNED, K_POSIX_MEMALIGN } kind;

static void say(const char *msg)
{
    ssize_t r = write(2, msg, strlen(msg));
    (void)r;
}

/* One allocation of the given kind; NULL with *err set on failure. */
static void *alloc_one(kind k, size_t n, int *err)
{
    void *p = NULL;
    errno = 0;
    switch (k) {
    case K_MALLOC:
        p = sa_malloc(n);
        break;
    case K_CALLOC:
        p = sa_calloc(1, n);
        break;
    case K_ALIGNED:
        p = sa_aligned_alloc(64 * KiB, n);
        break;
    case K_POSIX_MEMALIGN: {
        void *m = (void *)(uintptr_t)0xabc0;
        int rc = sa_posix_memalign(&m, 2 * MiB, n);
        if (rc) {
            if (m != (void *)(uintptr_t)0xabc0)
                _exit(20); /* *memptr touched on failure */
            *err = rc;
            return NULL;
        }
        return m;
    }
    }
    *err = errno;
    return p;
}

/* Allocates until failure; returns the count, the chain in *head. */
static size_t fill_until_null(kind k, size_t n, void **head)
{
    size_t count = 0;
    *head = NULL;
    for (;;) {
        int err = 0;
        void *p = alloc_one(k, n, &err);
        if (!p) {
            if (err != ENOMEM) {
                say("allocation failed without ENOMEM\n");
                _exit(21);
            }
            return count;
        }
        if ((uintptr_t)p & 15)
            _exit(22);
        *(void **)p = *head;
        /* touch the last byte too: the block is really usable */
        ((unsigned char *)p)[n - 1] = 0x77;
        *head = p;
        count++;
        if (count > 100000000)
            _exit(23); /* the limit had no effect */
    }
}

static size_t free_chain(void *head, size_t n)
{
    size_t count = 0;
    while (head) {
        void *next = *(void **)head;
        if (((unsigned char *)head)[n - 1] != 0x77)
            _exit(24);
        sa_free(head);
        head = next;
        count++;
    }
    return count;
}

static void limit_address_space(void)
{
    size_t vm = sa_proc_status_kib("VmSize") * KiB;
    if (!vm)
        _exit(30);
    struct rlimit rl = { vm + HEADROOM, vm + HEADROOM };
    if (setrlimit(RLIMIT_AS, &rl))
        _exit(31);
}

/* Child: exhaust, free, exhaust again; the second pass must reach at least
 * half of the first (memory came back). */
static void child_exhaust(kind k, size_t n)
{
    alarm(60);
    limit_address_space();
    void *head;
    size_t first = fill_until_null(k, n, &head);
    if (first == 0)
        _exit(40); /* not even one block under 384 MiB of headroom */
    if (free_chain(head, n) != first)
        _exit(41);
    /* a single small allocation works right after */
    void *p = sa_malloc(100);
    if (!p)
        _exit(42);
    sa_free(p);
    size_t second = fill_until_null(k, n, &head);
    if (second < first / 2) {
        say("second pass got far fewer blocks: freed memory not reused\n");
        _exit(43);
    }
    free_chain(head, n);
    _exit(0);
}

static void child_realloc_growth(void)
{
    alarm(60);
    limit_address_space();
    size_t n = 1000;
    unsigned char *p = sa_malloc(n);
    if (!p)
        _exit(50);
    memset(p, 0x3c, n);
    for (;;) {
        size_t nn = n * 2;
        errno = 0;
        unsigned char *q = sa_realloc(p, nn);
        if (!q) {
            if (errno != ENOMEM)
                _exit(51);
            break;
        }
        memset(q + n, 0x3c, nn - n);
        p = q;
        n = nn;
        if (n > ((size_t)1 << 40))
            _exit(52);
    }
    /* the failed realloc left p intact */
    for (size_t i = 0; i < n; i += 4096)
        if (p[i] != 0x3c)
            _exit(53);
    if (p[n - 1] != 0x3c)
        _exit(54);
    sa_free(p);
    void *again = sa_malloc(n / 2);
    if (!again)
        _exit(55);
    sa_free(again);
    _exit(0);
}

static void child_one_huge(void)
{
    alarm(60);
    limit_address_space();
    errno = 0;
    if (sa_malloc(2 * HEADROOM) != NULL || errno != ENOMEM)
        _exit(60);
    errno = 0;
    if (sa_calloc(1, 2 * HEADROOM) != NULL || errno != ENOMEM)
        _exit(61);
    errno = 0;
    if (sa_aligned_alloc((size_t)1 << 28, HEADROOM) != NULL || errno != ENOMEM)
        _exit(62);
    void *small = sa_malloc(64), *large = sa_malloc(MiB);
    if (!small || !large)
        _exit(63);
    sa_free(small);
    sa_free(large);
    _exit(0);
}

static void run_child(void (*body)(kind, size_t), void (*body0)(void), kind k, size_t n, const char *what)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct rlimit nocore = { 0, 0 };
        setrlimit(RLIMIT_CORE, &nocore);
        if (body)
            body(k, n);
        else
            body0();
        _exit(99);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "%s: child crashed with signal %d under RLIMIT_AS", what,
              WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    cr_assert_eq(WEXITSTATUS(st), 0, "%s: child failed with code %d (see test_ulimit.c)", what,
                 WEXITSTATUS(st));
}

static void skip_under_valgrind(void)
{
    if (sa_test_under_valgrind())
        cr_skip_test("RLIMIT_AS cannot be tested under valgrind");
}

Test(ulimit, small_blocks_until_enomem, .timeout = 120)
{
    skip_under_valgrind();
    run_child(child_exhaust, NULL, K_MALLOC, 1000, "sa_malloc(1000)");
    run_child(child_exhaust, NULL, K_MALLOC, 24, "sa_malloc(24)");
}

Test(ulimit, medium_and_calloc_until_enomem, .timeout = 120)
{
    skip_under_valgrind();
    run_child(child_exhaust, NULL, K_MALLOC, 20 * KiB, "sa_malloc(20 KiB)");
    run_child(child_exhaust, NULL, K_CALLOC, 3000, "sa_calloc(1, 3000)");
}

Test(ulimit, large_blocks_until_enomem, .timeout = 120)
{
    skip_under_valgrind();
    run_child(child_exhaust, NULL, K_MALLOC, MiB, "sa_malloc(1 MiB)");
    run_child(child_exhaust, NULL, K_MALLOC, 40 * KiB, "sa_malloc(40 KiB)");
}

Test(ulimit, aligned_blocks_until_enomem, .timeout = 120)
{
    skip_under_valgrind();
    run_child(child_exhaust, NULL, K_ALIGNED, 10000, "sa_aligned_alloc(64 KiB, 10000)");
    run_child(child_exhaust, NULL, K_POSIX_MEMALIGN, MiB, "sa_posix_memalign(2 MiB, 1 MiB)");
}

Test(ulimit, realloc_growth_until_enomem, .timeout = 120)
{
    skip_under_valgrind();
    run_child(NULL, child_realloc_growth, 0, 0, "sa_realloc doubling");
}

Test(ulimit, one_request_beyond_the_limit, .timeout = 120)
{
    skip_under_valgrind();
    run_child(NULL, child_one_huge, 0, 0, "single huge requests");
}
