/*
 * pacer.c — when cycles start, and what they cost: the heap goal and
 * trigger, the collector's MemStats fields, pause percentiles, gctrace.
 *
 * Pacing is GOGC's rule without Go's feedback controller (mgcpacer.go;
 * docs/gc.md):
 *   goal    = max(marked * (1 + gc_percent/100), 4 MiB)
 *   trigger = marked + 0.6 * (goal - marked)  (concurrent: marking gets the
 *             last 40% of the runway);  = goal in stop-the-world mode
 *   hard    = goal + (goal - marked) / 2     (concurrent: a thread that
 *             allocates past it waits for the cycle, a crude assist);
 *           = goal in stop-the-world mode (the allocating thread that
 *             crosses the goal waits for the collection, as in Boehm)
 * gc_percent = off (-1) disables automatic cycles; sa_gc_collect still runs
 * them. A soft memory limit (the scavenger's, SPANALLOC=memory_limit) caps
 * the goal at 95% of it, as GOMEMLIMIT does, also with gc_percent off. heap_live is counted when a thread loads an allocation window, as Go
 * counts heapLive at mcache refill, and reset to the marked bytes at the
 * end of each cycle.
 *
 * Statistics (stats_lock, never taken while the world is stopped: a reader
 * may be stopped holding it; the goal is committed with atomics): the
 * 256-entry PauseNs/PauseEnd ring with one entry per cycle (its pauses
 * summed, as Go), and, for percentiles, every individual pause and its
 * time-to-stop over the last SA_GC_PAUSE_HIST pauses.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gc_internal.h"

#define MIN_GOAL ((uint64_t)4 << 20)
#define SA_GC_PAUSE_HIST 4096

SA_HIDDEN int sa_gc_percent = 100;
SA_HIDDEN int sa_gc_trace;
SA_HIDDEN int sa_gc_concurrent = 1;
SA_HIDDEN uint64_t sa_gc_trigger = MIN_GOAL * 7 / 10;
SA_HIDDEN uint64_t sa_gc_goal = MIN_GOAL;
SA_HIDDEN uint64_t sa_gc_hard_goal = MIN_GOAL * 2;

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_marked;          /* atomic (set while the world is stopped) */
static uint32_t numgc, numforced;     /* stats_lock */
static uint64_t pause_total, last_gc_wall;
static uint64_t pause_ring[SA_MEMSTATS_PAUSES], pause_end_ring[SA_MEMSTATS_PAUSES];
static uint64_t hist_pause[SA_GC_PAUSE_HIST], hist_stop[SA_GC_PAUSE_HIST];
static uint64_t nhist;
static uint64_t gc_cpu_ns;            /* collector CPU, atomic */
static uint64_t start_ns;

static uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sa_gc_nanotime(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

static uint64_t walltime(void)
{
    return clock_ns(CLOCK_REALTIME);
}

uint64_t sa_gc_thread_cputime(void)
{
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static unsigned nprocs(void)
{
    static unsigned n;
    if (!n) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)c : 1;
    }
    return n;
}

void sa_gc_add_cpu(uint64_t ns)
{
    __atomic_fetch_add(&gc_cpu_ns, ns, __ATOMIC_RELAXED);
}

