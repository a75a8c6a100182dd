/*
 * test_badinput.c — invalid frees are caught, reported and abort.
 *
 * Contract: freeing (free, realloc, free_sized, ... and their sa_ forms) a
 * pointer spanalloc did not return, an interior pointer, or an already freed
 * block prints exactly one line on stderr
 *     spanalloc: <call>(): invalid pointer 0x<hex> (<reason>)
 * and calls abort(). Each case runs in a forked child whose stderr is a
 * pipe: the child does the setup, tells the parent (through a second pipe)
 * which pointer it is about to pass, makes the bad call, and must die by
 * SIGABRT with that one line as its whole stderr output.
 *
 * The cases are one table (CASES below, one Criterion test each): where the
 * block is when it is freed again (the freeing thread's cache, the central
 * lists, freed first by another thread, with other frees in between, a
 * thread that exited, large blocks), interior pointers of small, large,
 * aligned and huge blocks, pointers never returned (stack, data segment,
 * bss, our own mmap, an unmapped address, a low address), each through
 * free, realloc and the sized frees. Rows marked SILENT are valid calls that
 * must neither abort nor print: they keep the harness honest. Rows under
 * SA_TEST_DEBUG (SPANALLOC_DEBUG trees) check the debug build's
 * write-after-free and overflow reports.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanalloc.h"
#include "test_util.h"

#define KiB ((size_t)1024)

/* Setup returns the pointer the bad call will receive; stack is a buffer
 * living in the child's frame. */
typedef void *(*setup_fn)(char *stack);
typedef void (*bad_fn)(void *p);

#define R_DOUBLE "double free"
#define R_FOREIGN "not allocated by spanalloc"
#define R_INTERIOR "interior pointer"

/* Runs one case; reasons is a NULL-terminated list, one of which the
 * reason text must contain; reasons NULL: the call is valid and the child
 * must exit 0 with nothing on stderr. */
static void expect_abort(const char *call, setup_fn setup, bad_fn bad, const char *const *reasons)
{
    int errp[2], side[2];
    cr_assert_eq(pipe(errp), 0);
    cr_assert_eq(pipe(side), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        struct rlimit nocore = { 0, 0 };
        setrlimit(RLIMIT_CORE, &nocore); /* no core files from the expected aborts */
        signal(SIGABRT, SIG_DFL);
        alarm(30);
        dup2(errp[1], 2);
        close(errp[0]);
        close(errp[1]);
        close(side[0]);
        char stack[256] __attribute__((aligned(16)));
        memset(stack, 0, sizeof stack);
        void *p = setup(stack);
        uint64_t v = (uint64_t)(uintptr_t)p;
        if (write(side[1], &v, sizeof v) != sizeof v)
            _exit(3);
        close(side[1]);
        bad(p);
        _exit(0); /* survived the bad call: the parent reports it */
    }
    close(errp[1]);
    close(side[1]);
    uint64_t v = 0;
    ssize_t sr = read(side[0], &v, sizeof v);
    close(side[0]);
    char out[4096];
    size_t got = 0;
    ssize_t r;
    while ((r = read(errp[0], out + got, sizeof out - 1 - got)) > 0)
        got += (size_t)r;
    close(errp[0]);
    out[got] = 0;
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert_eq(sr, (ssize_t)sizeof v, "child died during setup (status %#x, stderr: %s)", st, out);
    if (!reasons) {
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "valid %s(%#llx): child status %#x, stderr \"%s\"",
                  call, (unsigned long long)v, st, out);
        cr_assert_eq(got, 0, "valid %s(%#llx) printed on stderr: \"%s\"", call, (unsigned long long)v, out);
        return;
    }

    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
              "%s(%#llx): child was not killed by SIGABRT (%s %d); stderr: \"%s\"", call,
              (unsigned long long)v, WIFSIGNALED(st) ? "signal" : "exit code",
              WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), out);

    /* exactly one line */
    char *nl = strchr(out, '\n');
    cr_assert(nl != NULL && nl[1] == 0, "%s: stderr is not exactly one line: \"%s\"", call, out);
    *nl = 0;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "spanalloc: %s(): invalid pointer 0x", call);
    cr_assert(strncmp(out, prefix, strlen(prefix)) == 0, "want \"%s...\", got \"%s\"", prefix, out);
    const char *hex = out + strlen(prefix);
    char *end;
    errno = 0;
    unsigned long long shown = strtoull(hex, &end, 16);
    cr_assert(end > hex && errno == 0 && isxdigit((unsigned char)hex[0]), "no hex address in \"%s\"", out);
    cr_assert_eq(shown, (unsigned long long)v, "message names %#llx, the bad pointer was %#llx: \"%s\"",
                 shown, (unsigned long long)v, out);
    size_t rest = strlen(end);
    cr_assert(rest > 3 && strncmp(end, " (", 2) == 0 && end[rest - 1] == ')',
              "no \" (reason)\" after the address: \"%s\"", out);
    int matched = 0;
    for (int i = 0; reasons[i]; i++)
        if (strstr(end, reasons[i]))
            matched = 1;
    cr_assert(matched, "reason in \"%s\" does not name %s%s%s", out, reasons[0],
              reasons[1] ? " or " : "", reasons[1] ? reasons[1] : "");
}

