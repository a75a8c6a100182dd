/*
 * test_override.c — the unprefixed names exported by libspanalloc.so
 * (this binary links the SHARED library, so they interpose glibc's).
 *
 * Checks that every malloc-family name, glibc's __libc_* aliases and the
 * malloc_* introspection calls resolve to spanalloc, that glibc's own
 * internal allocations (strdup, getline, asprintf, ...) come from spanalloc,
 * and that the unprefixed calls keep glibc's documented semantics.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spanalloc.h"
#include "test_util.h"

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

/* Names glibc does not declare (any more) but spanalloc exports. */
extern void cfree(void *);
extern void free_sized(void *, size_t);
extern void free_aligned_sized(void *, size_t, size_t);
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern int __posix_memalign(void **, size_t, size_t);

static size_t opaque(size_t n)
{
    volatile size_t v = n;
    return v;
}

/* The object file that defines the function at addr. */
static const char *defining_object(void *addr)
{
    Dl_info info;
    if (!dladdr(addr, &info) || !info.dli_fname)
        return "(unknown)";
    return info.dli_fname;
}

#define ASSERT_OURS(fn)                                                                     \
    cr_assert(strstr(defining_object((void *)(uintptr_t)&fn), "libspanalloc") != NULL,     \
              #fn " resolves to %s, not libspanalloc", defining_object((void *)(uintptr_t)&fn))

Test(override, every_name_resolves_to_spanalloc)
{
    ASSERT_OURS(malloc);
    ASSERT_OURS(calloc);
    ASSERT_OURS(realloc);
    ASSERT_OURS(reallocarray);
    ASSERT_OURS(free);
    ASSERT_OURS(cfree);
    ASSERT_OURS(free_sized);
    ASSERT_OURS(free_aligned_sized);
    ASSERT_OURS(posix_memalign);
    ASSERT_OURS(aligned_alloc);
    ASSERT_OURS(memalign);
    ASSERT_OURS(valloc);
    ASSERT_OURS(pvalloc);
    ASSERT_OURS(malloc_usable_size);
    ASSERT_OURS(__libc_malloc);
    ASSERT_OURS(__libc_calloc);
    ASSERT_OURS(__libc_realloc);
    ASSERT_OURS(__libc_free);
    ASSERT_OURS(__libc_memalign);
    ASSERT_OURS(__libc_valloc);
    ASSERT_OURS(__libc_pvalloc);
    ASSERT_OURS(__posix_memalign);
    ASSERT_OURS(mallinfo2);
    ASSERT_OURS(malloc_trim);
    ASSERT_OURS(malloc_stats);
    ASSERT_OURS(mallopt);
    ASSERT_OURS(malloc_info);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    ASSERT_OURS(mallinfo);
#pragma GCC diagnostic pop
    /* and what a library looking the names up at run time would get */
    static const char *names[] = { "malloc", "free", "calloc", "realloc", "posix_memalign",
                                   "aligned_alloc", "memalign", "malloc_usable_size" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *sym = dlsym(RTLD_DEFAULT, names[i]);
        cr_assert_not_null(sym, "dlsym(%s)", names[i]);
        cr_assert(strstr(defining_object(sym), "libspanalloc") != NULL, "dlsym(%s) -> %s", names[i],
                  defining_object(sym));
    }
}

/* Each allocating entry point: counted by spanalloc, usable through sa_ calls,
 * freed by sa_free without the abort a foreign pointer would cause. */
static void check_ours(const char *what, void *p, size_t n, const sa_counters *before)
{
    sa_counters after;
    sa_get_counters(&after);
    cr_assert_not_null(p, "%s returned NULL", what);
    cr_assert_geq(after.mallocs - before->mallocs, 1, "%s was not counted by spanalloc", what);
    cr_assert_geq(sa_malloc_usable_size(p), n, "%s: sa_malloc_usable_size too small", what);
    cr_assert_eq(malloc_usable_size(p), sa_malloc_usable_size(p), "%s: the two usable sizes differ", what);
    sa_fill(p, n);
    cr_assert_eq(sa_check(p, n), (size_t)-1);
    sa_free(p);
}

Test(override, allocating_names_are_ours)
{
    sa_counters c;
    void *p;
#define CHECK(expr, n)                 \
    do {                               \
        sa_get_counters(&c);           \
        p = (expr);                    \
        check_ours(#expr, p, (n), &c); \
    } while (0)
    CHECK(malloc(100), 100);
    CHECK(malloc(100 * KiB), 100 * KiB);
    CHECK(calloc(10, 10), 100);
    CHECK(realloc(NULL, 300), 300);
    CHECK(reallocarray(NULL, 30, 10), 300);
    CHECK(aligned_alloc(64, 640), 640);
    CHECK(memalign(256, 1000), 1000);
    CHECK(valloc(5000), 5000);
    CHECK(pvalloc(5000), 8192);
    CHECK(__libc_malloc(77), 77);
    CHECK(__libc_calloc(7, 11), 77);
    CHECK(__libc_realloc(NULL, 99), 99);
    CHECK(__libc_memalign(128, 99), 99);
    CHECK(__libc_valloc(99), 99);
    CHECK(__libc_pvalloc(99), 4096);
#undef CHECK
    void *m = NULL;
    sa_get_counters(&c);
    cr_assert_eq(posix_memalign(&m, 512, 4000), 0);
    check_ours("posix_memalign", m, 4000, &c);
    sa_get_counters(&c);
    cr_assert_eq(__posix_memalign(&m, 4096, 40000), 0);
    check_ours("__posix_memalign", m, 40000, &c);
    /* realloc of an existing block stays ours */
    p = sa_malloc(10);
    sa_get_counters(&c);
    p = realloc(p, 200 * KiB);
    check_ours("realloc(grow to large)", p, 200 * KiB, &c);
}

static void check_free_counted(const char *what, void (*do_free)(void *, size_t, size_t), size_t al,
                               size_t n)
{
    void *p = al ? sa_aligned_alloc(al, n) : sa_malloc(n);
    cr_assert_not_null(p);
    sa_counters a, b;
    sa_get_counters(&a);
    do_free(p, al, n);
    sa_get_counters(&b);
    cr_assert_eq(b.frees - a.frees, 1, "%s(%zu bytes) was not counted as one spanalloc free", what, n);
}
static void via_free(void *p, size_t al, size_t n) { free(p); }
static void via_cfree(void *p, size_t al, size_t n) { cfree(p); }
static void via_libc_free(void *p, size_t al, size_t n) { __libc_free(p); }
static void via_free_sized(void *p, size_t al, size_t n) { free_sized(p, n); }
static void via_free_aligned_sized(void *p, size_t al, size_t n) { free_aligned_sized(p, al, n); }
static void via_realloc0(void *p, size_t al, size_t n) { cr_assert_null(realloc(p, 0)); }
static void via_libc_realloc0(void *p, size_t al, size_t n) { cr_assert_null(__libc_realloc(p, 0)); }

/* Each freeing entry point takes a block sa_malloc returned (glibc's own free
 * would abort on such a pointer). */
Test(override, freeing_names_are_ours)
{
    static const size_t sizes[] = { 1, 48, 5000, 40 * KiB, 3 * MiB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        check_free_counted("free", via_free, 0, sizes[i]);
        check_free_counted("cfree", via_cfree, 0, sizes[i]);
        check_free_counted("__libc_free", via_libc_free, 0, sizes[i]);
        check_free_counted("free_sized", via_free_sized, 0, sizes[i]);
        check_free_counted("free_aligned_sized", via_free_aligned_sized, 4096, sizes[i]);
        check_free_counted("realloc(p, 0)", via_realloc0, 0, sizes[i]);
        check_free_counted("__libc_realloc(p, 0)", via_libc_realloc0, 0, sizes[i]);
    }
}

/* glibc's internal allocations reach spanalloc: their results are ours. */
static void check_glibc_block(const char *what, void *p, size_t atleast)
{
    cr_assert_not_null(p, "%s returned NULL", what);
    cr_assert_geq(sa_malloc_usable_size(p), atleast, "%s: block not known to spanalloc", what);
    sa_free(p); /* would abort with "invalid pointer" if glibc had allocated it */
}

Test(override, glibc_internal_allocations_are_ours)
{
    check_glibc_block("strdup", strdup("hello, spanalloc"), 17);
    check_glibc_block("strndup", strndup("hello, spanalloc", 5), 6);

    char *s = NULL;
    cr_assert_gt(asprintf(&s, "%0*d", 3000, 7), 0);
    check_glibc_block("asprintf", s, 3001);

    /* getline grows its buffer with realloc as the line gets longer */
    static char text[200000];
    memset(text, 'x', sizeof text - 2);
    text[sizeof text - 2] = '\n';
    FILE *f = fmemopen(text, sizeof text - 1, "r");
    cr_assert_not_null(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got = getline(&line, &cap, f);
    fclose(f);
    cr_assert_eq(got, (ssize_t)sizeof text - 1);
    check_glibc_block("getline", line, sizeof text - 1);

    /* a caller-provided sa_ buffer is realloc'd by glibc and stays ours */
    cap = 16;
    line = sa_malloc(cap);
    f = fmemopen(text, sizeof text - 1, "r");
    got = getdelim(&line, &cap, '\n', f);
    fclose(f);
    cr_assert_eq(got, (ssize_t)sizeof text - 1);
    check_glibc_block("getdelim(sa_malloc buffer)", line, sizeof text - 1);

    char *buf = NULL;
    size_t len = 0;
    FILE *ms = open_memstream(&buf, &len);
    cr_assert_not_null(ms);
    for (int i = 0; i < 10000; i++)
        fprintf(ms, "%d,", i);
    fclose(ms);
    cr_assert_gt(len, 40000);
    check_glibc_block("open_memstream", buf, len + 1);

    char *rp = realpath("/", NULL);
    check_glibc_block("realpath", rp, 2);
}

/* ---- semantics of the unprefixed calls -------------------------------------------- */

Test(override, malloc_zero_realloc_zero)
{
    void *a = malloc(opaque(0)), *b = malloc(opaque(0));
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);
    free(a);
    cr_assert_null(realloc(b, 0));
    void *c = calloc(0, 0);
    cr_assert_not_null(c);
    free(c);
}

Test(override, too_large_every_name)
{
    static const size_t big[] = { (size_t)PTRDIFF_MAX + 1, SIZE_MAX - 4096, SIZE_MAX };
    for (size_t i = 0; i < 3; i++) {
        size_t n = opaque(big[i]);
        void *m = (void *)(uintptr_t)0x1230;
#define NOMEM(expr)                                                                   \
    do {                                                                              \
        errno = 0;                                                                    \
        cr_assert_null(expr, #expr " succeeded for %#zx", n);                         \
        cr_assert_eq(errno, ENOMEM, #expr " for %#zx: errno %d, want ENOMEM", n, errno); \
    } while (0)
        NOMEM(malloc(n));
        NOMEM(calloc(n, 1));
        NOMEM(calloc(1, n));
        NOMEM(realloc(NULL, n));
        NOMEM(reallocarray(NULL, n, 1));
        NOMEM(aligned_alloc(64, n));
        NOMEM(memalign(64, n));
        NOMEM(valloc(n));
        NOMEM(pvalloc(n));
        NOMEM(__libc_malloc(n));
        NOMEM(__libc_calloc(n, 1));
        NOMEM(__libc_realloc(NULL, n));
        NOMEM(__libc_memalign(64, n));
        NOMEM(__libc_valloc(n));
        NOMEM(__libc_pvalloc(n));
        cr_assert_eq(posix_memalign(&m, 64, n), ENOMEM);
        cr_assert_eq(__posix_memalign(&m, 64, n), ENOMEM);
        cr_assert_eq(m, (void *)(uintptr_t)0x1230);
        void *p = malloc(10);
        void *volatile keep = p; /* a failed realloc leaves p allocated */
        NOMEM(realloc(p, n));
        free(keep);
    }
    size_t n = opaque(SIZE_MAX / 2 + 1);
    NOMEM(calloc(n, 2));
    NOMEM(reallocarray(NULL, n, 2));
#undef NOMEM
}

Test(override, bad_alignment)
{
    void *m = (void *)(uintptr_t)0x4560;
    cr_assert_eq(posix_memalign(&m, opaque(24), 10), EINVAL);
    cr_assert_eq(posix_memalign(&m, opaque(4), 10), EINVAL);
    cr_assert_eq(posix_memalign(&m, opaque(0), 10), EINVAL);
    cr_assert_eq(m, (void *)(uintptr_t)0x4560);
    errno = 0;
    cr_assert_null(aligned_alloc(opaque(24), 10));
    cr_assert_eq(errno, EINVAL);
}

Test(override, alignment_up_to_2_pow_28)
{
    for (size_t al = 8; al <= ((size_t)1 << 28); al *= 2) {
        size_t n = al <= MiB ? al + 3 : 4000;
        void *m = NULL;
        cr_assert_eq(posix_memalign(&m, al, n), 0, "posix_memalign(%zu)", al);
        void *a = aligned_alloc(al, n);
        void *b = memalign(al, n);
        cr_assert_not_null(a);
        cr_assert_not_null(b);
        cr_assert(sa_is_aligned(m, al) && sa_is_aligned(a, al) && sa_is_aligned(b, al),
                  "alignment %zu: %p %p %p", al, m, a, b);
        cr_assert_geq(malloc_usable_size(m), n);
        cr_assert_geq(malloc_usable_size(a), n);
        cr_assert_geq(malloc_usable_size(b), n);
        free(m);
        free(a);
        free(b);
    }
}

Test(override, realloc_contents_and_usable_size)
{
    size_t cur = 10;
    unsigned char *p = malloc(cur);
    sa_fill_seed(p, 0, cur, 3);
    for (size_t next = 20; next <= 4 * MiB; next = next * 3 / 2) {
        p = realloc(p, next);
        cr_assert_not_null(p);
        cr_assert(sa_is_aligned(p, 16));
        cr_assert_eq(sa_check_seed(p, cur, 3), (size_t)-1, "realloc to %zu lost contents", next);
        cr_assert_geq(malloc_usable_size(p), next);
        sa_fill_seed(p, cur, next, 3);
        cur = next;
    }
    free(p);
    cr_assert_eq(malloc_usable_size(NULL), 0);
}

/* ---- introspection names ---------------------------------------------------------- */

Test(override, mallinfo2_reports_our_heap)
{
    size_t n = 8 * MiB;
    unsigned char *p = malloc(n);
    cr_assert_not_null(p);
    memset(p, 1, n);
    struct mallinfo2 mi = mallinfo2();
    /* glibc's meaning: uordblks + hblkhd = bytes in use by the program */
    cr_assert_geq(mi.uordblks + mi.hblkhd, n, "mallinfo2 in-use %zu + %zu misses the live 8 MiB block",
                  mi.uordblks, mi.hblkhd);
    free(p);
}

Test(override, malloc_trim_mallopt_return_values)
{
    /* Documented (alloc/compat.c): malloc_trim returns 1 when it released
     * something, as glibc; mallopt accepts and ignores every knob (1). The
     * background scavenger waits for 100 ms of quiet, so the pages freed
     * just before the first call are still there for it to release. */
    unsigned char *big = malloc(8 * MiB);
    cr_assert_not_null(big);
    memset(big, 1, 8 * MiB);
    free(big);
    int t = malloc_trim(0);
    cr_assert_eq(t, 1, "malloc_trim after freeing 8 MiB returned %d", t);
    t = malloc_trim(0);
    cr_assert_eq(t, 0, "malloc_trim with nothing left to release returned %d", t);
    int o = mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    cr_assert_eq(o, 1, "mallopt returned %d", o);
    void *p = malloc(1000);
    cr_assert_not_null(p);
    free(p);
}

Test(override, malloc_info_writes_and_checks_options)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(malloc_info(0, f), 0);
    fclose(f);
    /* glibc's outer shape, our counters inside */
    cr_assert(strncmp(buf, "<malloc version=\"spanalloc-", 27) == 0, "malloc_info: \"%s\"", buf);
    cr_assert_not_null(strstr(buf, "<total type=\"mallocs\" count=\""), "malloc_info: \"%s\"", buf);
    cr_assert(len > 10 && strcmp(buf + len - 10, "</malloc>\n") == 0, "malloc_info: \"%s\"", buf);
    free(buf);
    f = open_memstream(&buf, &len);
    errno = 0;
    cr_assert_eq(malloc_info(1, f), -1, "malloc_info with options != 0 must fail");
    cr_assert_eq(errno, EINVAL);
    fclose(f);
    free(buf);
}

Test(override, malloc_stats_prints)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        void *p = malloc(1000);
        malloc_stats();
        free(p);
        _exit(0);
    }
    close(fds[1]);
    char out[4096];
    size_t got = 0;
    ssize_t r;
    while ((r = read(fds[0], out + got, sizeof out - 1 - got)) > 0)
        got += (size_t)r;
    close(fds[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
    out[got] = 0;
    /* the stats report: the version line, then the counters */
    cr_assert(strncmp(out, "spanalloc ", 10) == 0, "malloc_stats printed \"%s\"", out);
    cr_assert_not_null(strstr(out, "spanalloc: stats: mallocs="), "malloc_stats printed \"%s\"", out);
}

/* ---- threads: blocks outlive the thread that allocated them ------------------------ */

static pthread_key_t g_key;
static void *g_from_dtor[64];
static int g_ndtor;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

/* A key destructor that allocates again after the thread's cache may have
 * been flushed: the block must still be valid and freeable elsewhere. */
static void key_dtor(void *v)
{
    free(v);
    void *tmp = malloc(200);
    free(tmp);
    void *keep = malloc(333);
    sa_fill(keep, 333);
    pthread_mutex_lock(&g_mu);
    g_from_dtor[g_ndtor++] = keep;
    pthread_mutex_unlock(&g_mu);
}

static void *thread_body(void *arg)
{
    pthread_setspecific(g_key, malloc(50));
    unsigned char *p = malloc(1000 + (size_t)(uintptr_t)arg);
    sa_fill(p, 1000 + (size_t)(uintptr_t)arg);
    return p;
}

Test(override, blocks_outlive_threads_and_key_destructors)
{
    cr_assert_eq(pthread_key_create(&g_key, key_dtor), 0);
    enum { N = 32 };
    for (int i = 0; i < N; i++) {
        pthread_t t;
        void *ret;
        cr_assert_eq(pthread_create(&t, NULL, thread_body, (void *)(uintptr_t)i), 0);
        cr_assert_eq(pthread_join(t, &ret), 0);
        cr_assert_eq(sa_check(ret, 1000 + (size_t)i), (size_t)-1, "thread block corrupted after exit");
        free(ret);
    }
    cr_assert_eq(g_ndtor, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(sa_check(g_from_dtor[i], 333), (size_t)-1, "destructor block %d corrupted", i);
        free(g_from_dtor[i]);
    }
    /* the heap is still usable */
    void *p = malloc(123);
    cr_assert_not_null(p);
    free(p);
}
