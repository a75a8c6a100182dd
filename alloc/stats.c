/*
 * stats.c — counters, folded on read.
 *
 * Each thread counts into its own mcache (sa_threadstats: small objects
 * handed out per size class, counted when a window is retired; frees counted
 * by the freeing thread; large blocks). Nothing on the fast path touches a
 * shared cache line. Readers sum the live mcaches and sa_global_stats, which
 * holds what exited threads and cache-less allocations counted.
 */
#include <string.h>

#include "internal.h"

SA_HIDDEN sa_threadstats sa_global_stats;

void sa_stats_add_global(uint64_t *field, uint64_t v)
{
    __atomic_fetch_add(field, v, __ATOMIC_RELAXED);
}

static void fold_all(sa_threadstats *t)
{
    const uint64_t *g = (const uint64_t *)&sa_global_stats;
    uint64_t *d = (uint64_t *)t;
    for (size_t i = 0; i < sizeof *t / sizeof(uint64_t); i++)
        d[i] = sa_load_relaxed(&g[i]);
    sa_mcache_fold_stats(t);
}

void sa_get_counters(sa_counters *out)
{
    sa_ensure_init();
    sa_threadstats t;
    fold_all(&t);
    memset(out, 0, sizeof *out);
    for (unsigned c = 1; c < SA_NUM_SPAN_CLASSES; c++) {
        out->mallocs += t.nmalloc[c];
        out->frees += t.nfree[c];
    }
    out->mallocs += t.nlarge_alloc;
    out->frees += t.nlarge_free;
    out->large_allocs = t.nlarge_alloc;
    sa_pageheap_stats h;
    sa_mheap_stats(&h);
    out->heap_sys = h.arenas * SA_ARENA_BYTES;
    out->heap_inuse = h.pages_inuse * SA_PAGE_SIZE;
    out->heap_free = h.pages_free_backed * SA_PAGE_SIZE;
    out->heap_released = h.pages_released * SA_PAGE_SIZE;
    out->pages_faulted = h.pages_faulted;
    sa_scavstats sc;
    sa_scavstats_read(&sc);
    out->scav_released = sc.released_bg + sc.released_eager + sc.released_forced;
    out->scav_madvise_calls = sc.madvise_calls;
    out->scav_ns = sc.ns;
}

const char *sa_build_option(const char *name)
{
    if (!name)
        return NULL;
    if (strcmp(name, "scavenger") == 0)
        return sa_scavenger_policy_name();
    if (strcmp(name, "madvise") == 0)
        return sa_madvise_name();
    if (strcmp(name, "valgrind") == 0) {
#ifdef SPANALLOC_VALGRIND
        return "on";
#else
        return "off";
#endif
    }
    if (strcmp(name, "version") == 0)
        return sa_version();
    return NULL;
}

const char *sa_version(void)
{
    return "0.1.0";
}

void sa_stats_print_exit(void)
{
    sa_counters c;
    sa_get_counters(&c);
    char buf[512];
    size_t n = sa_format(buf, sizeof buf - 1,
                         "spanalloc: stats: mallocs=%zu frees=%zu large=%zu "
                         "heap_sys=%zu heap_inuse=%zu heap_free=%zu heap_released=%zu "
                         "scav_released=%zu madvise=%zu faulted_pages=%zu "
                         "scavenger=%s madvise_mode=%s\n",
                         c.mallocs, c.frees, c.large_allocs, c.heap_sys, c.heap_inuse,
                         c.heap_free, c.heap_released, c.scav_released, c.scav_madvise_calls,
                         c.pages_faulted, sa_scavenger_policy_name(), sa_madvise_name());
    sa_os_write_stderr(buf, n);
}

__attribute__((destructor)) static void sa_stats_at_exit(void)
{
    if (sa_opts.stats)
        sa_stats_print_exit();
}