static const char *const DOUBLE[] = { R_DOUBLE, NULL };
/* A block whose whole span went back to the heap may be reported either way. */
static const char *const DOUBLE_OR_GONE[] = { R_DOUBLE, R_FOREIGN, NULL };
static const char *const FOREIGN[] = { R_FOREIGN, NULL };
static const char *const INTERIOR[] = { R_INTERIOR, NULL };
/* A sized free whose size the block cannot have: release builds check it
 * against the block's usable size, debug builds against the request. */
#ifdef SA_TEST_DEBUG
static const char *const WRONG_SIZE[] = { "is not the block's", NULL };
#else
static const char *const WRONG_SIZE[] = { "larger than the block's", NULL };
#endif
static const char *const WRONG_ALIGN[] = { "does not have the stated alignment", NULL };
#ifdef SA_TEST_DEBUG
static const char *const WRITE_AFTER_FREE[] = { "write after free", NULL };
static const char *const OVERFLOW[] = { "heap overflow", NULL };
#endif
#define SILENT NULL

/* ---- the bad calls -------------------------------------------------------------- */

static void bad_sa_free(void *p) { sa_free(p); }
static void bad_sa_realloc(void *p) { (void)!sa_realloc(p, 100); }
static void bad_sa_reallocarray(void *p) { (void)!sa_reallocarray(p, 10, 10); }
static void bad_sa_free_sized(void *p) { sa_free_sized(p, 64); }
static void bad_sa_free_aligned_sized(void *p) { sa_free_aligned_sized(p, 16, 64); }
static void bad_sa_free_sized_too_big(void *p) { sa_free_sized(p, 100000); }
static void bad_sa_free_sized_too_big_aligned(void *p) { sa_free_aligned_sized(p, 16, 100000); }
static void bad_sa_free_aligned_sized_4096(void *p) { sa_free_aligned_sized(p, 4096, 64); }
static void *thread_free(void *p)
{
    sa_free(p);
    return NULL;
}
/* the bad free happens in a thread that did not allocate the block */
static void bad_sa_free_in_thread(void *p)
{
    pthread_t t;
    if (pthread_create(&t, NULL, thread_free, p) || pthread_join(t, NULL))
        _exit(4);
}
#ifdef SA_TEST_OVERRIDE
static void bad_free(void *p) { free(p); }
static void bad_realloc(void *p) { (void)!realloc(p, 100); }
void free_sized(void *p, size_t size);
static void bad_free_sized(void *p) { free_sized(p, 64); }
#endif
/* valid calls for the SILENT rows */
static void ok_sa_free(void *p) { sa_free(p); }
static void ok_sa_realloc_then_free(void *p) { sa_free_sized(sa_realloc(p, 1000), 1000); }
static void ok_sa_free_aligned_sized(void *p) { sa_free_aligned_sized(p, 4096, 100); }

/* ---- setups ------------------------------------------------------------------------ */

/* Freed at once: the block's span is the freeing thread's cached span. */
static void *small_freed_immediately(char *s)
{
    void *p = sa_malloc(64);
    sa_free(p);
    return p;
}

/* Other frees between the two frees of p; a neighbour stays live so the span
 * is still in use. */
static void *small_freed_with_frees_between(char *s)
{
    void *keep = sa_malloc(64);
    void *p = sa_malloc(64);
    void *o[100];
    for (int i = 0; i < 100; i++)
        o[i] = sa_malloc(64);
    sa_free(p);
    for (int i = 0; i < 100; i++)
        sa_free(o[i]);
    (void)keep;
    return p;
}

