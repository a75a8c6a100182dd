/*
 * test_dlopen.c — the shared library loads late with dlopen().
 *
 * This program is NOT linked with spanalloc: glibc stays its malloc. It
 * dlopen()s libspanalloc.so by absolute path (SPANALLOC_SO, set by CMake)
 * with RTLD_LOCAL, looks the sa_ API up with dlsym and uses it from the
 * main thread, from threads that existed before the dlopen (their TLS for
 * the library is set up late) and from threads created after it, with
 * blocks freed by other threads.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spanalloc.h"
#include "test_util.h"

#ifndef SPANALLOC_SO
#error "SPANALLOC_SO must name the shared library"
#endif

typedef struct {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    void *(*aligned_alloc)(size_t, size_t);
    size_t (*usable)(void *);
    void (*counters)(sa_counters *);
    const char *(*version)(void);
} api;

static api A;
static pthread_barrier_t g_bar;

static void *must_sym(void *h, const char *name)
{
    void *s = dlsym(h, name);
    cr_assert_not_null(s, "dlsym(%s): %s", name, dlerror());
    return s;
}

static void load(void)
{
    void *h = dlopen(SPANALLOC_SO, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(h, "dlopen(%s): %s", SPANALLOC_SO, dlerror());
    A.malloc = (void *(*)(size_t))must_sym(h, "sa_malloc");
    A.calloc = (void *(*)(size_t, size_t))must_sym(h, "sa_calloc");
    A.realloc = (void *(*)(void *, size_t))must_sym(h, "sa_realloc");
    A.free = (void (*)(void *))must_sym(h, "sa_free");
    A.aligned_alloc = (void *(*)(size_t, size_t))must_sym(h, "sa_aligned_alloc");
    A.usable = (size_t(*)(void *))must_sym(h, "sa_malloc_usable_size");
    A.counters = (void (*)(sa_counters *))must_sym(h, "sa_get_counters");
    A.version = (const char *(*)(void))must_sym(h, "sa_version");
    /* never dlclose: thread-exit destructors may still point into it */
}

/* Allocates a mix of sizes, checks, frees half, returns the rest. */
static int exercise(void **keep, int nkeep, uint64_t seed)
{
    sa_rng r = { seed };
    for (int round = 0; round < 20; round++) {
        void *tmp[64];
        size_t n[64];
        for (int i = 0; i < 64; i++) {
            n[i] = (i % 16 == 0) ? 40000 + sa_rng_below(&r, 200000) : sa_rng_below(&r, 3000);
            tmp[i] = A.malloc(n[i]);
            if (!tmp[i] || ((uintptr_t)tmp[i] & 15) || A.usable(tmp[i]) < n[i])
                return 0;
            sa_fill(tmp[i], n[i]);
        }
        for (int i = 0; i < 64; i++) {
            if (sa_check(tmp[i], n[i]) != (size_t)-1)
                return 0;
            A.free(tmp[i]);
        }
    }
    for (int i = 0; i < nkeep; i++) {
        keep[i] = A.malloc(1000);
        if (!keep[i])
            return 0;
        sa_fill(keep[i], 1000);
    }
    return 1;
}

typedef struct {
    void *keep[16];
    int ok;
    int wait_for_load;
} thread_arg;

/* The process malloc is glibc's: the name malloc resolves into libc, and
 * the block glibc made is one glibc knows (its usable size covers it). */
static void assert_malloc_is_glibc(void *glibc_block, const char *when)
{
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    cr_assert_not_null(m);
    cr_assert(dladdr(m, &info) && info.dli_fname, "%s: dladdr(malloc) failed", when);
    cr_assert_not_null(strstr(info.dli_fname, "libc.so"), "%s: malloc resolves to %s, not glibc's",
                       when, info.dli_fname);
    cr_assert_geq(malloc_usable_size(glibc_block), 100, "%s", when);
}

static void *thread_body(void *v)
{
    thread_arg *a = v;
    if (a->wait_for_load)
        pthread_barrier_wait(&g_bar); /* main dlopens meanwhile */
    a->ok = exercise(a->keep, 16, (uint64_t)(uintptr_t)a);
    return NULL;
}

Test(dlopen, late_load_and_use_from_threads)
{
    /* glibc is our malloc until now and stays so */
    void *glibc_block = malloc(100);
    cr_assert_not_null(glibc_block);
    assert_malloc_is_glibc(glibc_block, "before dlopen");

    pthread_barrier_init(&g_bar, NULL, 3);
    thread_arg before[2] = { { .wait_for_load = 1 }, { .wait_for_load = 1 } };
    pthread_t tb[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&tb[i], NULL, thread_body, &before[i]), 0);

    load();
    cr_assert_str_eq(A.version(), "0.1.0");
    pthread_barrier_wait(&g_bar); /* release the threads that predate the dlopen */

    void *mine[16];
    cr_assert(exercise(mine, 16, 1), "main thread: sa_ calls through dlsym misbehaved");

    thread_arg after[3];
    memset(after, 0, sizeof after);
    pthread_t ta[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&ta[i], NULL, thread_body, &after[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(tb[i], NULL);
        cr_assert(before[i].ok, "thread created before dlopen: sa_ calls misbehaved");
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(ta[i], NULL);
        cr_assert(after[i].ok, "thread created after dlopen: sa_ calls misbehaved");
    }
    /* blocks of exited threads are intact and freed here */
    thread_arg *all[5] = { &before[0], &before[1], &after[0], &after[1], &after[2] };
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < 16; i++) {
            cr_assert_eq(sa_check(all[t]->keep[i], 1000), (size_t)-1);
            A.free(all[t]->keep[i]);
        }
    for (int i = 0; i < 16; i++)
        A.free(mine[i]);

    /* calloc / realloc / aligned through the late-loaded library */
    unsigned char *c = A.calloc(1000, 10);
    cr_assert_not_null(c);
    cr_assert_eq(sa_first_nonzero(c, 10000), (size_t)-1);
    sa_fill_seed(c, 0, 10000, 4);
    c = A.realloc(c, 300000);
    cr_assert_not_null(c);
    cr_assert_eq(sa_check_seed(c, 10000, 4), (size_t)-1);
    A.free(c);
    void *al = A.aligned_alloc(1 << 20, 5000);
    cr_assert_not_null(al);
    cr_assert(sa_is_aligned(al, 1 << 20));
    A.free(al);

    sa_counters k;
    A.counters(&k);
    cr_assert_geq(k.mallocs, 5 * (20 * 64 + 16) + 20 * 64, "the library counted %zu mallocs", k.mallocs);
    cr_assert_geq(k.frees, 5 * (20 * 64 + 16), "the library counted %zu frees", k.frees);

    /* the process malloc is still glibc's: its block frees normally */
    assert_malloc_is_glibc(glibc_block, "after dlopen and use");
    free(glibc_block);
    pthread_barrier_destroy(&g_bar);
}
