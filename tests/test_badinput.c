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
 */
#include <criterion/criterion.h>
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
 * reason text must contain. */
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

/* ---- the bad calls -------------------------------------------------------------- */

static void bad_sa_free(void *p) { sa_free(p); }
static void bad_free(void *p) { free(p); }
static void bad_sa_realloc(void *p) { (void)!sa_realloc(p, 100); }
static void bad_realloc(void *p) { (void)!realloc(p, 100); }
static void bad_sa_free_sized(void *p) { sa_free_sized(p, 64); }

/* ---- setups ------------------------------------------------------------------------ */

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

static void *thread_free(void *p)
{
    sa_free(p);
    return NULL;
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

static void *small_interior_8(char *s) { return (char *)sa_malloc(64) + 8; }
static void *small_interior_1(char *s) { return (char *)sa_malloc(64) + 1; }
static void *small_interior_16_of_32(char *s) { return (char *)sa_malloc(32) + 16; }
static void *large_interior_page(char *s) { return (char *)sa_malloc(100 * KiB) + 8192; }
static void *large_interior_16(char *s) { return (char *)sa_malloc(100 * KiB) + 16; }
static void *aligned_interior(char *s) { return (char *)sa_aligned_alloc(4096, 100) + 64; }

static void *stack_address(char *s) { return s + 16; }
static char g_global[256] __attribute__((aligned(64)));
static void *global_address(char *s) { return g_global + 64; }
static void *own_mmap(char *s)
{
    void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        _exit(5);
    return (char *)m + 65536;
}
static void *wild_low(char *s) { return (void *)(uintptr_t)0x10; }

/* ---- the table ------------------------------------------------------------------- */

Test(badinput, double_free_small_immediately)
{
    expect_abort("sa_free", small_freed_immediately, bad_sa_free, DOUBLE);
    expect_abort("free", small_freed_immediately, bad_free, DOUBLE);
}
Test(badinput, double_free_small_after_other_frees)
{
    expect_abort("sa_free", small_freed_with_frees_between, bad_sa_free, DOUBLE);
}
Test(badinput, double_free_small_span_emptied)
{
    expect_abort("sa_free", small_freed_then_span_emptied, bad_sa_free, DOUBLE_OR_GONE);
}
Test(badinput, double_free_small_first_freed_by_other_thread)
{
    expect_abort("sa_free", small_freed_by_other_thread, bad_sa_free, DOUBLE);
    expect_abort("free", small_freed_by_other_thread, bad_free, DOUBLE);
}
Test(badinput, double_free_large)
{
    expect_abort("sa_free", large_freed, bad_sa_free, DOUBLE_OR_GONE);
    expect_abort("free", large_freed, bad_free, DOUBLE_OR_GONE);
    expect_abort("sa_free", large_freed_by_other_thread, bad_sa_free, DOUBLE_OR_GONE);
}
Test(badinput, interior_small)
{
    expect_abort("sa_free", small_interior_8, bad_sa_free, INTERIOR);
    expect_abort("sa_free", small_interior_1, bad_sa_free, INTERIOR);
    expect_abort("free", small_interior_16_of_32, bad_free, INTERIOR);
}
Test(badinput, interior_large)
{
    expect_abort("sa_free", large_interior_page, bad_sa_free, INTERIOR);
    expect_abort("sa_free", large_interior_16, bad_sa_free, INTERIOR);
    expect_abort("sa_free", aligned_interior, bad_sa_free, INTERIOR);
}
Test(badinput, never_returned_pointers)
{
    expect_abort("sa_free", stack_address, bad_sa_free, FOREIGN);
    expect_abort("sa_free", global_address, bad_sa_free, FOREIGN);
    expect_abort("sa_free", own_mmap, bad_sa_free, FOREIGN);
    expect_abort("sa_free", wild_low, bad_sa_free, FOREIGN);
    expect_abort("free", stack_address, bad_free, FOREIGN);
    expect_abort("free", own_mmap, bad_free, FOREIGN);
}
Test(badinput, realloc_of_bad_pointers)
{
    expect_abort("sa_realloc", small_freed_immediately, bad_sa_realloc, DOUBLE);
    expect_abort("sa_realloc", small_interior_8, bad_sa_realloc, INTERIOR);
    expect_abort("sa_realloc", large_interior_page, bad_sa_realloc, INTERIOR);
    expect_abort("sa_realloc", stack_address, bad_sa_realloc, FOREIGN);
    expect_abort("sa_realloc", own_mmap, bad_sa_realloc, FOREIGN);
    expect_abort("sa_realloc", wild_low, bad_sa_realloc, FOREIGN);
    expect_abort("realloc", global_address, bad_realloc, FOREIGN);
    expect_abort("realloc", small_freed_immediately, bad_realloc, DOUBLE);
}
Test(badinput, free_sized_of_bad_pointers)
{
    expect_abort("sa_free_sized", small_freed_immediately, bad_sa_free_sized, DOUBLE);
    expect_abort("sa_free_sized", small_interior_8, bad_sa_free_sized, INTERIOR);
    expect_abort("sa_free_sized", global_address, bad_sa_free_sized, FOREIGN);
    expect_abort("sa_free_sized", wild_low, bad_sa_free_sized, FOREIGN);
}

/* The harness itself: a valid free in the child must NOT abort or print,
 * so the checks above cannot pass by accident. */
static void *valid_block(char *s) { return sa_malloc(64); }
Test(badinput, valid_free_is_silent)
{
    int errp[2];
    cr_assert_eq(pipe(errp), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(errp[1], 2);
        close(errp[0]);
        close(errp[1]);
        char stack[16];
        void *p = valid_block(stack);
        sa_free(p);
        void *q = sa_malloc(100 * KiB);
        sa_free(q);
        void *r = sa_realloc(sa_malloc(10), 100);
        sa_free_sized(r, 100);
        _exit(0);
    }
    close(errp[1]);
    char out[256];
    ssize_t r = read(errp[0], out, sizeof out);
    close(errp[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "valid frees: child status %#x", st);
    cr_assert_eq(r, 0, "valid frees printed on stderr");
}
