/*
 * gcbench.h — one collector API over spanalloc's and Boehm GC's, so each
 * benchmark in bench/gc is one source built twice (-DUSE_BOEHM for Boehm).
 *
 *   GCB_INIT()            start the collector
 *   GCB_ALLOC(n)          zeroed object that may hold pointers
 *   GCB_ALLOC_NOSCAN(n)   object without pointers (contents unspecified)
 *   GCB_STORE(slot, v)    pointer store into an object that may overwrite
 *                         a pointer (spanalloc's write barrier; plain in Boehm)
 *   GCB_ROOT(addr, len)   a global range that holds pointers
 *
 * Pauses: spanalloc reports each stop of the world in sa_read_memstats
 * (percentiles over the last 4096). For Boehm, an on-collection-event
 * callback timestamps PRE_STOP_WORLD and POST_START_WORLD of every stop, so
 * both columns measure the same thing: from asking threads to stop to all of
 * them running again.
 *
 * Output: one line "RESULT bench=... gc=... mode=... seconds=...
 * max_pause_us=... p99_pause_us=... p50_pause_us=... cycles=...
 * peak_rss_kb=... stop_max_us=... stop_p99_us=..." (peak_rss_kb is VmHWM,
 * as in bench/workloads; the time-to-stop fields are -1 for Boehm).
 */
#ifndef GCBENCH_H
#define GCBENCH_H

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double gcb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline uint64_t gcb_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline long gcb_peak_rss_kb(void)
{
    char buf[256];
    long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    while (fgets(buf, sizeof buf, f))
        if (strncmp(buf, "VmHWM:", 6) == 0)
            kb = strtol(buf + 6, NULL, 10);
    fclose(f);
    return kb;
}

typedef struct gcb_pauses {
    double max_us, p99_us, p50_us;
    double stop_max_us, stop_p99_us; /* time-to-stop (spanalloc only; -1 otherwise) */
    unsigned long cycles;
} gcb_pauses;

#ifdef USE_BOEHM
#include <gc/gc.h>

#define GCB_NAME "boehm"
#define GCB_ALLOC(n) GC_MALLOC(n)
#define GCB_ALLOC_NOSCAN(n) GC_MALLOC_ATOMIC(n)
#define GCB_STORE(slot, v) ((slot) = (v))
#define GCB_ROOT(addr, len) GC_add_roots((char *)(addr), (char *)(addr) + (len))

#define GCB_MAX_PAUSES 65536
static uint64_t gcb_pause_ns[GCB_MAX_PAUSES];
static size_t gcb_npauses;
static uint64_t gcb_stop_start;

static void gcb_event(GC_EventType e)
{
    if (e == GC_EVENT_PRE_STOP_WORLD)
        gcb_stop_start = gcb_ns();
    else if (e == GC_EVENT_POST_START_WORLD && gcb_npauses < GCB_MAX_PAUSES)
        gcb_pause_ns[gcb_npauses++] = gcb_ns() - gcb_stop_start;
}

static inline void GCB_INIT(void)
{
    GC_INIT();
    GC_set_on_collection_event(gcb_event);
}

static inline const char *gcb_mode(void)
{
    return GC_is_incremental_mode() ? "incremental" : "stw";
}

static int gcb_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static inline void gcb_read_pauses(gcb_pauses *p)
{
    size_t n = gcb_npauses;
    memset(p, 0, sizeof *p);
    p->stop_max_us = p->stop_p99_us = -1;
    p->cycles = (unsigned long)GC_get_gc_no();
    if (n == 0)
        return;
    qsort(gcb_pause_ns, n, sizeof *gcb_pause_ns, gcb_cmp);
    p->max_us = gcb_pause_ns[n - 1] / 1e3;
    p->p99_us = gcb_pause_ns[(n - 1) * 99 / 100] / 1e3;
    p->p50_us = gcb_pause_ns[(n - 1) / 2] / 1e3;
}
#else
#include "spanalloc.h"

#define GCB_NAME "spanalloc"
#define GCB_ALLOC(n) sa_gc_alloc((n), 0)
#define GCB_ALLOC_NOSCAN(n) sa_gc_alloc((n), SA_GC_NOSCAN)
#define GCB_STORE(slot, v) SA_GC_STORE(slot, v)
#define GCB_ROOT(addr, len) sa_gc_add_root((addr), (len))

static inline void GCB_INIT(void)
{
}

static inline const char *gcb_mode(void)
{
    const char *e = getenv("SPANALLOC");
    return e && strstr(e, "gc_mode=stw") ? "stw" : "concurrent";
}

static inline void gcb_read_pauses(gcb_pauses *p)
{
    sa_memstats m;
    sa_read_memstats(&m);
    p->cycles = m.num_gc;
    p->max_us = m.pause_max_ns / 1e3;
    p->p99_us = m.pause_p99_ns / 1e3;
    p->p50_us = m.pause_p50_ns / 1e3;
    p->stop_max_us = m.stop_max_ns / 1e3;
    p->stop_p99_us = m.stop_p99_ns / 1e3;
}
#endif

static inline void gcb_result(const char *bench, double seconds, const char *extra)
{
    gcb_pauses p;
    gcb_read_pauses(&p);
    printf("RESULT bench=%s gc=%s mode=%s seconds=%.3f max_pause_us=%.1f p99_pause_us=%.1f "
           "p50_pause_us=%.1f cycles=%lu peak_rss_kb=%ld stop_max_us=%.1f stop_p99_us=%.1f%s%s\n",
           bench, GCB_NAME, gcb_mode(), seconds, p.max_us, p.p99_us, p.p50_us, p.cycles,
           gcb_peak_rss_kb(), p.stop_max_us, p.stop_p99_us, extra ? " " : "", extra ? extra : "");
    fflush(stdout);
}

#endif /* GCBENCH_H */