/* Everything of that size freed in between: the span may be empty. */
static void *small_freed_then_span_emptied(char *s)
{
    void *p = sa_malloc(64);
    void *o[300];
    for (int i = 0; i < 300; i++)
        o[i] = sa_malloc(64);
    sa_free(p);
    for (int i = 0; i < 300; i++)
        sa_free(o[i]);
    return p;
}

/* The block's span was filled and handed back to its mcentral (the cache moved
 * on to other spans); other blocks of the span stay live. Freed once there. */
static void *small_freed_in_central(char *s)
{
    void *p = sa_malloc(96);
    void *o[4000];
    for (int i = 0; i < 4000; i++)
        o[i] = sa_malloc(96); /* dozens of spans: p's span is long retired */
    sa_free(p);
    (void)o;
    return p;
}

/* Same, and then the mcentral had every reason to drain its pending frees:
 * the thread freed more blocks and allocated a lot more of that size. */
static void *small_freed_in_central_drained(char *s)
{
    void *p = sa_malloc(96);
    void *o[4000];
    for (int i = 0; i < 4000; i++)
        o[i] = sa_malloc(96);
    sa_free(p);
    for (int i = 0; i < 20; i++)
        sa_free(o[i]);
    for (int i = 20; i < 4000; i += 2) { /* spans become partial: refills drain */
        sa_free(o[i]);
        o[i] = NULL;
    }
    /* refills drain the pending frees; should p's slot come back, it is
     * freed again at once (legitimately), so p is free when the case runs */
    for (int i = 0; i < 3000; i++) {
        void *q = sa_malloc(96);
        if (q == p)
            sa_free(q);
    }
    return p;
}

/* First freed by another thread (the block's span sits in this thread's cache). */
static void *small_freed_by_other_thread(char *s)
{
    void *p = sa_malloc(48);
    void *live = sa_malloc(48); /* keeps the span in use */
    pthread_t t;
    if (pthread_create(&t, NULL, thread_free, p) || pthread_join(t, NULL))
        _exit(4);
    (void)live;
    return p;
}

/* Allocated by a thread that has exited (its cache went back to the mcentral). */
static void *alloc_in_thread(void *arg)
{
    void **out = arg;
    out[0] = sa_malloc(200);
    out[1] = sa_malloc(200);
    return NULL;
}
static void *small_of_exited_thread_freed(char *s)
{
    void *b[2];
    pthread_t t;
    if (pthread_create(&t, NULL, alloc_in_thread, b) || pthread_join(t, NULL))
        _exit(4);
    sa_free(b[0]); /* b[1] keeps the span in use */
    return b[0];
}

static void *calloc_freed(char *s)
{
    void *keep = sa_calloc(10, 30);
    void *p = sa_calloc(10, 30);
    sa_free(p);
    (void)keep;
    return p;
}

static void *aligned_freed(char *s)
{
    void *p = sa_aligned_alloc(256, 300);
    sa_free(p);
    return p;
}

static void *large_freed(char *s)
{
    void *p = sa_malloc(100 * KiB);
    sa_free(p);
    return p;
}

static void *large_freed_by_other_thread(char *s)
{
    void *p = sa_malloc(1024 * KiB);
    pthread_t t;
    if (pthread_create(&t, NULL, thread_free, p) || pthread_join(t, NULL))
        _exit(4);
    return p;
}

/* Other large frees (and a live neighbour) between the two frees. */
static void *large_freed_with_frees_between(char *s)
{
    void *a = sa_malloc(300 * KiB), *p = sa_malloc(300 * KiB), *b = sa_malloc(300 * KiB);
    sa_free(p);
    sa_free(a);
    sa_free(b);
    void *keep = sa_malloc(40 * KiB);
    (void)keep;
    return p;
}

static void *small_interior_8(char *s) { return (char *)sa_malloc(64) + 8; }
static void *small_interior_1(char *s) { return (char *)sa_malloc(64) + 1; }
static void *small_interior_16_of_32(char *s) { return (char *)sa_malloc(32) + 16; }
/* an interior pointer into a block whose span sits in the mcentral */
static void *small_interior_in_central(char *s)
{
    char *p = sa_malloc(96);
    for (int i = 0; i < 4000; i++)
        (void)!sa_malloc(96);
    return p + 48;
}
static void *large_interior_page(char *s) { return (char *)sa_malloc(100 * KiB) + 8192; }
static void *large_interior_16(char *s) { return (char *)sa_malloc(100 * KiB) + 16; }
static void *large_interior_last_byte(char *s) { return (char *)sa_malloc(100 * KiB) + 100 * KiB - 1; }
static void *huge_interior_next_arena(char *s) { return (char *)sa_malloc(80 << 20) + (70 << 20); }
static void *aligned_interior(char *s) { return (char *)sa_aligned_alloc(4096, 100) + 64; }