/* New goal from the bytes marked by the cycle that just ended. */
void sa_gc_pacer_commit(uint64_t marked)
{
    if (!start_ns)
        start_ns = sa_gc_nanotime();
    uint64_t goal, trigger, hard;
    int pct = sa_load_relaxed(&sa_gc_percent);
    /* The soft memory limit the scavenger keeps (SPANALLOC=memory_limit):
     * the goal stays at 95% of it, but leaves the program at least 1/16 of
     * the live heap to allocate into (or every allocation would collect). */
    uint64_t limit = sa_get_memory_limit();
    uint64_t limit_goal = UINT64_MAX;
    if (limit) {
        limit_goal = limit / 100 * 95;
        if (limit_goal < marked + marked / 16)
            limit_goal = marked + marked / 16;
    }
    if (pct < 0 && limit_goal == UINT64_MAX) {
        goal = trigger = hard = UINT64_MAX;
    } else {
        goal = pct < 0 ? UINT64_MAX : marked + marked / 100 * (uint64_t)pct;
        if (goal < MIN_GOAL)
            goal = MIN_GOAL;
        if (goal > limit_goal)
            goal = limit_goal;
        uint64_t runway = goal > marked ? goal - marked : 0;
        if (sa_load_relaxed(&sa_gc_concurrent)) {
            trigger = marked + runway / 10 * 6;
            hard = goal + runway / 2;
        } else {
            trigger = hard = goal;
        }
    }
    sa_store_relaxed(&last_marked, marked);
    sa_store_relaxed(&sa_gc_goal, goal);
    sa_store_relaxed(&sa_gc_hard_goal, hard);
    sa_store_relaxed(&sa_gc_trigger, trigger);
}

SA_API int sa_gc_set_percent(int percent)
{
    sa_gc_init();
    int old = __atomic_exchange_n(&sa_gc_percent, percent < 0 ? -1 : percent, __ATOMIC_SEQ_CST);
    sa_gc_pacer_commit(sa_load_relaxed(&last_marked));
    return old;
}

/* One stop of the world: its whole length and its time to stop. */
void sa_gc_record_pause(uint64_t pause_ns, uint64_t stop_ns, uint64_t end_ns)
{
    (void)end_ns;
    pthread_mutex_lock(&stats_lock);
    hist_pause[nhist % SA_GC_PAUSE_HIST] = pause_ns;
    hist_stop[nhist % SA_GC_PAUSE_HIST] = stop_ns;
    nhist++;
    pthread_mutex_unlock(&stats_lock);
}

/* "whole.fff": x thousandths with three decimals (sa_format has no zero
 * padding). */
static const char *fmt_milli(char *buf, size_t cap, uint64_t x)
{
    size_t n = sa_format(buf, cap, "%zu.", (size_t)(x / 1000));
    unsigned f = (unsigned)(x % 1000);
    if (n + 4 <= cap) {
        buf[n] = (char)('0' + f / 100);
        buf[n + 1] = (char)('0' + f / 10 % 10);
        buf[n + 2] = (char)('0' + f % 10);
        buf[n + 3] = '\0';
    }
    return buf;
}

/* ns as milliseconds with three decimals. */
static const char *fmt_ms(char *buf, size_t cap, uint64_t ns)
{
    return fmt_milli(buf, cap, ns / 1000);
}

void sa_gc_record_cycle(const sa_gccycle *c)
{
    uint64_t stw1 = c->t_mark - c->t_start;
    uint64_t conc = c->t_markterm - c->t_mark;
    uint64_t stw2 = c->t_end - c->t_markterm;
    uint64_t pause = c->concurrent ? stw1 + stw2 : c->t_end - c->t_start;
    uint64_t now_wall = walltime();
    pthread_mutex_lock(&stats_lock);
    numgc++;
    if (c->forced)
        numforced++;
    pause_total += pause;
    pause_ring[(numgc - 1) % SA_MEMSTATS_PAUSES] = pause;
    pause_end_ring[(numgc - 1) % SA_MEMSTATS_PAUSES] = now_wall;
    last_gc_wall = now_wall;
    uint32_t n = numgc;
    pthread_mutex_unlock(&stats_lock);
    if (!sa_load_relaxed(&sa_gc_trace))
        return;
    unsigned p = nprocs();
    uint64_t elapsed = c->t_end - start_ns;
    uint64_t cpu = sa_load_relaxed(&gc_cpu_ns) + pause_total * (p - 1);
    size_t pct = elapsed ? (size_t)(cpu * 100 / (elapsed * p)) : 0;
    char a[32], b[32], d[32], e[32], f[32], g[32], at[32], line[384];
    uint64_t since = c->t_start - start_ns;
    size_t len = sa_format(
        line, sizeof line,
        "gc %zu @%ss %zu%%: %s+%s+%s ms clock, %s+0/%s/0+%s ms cpu, "
        "%zu->%zu->%zu MB, %zu MB goal, %zu MB stacks, %zu MB globals, %zu P%s\n",
        (size_t)n, fmt_milli(at, sizeof at, since / 1000000), pct,
        fmt_ms(a, sizeof a, stw1), fmt_ms(b, sizeof b, conc), fmt_ms(d, sizeof d, stw2),
        fmt_ms(e, sizeof e, stw1 * p), fmt_ms(f, sizeof f, c->cpu_mark_ns),
        fmt_ms(g, sizeof g, stw2 * p), (size_t)(c->heap0 >> 20), (size_t)(c->heap1 >> 20),
        (size_t)(c->heap2 >> 20), (size_t)(c->goal >> 20), (size_t)(c->stack_bytes >> 20),
        (size_t)(c->root_bytes >> 20), (size_t)p, c->forced ? " (forced)" : "");
    sa_os_write_stderr(line, len);
}

