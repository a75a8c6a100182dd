/*
 * compat.c — glibc's malloc extras, with meanings that fit spanalloc.
 *
 *   malloc_trim(pad)   releases every free page now (sa_scavenge(0)); returns
 *                      1 when something was released, as glibc.
 *   mallopt(p, v)      accepted and ignored (returns 1): glibc's knobs
 *                      (arenas, trim/mmap thresholds) have no counterpart.
 *   mallinfo/mallinfo2 filled from spanalloc's counters: arena = heap
 *                      address space, uordblks = bytes in in-use spans,
 *                      fordblks = the rest, hblks/hblkhd = large blocks.
 *   malloc_stats()     the counters on stderr.
 *   malloc_info(0, f)  the counters as XML in glibc's outer shape.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>

#include "internal.h"

#define SA_EXPORT __attribute__((visibility("default")))

#ifndef SA_OVERRIDE
#define SA_OVERRIDE 1
#endif
#if SA_OVERRIDE

SA_EXPORT int malloc_trim(size_t pad)
{
    (void)pad;
    return sa_scavenge(0) > 0;
}

SA_EXPORT int mallopt(int param, int value)
{
    (void)param;
    (void)value;
    return 1;
}

SA_EXPORT struct mallinfo2 mallinfo2(void)
{
    sa_counters c;
    sa_get_counters(&c);
    struct mallinfo2 mi = {0};
    mi.arena = c.heap_sys;
    mi.uordblks = c.heap_inuse;
    mi.fordblks = c.heap_sys - c.heap_inuse;
    mi.hblks = c.large_allocs;
    return mi;
}

static int clamp_int(size_t v)
{
    return v > (size_t)__INT_MAX__ ? __INT_MAX__ : (int)v;
}

SA_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi = {0};
    mi.arena = clamp_int(m2.arena);
    mi.uordblks = clamp_int(m2.uordblks);
    mi.fordblks = clamp_int(m2.fordblks);
    mi.hblks = clamp_int(m2.hblks);
    return mi;
}

SA_EXPORT void malloc_stats(void)
{
    sa_stats_print_exit();
}

SA_EXPORT int malloc_info(int options, FILE *fp)
{
    if (options != 0 || fp == NULL) {
        errno = EINVAL;
        return -1;
    }
    sa_counters c;
    sa_get_counters(&c);
    fprintf(fp,
            "<malloc version=\"spanalloc-%s\">\n"
            "<total type=\"mallocs\" count=\"%zu\"/>\n"
            "<total type=\"frees\" count=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "<system type=\"inuse\" size=\"%zu\"/>\n"
            "</malloc>\n",
            sa_version(), c.mallocs, c.frees, c.heap_sys, c.heap_inuse);
    return 0;
}
#endif /* SA_OVERRIDE */