static void *stack_address(char *s) { return s + 16; }
static char g_global[256] __attribute__((aligned(64))) = { 1 };
static char g_bss[256] __attribute__((aligned(64)));
static void *global_address(char *s) { return g_global + 64; }
static void *bss_address(char *s) { return g_bss; }
static void *own_mmap(char *s)
{
    void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        _exit(5);
    return (char *)m + 65536;
}
static void *unmapped_address(char *s)
{
    char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || munmap(m, 1 << 20) != 0)
        _exit(5);
    return m + 4096;
}
static void *wild_low(char *s) { return (void *)(uintptr_t)0x10; }
static void *wild_high(char *s) { return (void *)(uintptr_t)0x7ffffffff000ull; }

static void *valid_small(char *s) { return sa_malloc(64); }
static void *valid_large(char *s) { return sa_malloc(100 * KiB); }
static void *valid_aligned(char *s) { return sa_aligned_alloc(4096, 100); }
/* A 64-byte block that is not 4096-aligned. */
static void *small_not_page_aligned(char *s)
{
    void *p;
    do
        p = sa_malloc(64);
    while (((uintptr_t)p & 4095) == 0);
    return p;
}
static void *valid_null(char *s) { return NULL; }
static void *valid_of_exited_thread(char *s)
{
    void *b[2];
    pthread_t t;
    if (pthread_create(&t, NULL, alloc_in_thread, b) || pthread_join(t, NULL))
        _exit(4);
    sa_free(b[1]);
    return b[0];
}

#ifdef SA_TEST_DEBUG
/* debug build: a write into a freed block is reported when the slot is handed
 * out again; a write past the requested size when the block is freed */
static void *written_after_free(char *s)
{
    unsigned char *p = sa_malloc(64);
    sa_free(p);
    p[0] = 'x';
    return p;
}
static void bad_malloc_until_reused(void *p)
{
    for (int i = 0; i < 200000; i++)
        if (sa_malloc(64) == p)
            return; /* handed out again without a report */
}
static void *overflowed_by_one(char *s)
{
    unsigned char *p = sa_malloc(20);
    p[20] = 'x';
    return p;
}
#endif

/* ---- the table ------------------------------------------------------------------- */

struct bad_case {
    const char *name;
    const char *call; /* the call named in the report */
    setup_fn setup;
    bad_fn bad;
    const char *const *reasons; /* SILENT: valid, must not report */
};