/* Shell sort: no allocation (libc's qsort may call malloc). */
static void sort_u64(uint64_t *v, size_t n)
{
    static const size_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t gi = 0; gi < sizeof gaps / sizeof gaps[0]; gi++) {
        size_t gap = gaps[gi];
        for (size_t i = gap; i < n; i++) {
            uint64_t x = v[i];
            size_t j = i;
            for (; j >= gap && v[j - gap] > x; j -= gap)
                v[j] = v[j - gap];
            v[j] = x;
        }
    }
}

static void percentiles(const uint64_t *src, size_t n, uint64_t *p50, uint64_t *p99,
                        uint64_t *max)
{
    static uint64_t v[SA_GC_PAUSE_HIST];
    static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;
    if (n == 0) {
        *p50 = *p99 = *max = 0;
        return;
    }
    pthread_mutex_lock(&sort_lock);
    memcpy(v, src, n * sizeof *v);
    sort_u64(v, n);
    *p50 = v[(n - 1) * 50 / 100];
    *p99 = v[(n - 1) * 99 / 100];
    *max = v[n - 1];
    pthread_mutex_unlock(&sort_lock);
}

void sa_gc_fill_memstats(sa_memstats *out)
{
    static uint64_t hp[SA_GC_PAUSE_HIST], hs[SA_GC_PAUSE_HIST];
    static pthread_mutex_t copy_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&copy_lock);
    pthread_mutex_lock(&stats_lock);
    out->num_gc = numgc;
    out->num_forced_gc = numforced;
    out->pause_total_ns = pause_total;
    out->last_gc = last_gc_wall;
    memcpy(out->pause_ns, pause_ring, sizeof pause_ring);
    memcpy(out->pause_end, pause_end_ring, sizeof pause_end_ring);
    size_t n = nhist < SA_GC_PAUSE_HIST ? (size_t)nhist : SA_GC_PAUSE_HIST;
    memcpy(hp, hist_pause, n * sizeof *hp);
    memcpy(hs, hist_stop, n * sizeof *hs);
    uint64_t total = pause_total;
    pthread_mutex_unlock(&stats_lock);
    out->next_gc = sa_load_relaxed(&sa_gc_goal);
    if (out->next_gc == UINT64_MAX)
        out->next_gc = 0;
    unsigned p = nprocs();
    uint64_t elapsed = start_ns ? sa_gc_nanotime() - start_ns : 0;
    uint64_t cpu = sa_load_relaxed(&gc_cpu_ns) + total * (p - 1);
    out->gc_cpu_fraction = elapsed ? (double)cpu / ((double)elapsed * p) : 0.0;
    sa_gc_count_objects(&out->gc_objects, &out->gc_bytes);
    percentiles(hp, n, &out->pause_p50_ns, &out->pause_p99_ns, &out->pause_max_ns);
    percentiles(hs, n, &out->stop_p50_ns, &out->stop_p99_ns, &out->stop_max_ns);
    pthread_mutex_unlock(&copy_lock);
}
