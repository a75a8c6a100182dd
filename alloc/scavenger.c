/*
 * scavenger.c — handing idle pages back to the kernel.
 *
 * Owns: the release policy, its background thread, the soft memory limit and
 * the scavenger's counters. The pages themselves are the mheap's: the
 * scavenger asks sa_mheap_scavenge to release free runs, which takes them
 * from the page allocator (oldest-idle chunk first, largest run in it, top
 * of the run first), madvises them with the mheap lock dropped, and records
 * them as released so a later allocation knows they come back zeroed
 * (MADV_DONTNEED) and counts the fault-in. Pages in use are never touched.
 *
 * Goal (in the spirit of Go's gcPaceScavenger, see docs/tuning.md): keep the
 * retained heap -- pages in spans plus free pages still backed by memory --
 * within scavenge_retain percent (default 10) of the pages in spans. What
 * exceeds the goal is released:
 *   - while the program is busy (it took pages from the page heap in the
 *     last 100 ms), at a bounded rate: about 1 ms of work per 100 ms, i.e.
 *     1% of one core, as Go's scavenger, and only from chunks that have been
 *     idle for two cycles, so pages about to be reused are left alone;
 *   - once the heap has been quiet for 100 ms, at full speed: the program is
 *     not competing for them, and this is where RSS drops after a peak;
 *   - at once, from the allocating thread, when the soft memory limit
 *     (memory_limit, sa_set_memory_limit) is crossed: down to 95% of it.
 * Before each cycle the mcentrals are asked to file the spans that other
 * threads' frees emptied (their pending stacks), so empty spans reach the
 * page heap even when no thread allocates in their class any more.
 *
 * Build-time policy (-DSPANALLOC_SCAVENGER): background (the thread above,
 * default), eager (no thread: the thread that frees pages releases the
 * excess synchronously once it is worth a madvise), off (never madvise,
 * sa_scavenge included). -DSPANALLOC_MADVISE=dontneed|free picks the advice;
 * MADV_FREE'd pages are not known zero when reused.
 *
 * The thread's life (helper.h): a helper is a thread in someone else's
 * process, so it exists only while there is something to give back. The
 * first return of pages to the page heap that leaves at least START_PAGES
 * (2 MiB) above the goal starts it (sa_scavenger_after_free, which the mheap
 * calls with no lock held); it ends after IDLE_STOP_NS with nothing left to
 * release, and at once when no program thread is left (main ended with
 * pthread_exit and the others are gone), so it never keeps a process alive
 * that glibc would end. Ending races with a free that would start it: the
 * thread clears `running` first and then looks at the heap once more, the
 * freeing thread changes the heap first and then reads `running`; one of
 * the two sees the other. A program that never frees 2 MiB more than it
 * keeps never gets a thread (it stays single-threaded: unshare(2) and
 * sandboxes that demand one thread keep working). Releasing from the
 * allocation slow paths instead, as jemalloc does without its background
 * threads, was considered and left out: the drop after a peak happens when
 * the program has gone quiet, when no slow path runs (docs/design.md).
 *
 * Locking: no lock of its own on the allocation paths; the counters are
 * atomics; `running` is claimed by CAS, so at most one thread works at a
 * time (one that is ending may still be on its way out). A forked child has
 * no thread: fork_child clears `running`.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "helper.h"
#include "internal.h"

#ifndef SA_SCAVENGER_POLICY
#define SA_SCAVENGER_POLICY SA_SCAV_BACKGROUND
#endif
#ifndef SA_MADVISE_FREE
#define SA_MADVISE_FREE 0
#endif

#define NS_PER_MS 1000000ull
#define QUIET_NS (100 * NS_PER_MS)     /* no page allocation for this long */
#define IDLE_SLEEP_NS (50 * NS_PER_MS) /* nothing to release: look again */
#define BUSY_WORK_NS (1 * NS_PER_MS)   /* work per busy cycle ... */
#define BUSY_RATIO 99                  /* ... then sleep 99x that: 1% */
#define EAGER_MIN_PAGES 16             /* eager: release runs from 128 KiB */
#define START_PAGES 256                /* background: a thread for 2 MiB over the goal */
#define IDLE_STOP_NS (500 * NS_PER_MS) /* nothing to release for this long: end */
#define RETRY_NS (1000 * NS_PER_MS)    /* after a failed pthread_create */
#define STACK_BYTES (512 * 1024)       /* exit() may run atexit handlers on it */