static struct bad_case CASES[] = {
    /* double frees, wherever the block is */
    { "double free, small, in the freeing thread's cache", "sa_free", small_freed_immediately, bad_sa_free, DOUBLE },
    { "double free, small, other frees in between", "sa_free", small_freed_with_frees_between, bad_sa_free, DOUBLE },
    { "double free, small, span emptied in between", "sa_free", small_freed_then_span_emptied, bad_sa_free, DOUBLE_OR_GONE },
    { "double free, small, span in the mcentral", "sa_free", small_freed_in_central, bad_sa_free, DOUBLE },
    { "double free, small, span in the mcentral after drains", "sa_free", small_freed_in_central_drained, bad_sa_free, DOUBLE },
    { "double free, small, first freed by another thread", "sa_free", small_freed_by_other_thread, bad_sa_free, DOUBLE },
    { "double free, small, second free in another thread", "sa_free", small_freed_immediately, bad_sa_free_in_thread, DOUBLE },
    { "double free, small, both by other threads", "sa_free", small_freed_by_other_thread, bad_sa_free_in_thread, DOUBLE },
    { "double free, small, allocated by a thread that exited", "sa_free", small_of_exited_thread_freed, bad_sa_free, DOUBLE },
    { "double free, calloc block", "sa_free", calloc_freed, bad_sa_free, DOUBLE },
    { "double free, aligned block", "sa_free", aligned_freed, bad_sa_free, DOUBLE },
    { "double free, large", "sa_free", large_freed, bad_sa_free, DOUBLE_OR_GONE },
    { "double free, large, first freed by another thread", "sa_free", large_freed_by_other_thread, bad_sa_free, DOUBLE_OR_GONE },
    { "double free, large, second free in another thread", "sa_free", large_freed, bad_sa_free_in_thread, DOUBLE_OR_GONE },
    { "double free, large, other frees in between", "sa_free", large_freed_with_frees_between, bad_sa_free, DOUBLE_OR_GONE },
    /* interior pointers */
    { "interior, small +8", "sa_free", small_interior_8, bad_sa_free, INTERIOR },
    { "interior, small +1", "sa_free", small_interior_1, bad_sa_free, INTERIOR },
    { "interior, small 16 of 32", "sa_free", small_interior_16_of_32, bad_sa_free, INTERIOR },
    { "interior, small, span in the mcentral", "sa_free", small_interior_in_central, bad_sa_free, INTERIOR },
    { "interior, large +page", "sa_free", large_interior_page, bad_sa_free, INTERIOR },
    { "interior, large +16", "sa_free", large_interior_16, bad_sa_free, INTERIOR },
    { "interior, large last byte", "sa_free", large_interior_last_byte, bad_sa_free, INTERIOR },
    { "interior, huge block, next arena", "sa_free", huge_interior_next_arena, bad_sa_free, INTERIOR },
    { "interior, aligned block", "sa_free", aligned_interior, bad_sa_free, INTERIOR },
    { "interior, freed from another thread", "sa_free", large_interior_page, bad_sa_free_in_thread, INTERIOR },
    /* pointers never returned */
    { "never returned: stack", "sa_free", stack_address, bad_sa_free, FOREIGN },
    { "never returned: data segment", "sa_free", global_address, bad_sa_free, FOREIGN },
    { "never returned: bss", "sa_free", bss_address, bad_sa_free, FOREIGN },
    { "never returned: our own mmap", "sa_free", own_mmap, bad_sa_free, FOREIGN },
    { "never returned: unmapped address", "sa_free", unmapped_address, bad_sa_free, FOREIGN },
    { "never returned: low address", "sa_free", wild_low, bad_sa_free, FOREIGN },
    { "never returned: high address", "sa_free", wild_high, bad_sa_free, FOREIGN },
    /* realloc of such pointers */
    { "realloc: double free", "sa_realloc", small_freed_immediately, bad_sa_realloc, DOUBLE },
    { "realloc: double free, span in the mcentral", "sa_realloc", small_freed_in_central, bad_sa_realloc, DOUBLE },
    { "realloc: double free, large", "sa_realloc", large_freed_with_frees_between, bad_sa_realloc, DOUBLE_OR_GONE },
    { "realloc: interior small", "sa_realloc", small_interior_8, bad_sa_realloc, INTERIOR },
    { "realloc: interior large", "sa_realloc", large_interior_page, bad_sa_realloc, INTERIOR },
    { "realloc: stack", "sa_realloc", stack_address, bad_sa_realloc, FOREIGN },
    { "realloc: own mmap", "sa_realloc", own_mmap, bad_sa_realloc, FOREIGN },
    { "realloc: unmapped", "sa_realloc", unmapped_address, bad_sa_realloc, FOREIGN },
    { "realloc: low address", "sa_realloc", wild_low, bad_sa_realloc, FOREIGN },
    { "reallocarray: double free", "sa_reallocarray", small_freed_by_other_thread, bad_sa_reallocarray, DOUBLE },
    { "reallocarray: data segment", "sa_reallocarray", global_address, bad_sa_reallocarray, FOREIGN },
    /* the sized frees of such pointers */
    { "free_sized: double free", "sa_free_sized", small_freed_immediately, bad_sa_free_sized, DOUBLE },
    { "free_sized: double free by other thread", "sa_free_sized", small_freed_by_other_thread, bad_sa_free_sized, DOUBLE },
    { "free_sized: interior small", "sa_free_sized", small_interior_8, bad_sa_free_sized, INTERIOR },
    { "free_sized: interior large", "sa_free_sized", large_interior_16, bad_sa_free_sized, INTERIOR },
    { "free_sized: data segment", "sa_free_sized", global_address, bad_sa_free_sized, FOREIGN },
    { "free_sized: size larger than the block", "sa_free_sized", valid_small, bad_sa_free_sized_too_big, WRONG_SIZE },
    { "free_aligned_sized: size larger than the block", "sa_free_aligned_sized", valid_small, bad_sa_free_sized_too_big_aligned, WRONG_SIZE },
    { "free_aligned_sized: block lacks the alignment", "sa_free_aligned_sized", small_not_page_aligned, bad_sa_free_aligned_sized_4096, WRONG_ALIGN },
    { "free_sized: stack", "sa_free_sized", stack_address, bad_sa_free_sized, FOREIGN },
    { "free_sized: unmapped", "sa_free_sized", unmapped_address, bad_sa_free_sized, FOREIGN },
    { "free_sized: low address", "sa_free_sized", wild_low, bad_sa_free_sized, FOREIGN },
    { "free_aligned_sized: double free", "sa_free_aligned_sized", small_freed_immediately, bad_sa_free_aligned_sized, DOUBLE },
    { "free_aligned_sized: own mmap", "sa_free_aligned_sized", own_mmap, bad_sa_free_aligned_sized, FOREIGN },
#ifdef SA_TEST_OVERRIDE
    /* the unprefixed names (the library is the process malloc) */
    { "free: double free", "free", small_freed_immediately, bad_free, DOUBLE },
    { "free: double free by other thread", "free", small_freed_by_other_thread, bad_free, DOUBLE },
    { "free: double free, large", "free", large_freed, bad_free, DOUBLE_OR_GONE },
    { "free: interior small 16 of 32", "free", small_interior_16_of_32, bad_free, INTERIOR },
    { "free: stack", "free", stack_address, bad_free, FOREIGN },
    { "free: own mmap", "free", own_mmap, bad_free, FOREIGN },
    { "realloc: data segment (unprefixed)", "realloc", global_address, bad_realloc, FOREIGN },
    { "realloc: double free (unprefixed)", "realloc", small_freed_immediately, bad_realloc, DOUBLE },
    { "free_sized: interior (unprefixed)", "free_sized", small_interior_8, bad_free_sized, INTERIOR },
#endif
#ifdef SA_TEST_DEBUG
    { "debug: write after free, reported on reuse", "malloc", written_after_free, bad_malloc_until_reused, WRITE_AFTER_FREE },
    { "debug: one byte past the request, reported at free", "sa_free", overflowed_by_one, bad_sa_free, OVERFLOW },
#endif
    /* valid calls: no report, no abort (the harness cannot pass by accident) */
    { "valid: small free", "sa_free", valid_small, ok_sa_free, SILENT },
    { "valid: large free", "sa_free", valid_large, ok_sa_free, SILENT },
    { "valid: free(NULL)", "sa_free", valid_null, ok_sa_free, SILENT },
    { "valid: realloc then free_sized", "sa_realloc", valid_small, ok_sa_realloc_then_free, SILENT },
    { "valid: free_aligned_sized", "sa_free_aligned_sized", valid_aligned, ok_sa_free_aligned_sized, SILENT },
    { "valid: block of an exited thread", "sa_free", valid_of_exited_thread, ok_sa_free, SILENT },
    { "valid: free from another thread", "sa_free", valid_small, bad_sa_free_in_thread, SILENT },
};

