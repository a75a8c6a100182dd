/* Statistics: the counters add up, across threads and after thread exit;
 * options from code; the report in both formats. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <spanalloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* Debug builds (SPANALLOC_DEBUG) add a trailer to every block and report
 * usable size = requested size: the counters count the trailers. */
static void skip_in_debug_build(void)
{
    if (strcmp(sa_build_option("debug"), "on") == 0)
        cr_skip_test("release semantics (debug build)");
}
TestSuite(stats, .init = skip_in_debug_build);

static size_t usable_sum;

static void check_invariants(const sa_memstats *m)
{
    cr_assert_eq(m->mallocs - m->frees, m->heap_objects, "Mallocs - Frees == HeapObjects");
    cr_assert_eq(m->heap_sys, m->heap_inuse + m->heap_idle, "HeapSys == HeapInuse + HeapIdle");
    cr_assert_leq(m->heap_released, m->heap_idle);
    cr_assert_leq(m->heap_alloc, m->heap_inuse, "objects fit in the spans in use");
    cr_assert_eq(m->alloc, m->heap_alloc);
    uint64_t objs = 0, bytes = 0;
    for (unsigned c = 0; c < m->num_size_classes; c++) {
        objs += m->by_size[c].objects;
        bytes += m->by_size[c].bytes;
    }
    cr_assert_eq(objs, m->heap_objects, "size classes add up to HeapObjects");
    cr_assert_eq(bytes, m->heap_alloc, "size classes add up to HeapAlloc");
    cr_assert_geq(m->sys, m->heap_sys + m->mspan_sys + m->mcache_sys);
}

#define N 5000
static void *blocks[N];

static void alloc_blocks(unsigned seed)
{
    usable_sum = 0;
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(rand_r(&seed) % (i % 50 == 0 ? 200000 : 3000));
        blocks[i] = sa_malloc(n);
        cr_assert_not_null(blocks[i]);
        usable_sum += sa_malloc_usable_size(blocks[i]);
    }
}

Test(stats, heap_alloc_is_the_sum_of_live_blocks)
{
    sa_memstats before, live, after;
    sa_test_start_helpers(); /* freeing the blocks must not start one */
    sa_read_memstats(&before);
    alloc_blocks(7);
    sa_read_memstats(&live);
    check_invariants(&live);
    cr_assert_eq(live.heap_alloc - before.heap_alloc, usable_sum,
                 "HeapAlloc grew by %zu, the blocks' usable sizes add to %zu",
                 (size_t)(live.heap_alloc - before.heap_alloc), usable_sum);
    cr_assert_eq(live.heap_objects - before.heap_objects, N);
    cr_assert_eq(live.mallocs - before.mallocs, N);
    cr_assert_geq(live.total_alloc - before.total_alloc, usable_sum);
    for (int i = 0; i < N; i++)
        sa_free(blocks[i]);
    sa_read_memstats(&after);
    check_invariants(&after);
    cr_assert_eq(after.heap_alloc, before.heap_alloc);
    cr_assert_eq(after.heap_objects, before.heap_objects);
    cr_assert_eq(after.frees - before.frees, N);
}

static void *thread_allocs(void *arg)
{
    (void)arg;
    alloc_blocks(11);
    return NULL;
}

static void *nothing(void *arg)
{
    return arg;
}

Test(stats, counters_survive_thread_exit_and_cross_thread_frees)
{
    sa_memstats before, mid, after;
    pthread_t t;
    /* glibc keeps a finished thread's stack and TLS block (allocated with
     * calloc) for the next thread: let it do so before measuring. */
    pthread_create(&t, NULL, nothing, NULL);
    pthread_join(t, NULL);
    sa_test_start_helpers(); /* the same for the library's helper threads */
    sa_read_memstats(&before);
    pthread_create(&t, NULL, thread_allocs, NULL);
    pthread_join(t, NULL); /* its cache is flushed, its counters folded */
    sa_read_memstats(&mid);
    check_invariants(&mid);
    cr_assert_eq(mid.heap_alloc - before.heap_alloc, usable_sum, "HeapAlloc grew by %zu, blocks %zu; objects +%zu", (size_t)(mid.heap_alloc - before.heap_alloc), usable_sum, (size_t)(mid.heap_objects - before.heap_objects));
    cr_assert_eq(mid.mallocs - before.mallocs, N);
    for (int i = 0; i < N; i++)
        sa_free(blocks[i]); /* freed by another thread than the allocator */
    sa_read_memstats(&after);
    check_invariants(&after);
    cr_assert_eq(after.heap_alloc, before.heap_alloc);
    cr_assert_eq(after.frees - before.frees, N);
}

Test(stats, large_blocks_are_counted_in_pages)
{
    sa_memstats before, live;
    sa_read_memstats(&before);
    void *p = sa_malloc(100000);
    sa_read_memstats(&live);
    cr_assert_eq(live.by_size[0].objects - before.by_size[0].objects, 1);
    cr_assert_eq(live.heap_alloc - before.heap_alloc, sa_malloc_usable_size(p));
    cr_assert_eq(sa_malloc_usable_size(p) % 8192, 0);
    sa_free(p);
}