static int running;            /* atomic: a background thread is claimed */
static int start_wanted;       /* atomic: a free left work; see sa_scavenger_kick */
static uint64_t start_failed;  /* atomic: when pthread_create last failed */
/* Held around the background thread's reclaim (which frees emptied spans to
 * the mheap after dropping each mcentral lock), so that sa_scavenge, taking
 * it too, never releases while spans another reclaim emptied are still on
 * their way to the page heap (they would stay resident). */
static pthread_mutex_t reclaim_lock = PTHREAD_MUTEX_INITIALIZER;

static void reclaim_all(void)
{
    pthread_mutex_lock(&reclaim_lock);
    sa_mcentral_reclaim_all();
    pthread_mutex_unlock(&reclaim_lock);
}
static size_t memory_limit;     /* atomic: bytes, 0 = none */
static sa_scavstats scav_stats; /* atomics */

static void add_stat(uint64_t *p, uint64_t v)
{
    __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

int sa_scavenger_policy(void)
{
    return SA_SCAVENGER_POLICY;
}

const char *sa_scavenger_policy_name(void)
{
    switch (SA_SCAVENGER_POLICY) {
    case SA_SCAV_OFF: return "off";
    case SA_SCAV_EAGER: return "eager";
    default: return "background";
    }
}

const char *sa_madvise_name(void)
{
    return SA_MADVISE_FREE ? "free" : "dontneed";
}

void sa_scavstats_read(sa_scavstats *out)
{
    const uint64_t *s = (const uint64_t *)&scav_stats;
    uint64_t *d = (uint64_t *)out;
    for (size_t i = 0; i < sizeof *out / sizeof(uint64_t); i++)
        d[i] = sa_load_relaxed(&s[i]);
}

/* Pages retained above the goal, and above 95% of the memory limit. */
static void excess(const sa_pageheap_stats *h, size_t *goal_excess, size_t *limit_excess)
{
    size_t retained = h->pages_inuse + h->pages_free_backed;
    size_t goal = h->pages_inuse + h->pages_inuse * (size_t)sa_opts.scavenge_retain / 100;
    *goal_excess = retained > goal ? retained - goal : 0;
    *limit_excess = 0;
    size_t limit = sa_load_relaxed(&memory_limit);
    if (limit) {
        size_t target = (limit / 100 * 95) >> SA_PAGE_SHIFT;
        if (retained > target)
            *limit_excess = retained - target;
        if (*limit_excess > h->pages_free_backed)
            *limit_excess = h->pages_free_backed;
    }
}

/* Releases up to maxpages, timing the work; kind: 0 bg, 1 eager, 2 forced. */
static size_t release(size_t maxpages, uint64_t idle_epoch, int kind)
{
    uint64_t t0 = sa_os_nanotime();
    uint64_t calls = 0;
    size_t n = sa_mheap_scavenge(maxpages, idle_epoch, &calls);
    uint64_t t = sa_os_nanotime() - t0;
    uint64_t bytes = (uint64_t)n << SA_PAGE_SHIFT;
    add_stat(&scav_stats.madvise_calls, calls);
    add_stat(&scav_stats.ns, t);
    add_stat(kind == 0 ? &scav_stats.released_bg
                       : kind == 1 ? &scav_stats.released_eager : &scav_stats.released_forced,
             bytes);
    return n;
}

static void trace(uint64_t cycle, size_t bg_pages, size_t eager_pages, const char *suffix)
{
    if (!sa_opts.scavtrace)
        return;
    sa_pageheap_stats h;
    sa_mheap_stats(&h);
    size_t retained = h.pages_inuse + h.pages_free_backed;
    size_t util = retained ? h.pages_inuse * 100 / retained : 100;
    char buf[256];
    size_t n = sa_format(buf, sizeof buf - 1,
                         "scav %zu: %zu KiB work (bg), %zu KiB work (eager), %zu KiB retained, "
                         "%zu KiB released, %zu%% util, %zu us cpu%s\n",
                         (size_t)cycle, bg_pages * (SA_PAGE_SIZE / 1024),
                         eager_pages * (SA_PAGE_SIZE / 1024), retained * (SA_PAGE_SIZE / 1024),
                         h.pages_released * (SA_PAGE_SIZE / 1024), util,
                         (size_t)(sa_load_relaxed(&scav_stats.ns) / 1000), suffix);
    sa_os_write_stderr(buf, n);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Pages over the goal: is a thread worth having? */
static bool worth_a_thread(void)
{
    sa_pageheap_stats h;
    sa_mheap_stats(&h);
    size_t goal_x, limit_x;
    excess(&h, &goal_x, &limit_x);
    return goal_x >= START_PAGES;
}

/* The thread decides to end. Returns false when it must go on after all: a
 * free that saw `running` still set left work behind. */
static bool end_now(void)
{
    sa_store_sc(&running, 0);
    if (!worth_a_thread())
        return true;
    int expect = 0; /* claim it back, unless a new thread already did */
    return !__atomic_compare_exchange_n(&running, &expect, 1, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST);
}

static void *scavenger_main(void *arg)
{
    (void)arg;
    sa_helper_enter();
    sa_pageheap_stats h;
    sa_mheap_stats(&h);
    uint64_t t = sa_os_nanotime();
    uint64_t last_nallocs = h.nallocs, last_change = t, last_work = t, checked = t;
    uint64_t nap = IDLE_SLEEP_NS;
    bool orphaned = false;
    for (;;) {
        if (sa_helper_orphaned(&checked)) {
            orphaned = true; /* the process ends with us: no point releasing */
            sa_store_sc(&running, 0);
            break;
        }
        sleep_ns(nap);
        reclaim_all();
        sa_mheap_stats(&h);
        t = sa_os_nanotime();
        if (h.nallocs != last_nallocs) {
            last_nallocs = h.nallocs;
            last_change = t;
        }
        size_t goal_x, limit_x;
        excess(&h, &goal_x, &limit_x);
        size_t want = goal_x > limit_x ? goal_x : limit_x;
        uint64_t epoch = sa_mheap_next_epoch();
        add_stat(&scav_stats.cycles, 1);
        if (want == 0) {
            if (t - last_work >= IDLE_STOP_NS && end_now())
                break;
            nap = IDLE_SLEEP_NS;
            continue;
        }
        size_t done = 0;
        if (t - last_change >= QUIET_NS || limit_x) {
            done = release(want, UINT64_MAX, 0);
            nap = 10 * NS_PER_MS;
        } else {
            uint64_t t0 = sa_os_nanotime(), worked = 0;
            while (done < want && worked < BUSY_WORK_NS) {
                size_t n = release(want - done < SA_SCAV_BATCH_PAGES ? want - done
                                                                     : SA_SCAV_BATCH_PAGES,
                                   epoch >= 2 ? epoch - 2 : 0, 0);
                if (n == 0)
                    break;
                done += n;
                worked = sa_os_nanotime() - t0;
            }
            nap = worked * BUSY_RATIO;
            if (nap < 10 * NS_PER_MS)
                nap = 10 * NS_PER_MS;
        }
        if (done) {
            last_work = t;
            trace(epoch, done, 0, "");
        } else if (t - last_work >= IDLE_STOP_NS && end_now()) {
            break; /* an excess below START_PAGES that nothing could release */
        }
    }
    sa_helper_leave(SA_HELPER_SCAVENGER, orphaned);
    return NULL;
}

/* Starts the background thread unless one is running; from slow paths that
 * hold no allocator lock (pthread_create allocates, and may come back here:
 * `running` is claimed first, so that call returns at once). */
static void start_thread(void)
{
    int expect = 0;
    if (!__atomic_compare_exchange_n(&running, &expect, 1, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_RELAXED))
        return;
    uint64_t failed = sa_load_relaxed(&start_failed);
    if ((failed && sa_os_nanotime() - failed < RETRY_NS) ||
        sa_helper_start(SA_HELPER_SCAVENGER, scavenger_main, NULL, STACK_BYTES, NULL, NULL) != 0) {
        if (!failed || sa_os_nanotime() - failed >= RETRY_NS)
            sa_store_relaxed(&start_failed, sa_os_nanotime());
        sa_store_sc(&running, 0); /* try again later */
    }
}

bool sa_scavenger_running(void)
{
    return sa_load_relaxed(&running) != 0;
}

/* Called after the heap handed out pages (no allocator lock held): only
 * the soft memory limit acts here. */
void sa_scavenger_kick(void)
{
    if (SA_SCAVENGER_POLICY != SA_SCAV_BACKGROUND || !sa_load_relaxed(&start_wanted))
        return;
    sa_store_relaxed(&start_wanted, 0);
    if (!sa_load_sc(&running) && !sa_init_in_progress_here())
        start_thread();
}

void sa_scavenger_after_alloc(void)
{
    sa_scavenger_kick();
    if (SA_SCAVENGER_POLICY == SA_SCAV_OFF || !sa_load_relaxed(&memory_limit))
        return;
    sa_pageheap_stats h;
    sa_mheap_stats(&h);
    size_t goal_x, limit_x;
    excess(&h, &goal_x, &limit_x);
    if (limit_x)
        release(limit_x, UINT64_MAX, 1);
}

/* Called after pages went back to the page heap (no allocator lock held):
 * eager releases the excess here; background starts its thread when the
 * excess is worth one. */
void sa_scavenger_after_free(size_t npages)
{
    if (SA_SCAVENGER_POLICY == SA_SCAV_BACKGROUND) {
        /* Not started here: the caller may be in the middle of moving spans
         * (an mcache giving one back), and pthread_create allocates. The
         * caller's tier starts it where its state is whole
         * (sa_scavenger_kick). */
        if (!sa_load_sc(&running) && !sa_init_in_progress_here() && worth_a_thread())
            sa_store_relaxed(&start_wanted, 1);
        return;
    }
    if (SA_SCAVENGER_POLICY != SA_SCAV_EAGER)
        return;
    sa_pageheap_stats h;
    sa_mheap_stats(&h);
    size_t goal_x, limit_x;
    excess(&h, &goal_x, &limit_x);
    size_t want = goal_x > limit_x ? goal_x : limit_x;
    /* A madvise is worth it for a large run, or for a pile of small ones. */
    if (want && (npages >= EAGER_MIN_PAGES || want >= SA_SCAV_BATCH_PAGES || limit_x)) {
        size_t n = release(want, UINT64_MAX, 1);
        if (n)
            trace(sa_load_relaxed(&scav_stats.cycles), 0, n, "");
    }
}

void sa_scavenger_fork_child(void)
{
    sa_store_relaxed(&running, 0); /* the child has no scavenger thread */
    sa_store_relaxed(&start_failed, 0);
    pthread_mutex_init(&reclaim_lock, NULL); /* it may have held this */
}

/* ---- public API ------------------------------------------------------------ */

__attribute__((visibility("default"))) size_t sa_scavenge(size_t bytes)
{
    sa_ensure_init();
    if (SA_SCAVENGER_POLICY == SA_SCAV_OFF)
        return 0;
    reclaim_all();
    size_t pages = bytes == 0 ? SIZE_MAX : (bytes + SA_PAGE_SIZE - 1) >> SA_PAGE_SHIFT;
    size_t n = release(pages, UINT64_MAX, 2);
    if (n)
        trace(sa_load_relaxed(&scav_stats.cycles), n, 0, " (forced)");
    return n << SA_PAGE_SHIFT;
}

__attribute__((visibility("default"))) void sa_set_memory_limit(size_t bytes)
{
    sa_ensure_init();
    sa_store_relaxed(&memory_limit, bytes);
    if (bytes)
        sa_scavenger_after_alloc();
}

__attribute__((visibility("default"))) size_t sa_get_memory_limit(void)
{
    return sa_load_relaxed(&memory_limit);
}

void sa_scavenger_init_options(void)
{
    if (sa_opts.memory_limit)
        sa_store_relaxed(&memory_limit, sa_opts.memory_limit);
}