#define NCASES (sizeof CASES / sizeof CASES[0])

/* Criterion may run each parameter in a freshly executed worker (another
 * address-space layout): pass row numbers, not pointers into the table. */
ParameterizedTestParameters(badinput, misuse)
{
    static int rows[NCASES];
    for (size_t i = 0; i < NCASES; i++)
        rows[i] = (int)i;
    return cr_make_param_array(int, rows, NCASES);
}

ParameterizedTest(int *row, badinput, misuse)
{
    const struct bad_case *c = &CASES[*row];
    cr_log_info("row %d: %s", *row, c->name);
    expect_abort(c->call, c->setup, c->bad, c->reasons);
}

/* Every kind of misuse the contract names has rows: a table edit that drops
 * one fails here. */
Test(badinput, table_covers_every_kind)
{
    const char *kinds[] = { "double free, small, in the freeing", "span in the mcentral",
                            "first freed by another thread", "other frees in between",
                            "double free, large", "interior, small", "interior, large",
                            "never returned: stack", "never returned: data segment",
                            "never returned: our own mmap", "never returned: unmapped",
                            "realloc:", "free_sized:", "free_sized: size larger",
                            "free_aligned_sized: size larger", "free_aligned_sized: block lacks",
                            "valid:" };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int found = 0;
        for (size_t i = 0; i < NCASES; i++)
            if (strstr(CASES[i].name, kinds[k]))
                found = 1;
        cr_expect(found, "no row for \"%s\"", kinds[k]);
    }
}