Test(stats, options_from_code)
{
    cr_assert_eq(sa_option_set("memory_limit", "12M"), 0);
    cr_assert_eq(sa_get_memory_limit(), (size_t)12 << 20);
    cr_assert_eq(sa_option_set("memory_limit", "3g"), 0);
    cr_assert_eq(sa_get_memory_limit(), (size_t)3 << 30);
    cr_assert_eq(sa_option_set("memory_limit", "0"), 0);
    cr_assert_eq(sa_get_memory_limit(), 0);
    const char *bad[][2] = {{"memory_limit", "12X"}, {"memory_limit", ""},
                            {"memory_limit", "-1"}, {"memory_limit", "99999999999999999999999"},
                            {"stats", "2"}, {"stats", "yes"}, {"stats_format", "xml"},
                            {"scavenge_retain", "1001"}, {"no_such_key", "1"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        cr_assert_eq(sa_option_set(bad[i][0], bad[i][1]), -1, "%s=%s", bad[i][0], bad[i][1]);
        cr_assert_eq(errno, EINVAL);
    }
    cr_assert_eq(sa_option_set("stats_format", "json"), 0);
    cr_assert_eq(sa_option_set("stats", "0"), 0);
    cr_assert_eq(sa_option_set(NULL, "1"), -1);
}

static char *report(const char *opts)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sa_stats_print(f, opts);
    fclose(f);
    return buf;
}

Test(stats, report_in_text_and_json)
{
    void *p = sa_malloc(48);
    char *text = report(NULL);
    cr_assert_not_null(strstr(text, "spanalloc: stats: mallocs="), "%s", text);
    cr_assert_not_null(strstr(text, "scavenger="));
    cr_assert_not_null(strstr(text, "heap: sys="));
    cr_assert_not_null(strstr(text, "      48 "), "the 48-byte class row: %s", text);
    char *json = report("json");
    cr_assert_eq(json[0], '{');
    cr_assert_not_null(strstr(json, "\"heap_alloc\": "));
    cr_assert_not_null(strstr(json, "\"by_size\": ["));
    cr_assert_not_null(strstr(json, "\"scavenger\": \""));
    cr_assert_eq(json[strlen(json) - 2], '}');
    free(text);
    free(json);
    sa_free(p);
}

Test(stats, large_blocks_resized_in_place_keep_the_byte_count)
{
    sa_memstats before, after;
    sa_read_memstats(&before);
    char *p = sa_malloc(200000);
    p = sa_realloc(p, 100000);  /* shrinks in place */
    p = sa_realloc(p, 150000);  /* grows back in place (the pages are free) */
    sa_memstats mid;
    sa_read_memstats(&mid);
    cr_assert_eq(mid.heap_alloc - before.heap_alloc, sa_malloc_usable_size(p));
    sa_free(p);
    sa_read_memstats(&after);
    cr_assert_eq(after.heap_alloc, before.heap_alloc,
                 "HeapAlloc %zu after, %zu before", (size_t)after.heap_alloc,
                 (size_t)before.heap_alloc);
    cr_assert_eq(after.by_size[0].bytes, before.by_size[0].bytes);
}

/* The collector's options exist only in collector builds; elsewhere they
 * are refused with ENOTSUP (the SPANALLOC variable says why: see
 * tests/smoke/options_gc.sh). */
Test(stats, collector_options_need_a_collector_build)
{
    const char *keys[][2] = {{"gctrace", "1"}, {"gc_percent", "200"}, {"gc_mode", "stw"},
                             {"gc_markers", "1"}};
    bool gc = strcmp(sa_build_option("gc"), "on") == 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        errno = 0;
        int r = sa_option_set(keys[i][0], keys[i][1]);
        if (gc) {
            cr_assert_eq(r, 0, "%s=%s in a collector build", keys[i][0], keys[i][1]);
        } else {
            cr_assert_eq(r, -1, "%s=%s without the collector", keys[i][0], keys[i][1]);
            cr_assert_eq(errno, ENOTSUP, "%s: errno %d", keys[i][0], errno);
        }
    }
    if (gc) { /* back to the defaults */
        sa_option_set("gctrace", "0");
        sa_option_set("gc_percent", "100");
        sa_option_set("gc_mode", "concurrent");
        sa_option_set("gc_markers", "2");
    }
}

Test(stats, report_counts_helper_threads)
{
    char *text = report(NULL);
    cr_assert_not_null(strstr(text, "  helper threads: scavenger started="), "%s", text);
    char *json = report("json");
    cr_assert_not_null(strstr(json, "\"helper_threads\": {\"scavenger\": {\"started\": "),
                       "%s", json);
    free(text);
    free(json);
}
