/*
 * gc.c — the collector thread, one cycle from start to end, the public
 * entry points, options and fork.
 *
 * A cycle (Go's phases, mgc.go; docs/gc.md):
 *   0. finish sweeping the previous cycle (world running);
 *   1. STW #1: stop the registered threads; turn on allocate-black (and the
 *      barrier in concurrent mode); shade the root ranges and every stack.
 *      In gc_mode=stw the whole mark happens here, inside the pause.
 *   2. concurrent mark (gc_mode=concurrent): start the world; shade what
 *      finalizable objects point to; drain the grey queue while the program
 *      runs, its barrier feeding per-thread buffers;
 *   3. STW #2, mark termination: stop again and take the threads' barrier
 *      buffers; if they hold any work, start the world, drain, and try
 *      again (at most 3 times; then drain inside the pause). Then queue the
 *      finalizers of unmarked objects, turn marking off, flush every thread's
 *      allocation cache, make every span unswept, and set the next goal;
 *   4. start the world; sweeping happens lazily in allocating threads and in
 *      this thread between cycles.
 *
 * Threads: the collector is one thread of its own (a helper, helper.h),
 * started by the first sa_gc_* call that needs it (never at load), again
 * after it ended, and lazily in a forked child. It ends, with its marker,
 * after IDLE_STOP_NS without a request or a span to sweep, and at once when
 * no program thread is left, so a main that ends with pthread_exit ends the
 * process as under glibc. It decides to end under ctl_lock, and whoever
 * posts a request it must serve either does so under ctl_lock and starts a
 * new collector when none is claimed (sa_gc_collect, sa_gc_wait_cycle), or
 * is an allocation that checks for one once it left its critical section
 * (sa_gc_alloc). It is never registered, so it is never stopped. While the
 * world is stopped it takes only the locks that registered threads hold
 * inside critical sections (gc heap, roots, finalizer, work buffers), never
 * an allocator lock, never ctl_lock or stats locks (a stopped thread may
 * hold those).
 *
 * Locking: cycle_lock is held for a whole cycle (fork waits on it);
 * ctl_lock guards the cycle counters and done_cond. Threads that wait for a
 * cycle hold ctl_lock outside critical sections, so they may be stopped
 * holding it: nothing inside a critical section takes it (requests are an
 * atomic flag and a semaphore post) and the collector never takes it while
 * the world is stopped.
 *
 * Fork: the prepare handler takes cycle_lock first, so a fork waits for the
 * running cycle (if any) to end and the child never inherits a half-marked
 * heap; then every collector lock in the documented order. It is
 * registered after the allocator's handlers, so it runs before them
 * (prepare handlers run in reverse order) and a cycle that frees spans
 * never waits for an allocator lock the forking thread already holds. The
 * child keeps only the forking thread; the other threads' cached spans go
 * back to the lists; the collector and finalizer threads restart on demand.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../helper.h"
#include "gc_internal.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t cycle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t collector_sem;    /* the collector waits for requests on it */
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;  /* waiters for cycles */
static int requested;          /* atomic: set without a lock (see sa_gc_request) */
static int forced_requested;   /* ctl_lock */
static int cycle_active;       /* atomic; ctl_lock to set */
static uint64_t cycles_started, cycles_done, cycles_swept; /* ctl_lock */
static int collector_started;  /* atomic */
static bool ready;

static void *collector_main(void *arg);

#define WAIT_NS (100 * 1000000ull)       /* an idle collector looks around this often */
#define IDLE_STOP_NS (1000 * 1000000ull) /* ... and ends after this long idle */

/* ctl_lock held. */
static void start_collector_locked(void)
{
    if (collector_started)
        return;
    if (sa_helper_start(SA_HELPER_COLLECTOR, collector_main, NULL, 0, NULL, NULL) == 0)
        sa_store_release(&collector_started, 1);
}

static void start_collector(void)
{
    pthread_mutex_lock(&ctl_lock);
    start_collector_locked();
    pthread_mutex_unlock(&ctl_lock);
}

static inline void ensure_collector(void)
{
    if (SA_UNLIKELY(!sa_load_acquire(&collector_started)))
        start_collector();
}

static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

static void do_init(void)
{
    sa_ensure_init();
    sem_init(&collector_sem, 0, 0);
    sa_gc_stw_init();
    sa_gc_fin_init();
    sa_gc_pacer_commit(0);
    /* After the allocator's handlers (sa_ensure_init registered them), so
     * ours run first in prepare. */
    if (pthread_atfork(fork_prepare, fork_parent, fork_child) != 0)
        sa_report_fatal("gc: cannot register the fork handlers");
    ready = true;
}

void sa_gc_init(void)
{
    pthread_once(&init_once, do_init);
}

/* The main thread is registered automatically: noted at load, linked when
 * the collector is first used (no handlers or threads before that). */
__attribute__((constructor)) static void gc_note_main(void)
{
    if (getpid() == (pid_t)syscall(SYS_gettid))
        sa_gc_note_main_thread();
}

/* ---- requests and waiting ---------------------------------------------------- */

/* Called inside critical sections, so it takes no lock: a thread stopped
 * outside one may hold ctl_lock (waiting for a cycle), and a thread that
 * blocked on it inside one would never acknowledge the stop. */
static void post_request(void)
{
    int zero = 0;
    if (__atomic_compare_exchange_n(&requested, &zero, 1, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST))
        sem_post(&collector_sem);
}

void sa_gc_request(void)
{
    if (sa_load_relaxed(&requested) || sa_load_relaxed(&cycle_active) ||
        sa_load_relaxed(&sa_gc_trigger) == UINT64_MAX)
        return;
    post_request();
}

void sa_gc_wait_cycle(void)
{
    ensure_collector();
    pthread_mutex_lock(&ctl_lock);
    if (!cycle_active && !requested) {
        if (sa_load_relaxed(&sa_gc_heap_live) < sa_load_relaxed(&sa_gc_hard_goal)) {
            pthread_mutex_unlock(&ctl_lock);
            return;
        }
        post_request();
    }
    start_collector_locked(); /* it may have ended since ensure_collector */
    uint64_t target = cycle_active ? cycles_started : cycles_started + 1;
    while (cycles_done < target)
        sa_gc_park_wait(&done_cond, &ctl_lock);
    pthread_mutex_unlock(&ctl_lock);
}

/* ---- one cycle ------------------------------------------------------------------- */

typedef struct term_sum {
    uint64_t bytes;
} term_sum;

static void end_thread_cycle(sa_gcthread *t, void *arg)
{
    term_sum *s = arg;
    sa_gc_flush_cache(t); /* first: takes back black windows' unused slots */
    s->bytes += t->black_bytes + t->shade_bytes;
    t->black_bytes = t->shade_bytes = 0;
}

static void run_cycle(void)
{
    sa_gccycle c;
    memset(&c, 0, sizeof c);
    pthread_mutex_lock(&cycle_lock);
    uint64_t cpu0 = sa_gc_thread_cputime();
    while (sa_gc_sweep_one())
        ;
    pthread_mutex_lock(&ctl_lock);
    c.forced = forced_requested != 0;
    forced_requested = 0;
    sa_store_relaxed(&requested, 0);
    sa_store_relaxed(&cycle_active, 1);
    cycles_swept = cycles_done;
    cycles_started++;
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&ctl_lock);

    bool concurrent = sa_load_relaxed(&sa_gc_concurrent) != 0;
    c.concurrent = concurrent;
    c.goal = sa_load_relaxed(&sa_gc_goal);
    sa_gcwork w;
    memset(&w, 0, sizeof w);

    /* STW #1 */
    c.t_start = sa_gc_nanotime();
    c.heap0 = sa_load_relaxed(&sa_gc_heap_live);
    sa_gc_threads_lock();
    c.stop1_ns = sa_gc_stop_world();
    sa_store_relaxed(&sa_gc_phase, SA_GC_MARK);
    sa_store_relaxed(&sa_gc_wb_on, concurrent ? 1 : 0);
    sa_gc_scan_roots(&w, &c.root_bytes);
    sa_gc_scan_stacks(&w, &c.stack_bytes);
    sa_gc_fin_mark_queue(&w);
    c.t_mark = sa_gc_nanotime();
    if (!concurrent) {
        sa_gc_fin_mark_roots(&w);
        sa_gc_drain_parallel(&w);
        c.t_markterm = sa_gc_nanotime();
    } else {
        c.t_mark = sa_gc_start_world();
        sa_gc_threads_unlock();
        sa_gc_record_pause(c.t_mark - c.t_start, c.stop1_ns, c.t_mark);
        uint64_t mcpu0 = sa_gc_thread_cputime();
        sa_gc_set_sharing(true); /* assists take work from the global list */
        sa_gc_fin_mark_roots(&w);
        sa_gc_drain(&w);
        sa_gc_set_sharing(false); /* no more assists: head for termination */
        sa_gc_drain(&w);    /* what assists handed back meanwhile */
        for (int attempt = 0;; attempt++) {
            uint64_t t0 = sa_gc_nanotime();
            sa_gc_threads_lock();
            uint64_t stop = sa_gc_stop_world();
            size_t n = sa_gc_take_thread_bufs();
            c.t_markterm = t0;
            c.stop2_ns = stop;
            /* Buffers threads handed over after the drain ended count too. */
            if ((n == 0 && sa_gc_work_empty()) || attempt >= 3) {
                sa_gc_drain(&w);
                break;
            }
            /* Grey work left (its subgraphs may be large): let the program
             * run while it drains, then try again. */
            uint64_t t1 = sa_gc_start_world();
            sa_gc_threads_unlock();
            sa_gc_record_pause(t1 - t0, stop, t1);
            sa_gc_drain(&w);
        }
        c.cpu_mark_ns = sa_gc_thread_cputime() - mcpu0;
    }

    /* Mark termination, world stopped. */
    uint64_t fin_bytes = 0;
    sa_gc_fin_collect(&fin_bytes);
    sa_store_relaxed(&sa_gc_phase, SA_GC_OFF);
    sa_store_relaxed(&sa_gc_wb_on, 0);
    term_sum ts = {0};
    c.heap1 = sa_load_relaxed(&sa_gc_heap_live);
    sa_gc_each_thread(end_thread_cycle, &ts);
    uint64_t marked = w.marked_bytes + fin_bytes + ts.bytes;
    c.heap2 = marked;
    sa_gc_work_flush(&w);
    sa_gc_flip_sweep();
    sa_store_relaxed(&sa_gc_heap_live, marked);
    sa_gc_pacer_commit(marked);
    c.t_end = sa_gc_start_world();
    sa_gc_threads_unlock();
    if (concurrent)
        sa_gc_record_pause(c.t_end - c.t_markterm, c.stop2_ns, c.t_end);
    else
        sa_gc_record_pause(c.t_end - c.t_start, c.stop1_ns, c.t_end);
    if (!concurrent)
        c.cpu_mark_ns = c.t_markterm - c.t_mark;

    pthread_mutex_lock(&ctl_lock);
    cycles_done++;
    sa_store_relaxed(&cycle_active, 0);
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&ctl_lock);
    sa_gc_record_cycle(&c);
    sa_gc_fin_wake();
    if (c.forced) {
        while (sa_gc_sweep_one())
            ;
        pthread_mutex_lock(&ctl_lock);
        cycles_swept = cycles_done;
        pthread_cond_broadcast(&done_cond);
        pthread_mutex_unlock(&ctl_lock);
    }
    sa_gc_add_cpu(sa_gc_thread_cputime() - cpu0);
    pthread_mutex_unlock(&cycle_lock);
}

/* Waits for a request or a span to sweep. Returns false when the collector
 * should end: idle for IDLE_STOP_NS, or no program thread left (*orphaned). */
static bool wait_for_work(uint64_t *idle_since, uint64_t *checked, bool *orphaned)
{
    while (!sa_load_sc(&requested) && !sa_gc_sweep_pending()) {
        if (sa_helper_wait(&collector_sem, WAIT_NS))
            continue;
        *orphaned = sa_helper_orphaned(checked);
        if (*orphaned || sa_os_nanotime() - *idle_since >= IDLE_STOP_NS) {
            /* Decided under ctl_lock: a waiter that posts under it after
             * this sees collector_started clear and starts another. */
            sa_gc_stop_helper();
            pthread_mutex_lock(&ctl_lock);
            bool idle = !sa_load_sc(&requested) && !sa_gc_sweep_pending();
            if (idle || *orphaned)
                sa_store_release(&collector_started, 0);
            pthread_mutex_unlock(&ctl_lock);
            if (idle || *orphaned)
                return false;
            sa_gc_start_helper();
        }
    }
    return true;
}

static void *collector_main(void *arg)
{
    (void)arg;
    sa_helper_enter();
    sa_gc_start_helper();
    uint64_t idle_since = sa_os_nanotime(), checked = idle_since;
    bool orphaned = false;
    while (wait_for_work(&idle_since, &checked, &orphaned)) {
        if (sa_load_sc(&requested)) {
            /* A request raced with the end of the previous cycle: drop it
             * unless forced or still due. */
            pthread_mutex_lock(&ctl_lock);
            bool due = forced_requested ||
                       sa_load_relaxed(&sa_gc_heap_live) >= sa_load_relaxed(&sa_gc_trigger);
            if (!due)
                sa_store_sc(&requested, 0);
            pthread_mutex_unlock(&ctl_lock);
            if (due)
                run_cycle();
        } else {
            /* Background sweep, a batch at a time, so a request is seen soon. */
            uint64_t cpu0 = sa_gc_thread_cputime();
            for (int i = 0; i < 32 && sa_gc_sweep_one(); i++)
                ;
            sa_gc_add_cpu(sa_gc_thread_cputime() - cpu0);
            if (!sa_gc_sweep_pending()) {
                pthread_mutex_lock(&ctl_lock);
                cycles_swept = cycles_done;
                pthread_cond_broadcast(&done_cond);
                pthread_mutex_unlock(&ctl_lock);
            }
        }
        idle_since = sa_os_nanotime();
    }
    sa_helper_leave(SA_HELPER_COLLECTOR, orphaned);
    return NULL;
}

/* ---- public API --------------------------------------------------------------------- */

SA_API void *sa_gc_alloc(size_t size, unsigned flags)
{
    sa_gcthread *t = sa_gc_self;
    if (SA_UNLIKELY(!t || !t->registered)) {
        t = sa_gc_thread_attach();
        if (!t) {
            errno = ENOMEM;
            return NULL;
        }
    }
    if (SA_UNLIKELY(size > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    if (SA_UNLIKELY(sa_load_relaxed(&sa_gc_heap_live) >= sa_load_relaxed(&sa_gc_hard_goal)))
        sa_gc_wait_cycle();
    void *p = sa_gc_heap_alloc(t, size, (flags & SA_GC_NOSCAN) != 0);
    /* Started by the first allocation; and the allocation may have posted a
     * request to a collector that ended meanwhile: the request stays set for
     * the one started here. */
    ensure_collector();
    if (!p)
        errno = ENOMEM;
    return p;
}

SA_API void sa_gc_collect(void)
{
    sa_gc_init();
    ensure_collector();
    pthread_mutex_lock(&ctl_lock);
    forced_requested = 1;
    sa_store_sc(&requested, 0);
    post_request();
    start_collector_locked(); /* it may have ended since ensure_collector */
    uint64_t target = cycles_started + 1;
    while (cycles_swept < target)
        sa_gc_park_wait(&done_cond, &ctl_lock);
    pthread_mutex_unlock(&ctl_lock);
}

SA_API int sa_gc_register_thread(void)
{
    sa_gc_init();
    return sa_gc_register_self(true);
}

SA_API void sa_gc_unregister_thread(void)
{
    sa_gc_unregister_self();
}

SA_API void *sa_gc_base(void *p)
{
    size_t size;
    return (void *)sa_gc_object_start((uintptr_t)p, &size);
}

SA_API size_t sa_gc_size(void *p)
{
    size_t size = 0;
    return sa_gc_object_start((uintptr_t)p, &size) ? size : 0;
}

/* ---- options (SPANALLOC=gc_percent=...,gctrace=1,gc_mode=stw,gc_markers=1) ------- */

static bool key_is(const char *key, size_t klen, const char *name)
{
    return strlen(name) == klen && memcmp(key, name, klen) == 0;
}

int sa_gc_option(const char *key, size_t klen, const char *val, size_t vlen)
{
    if (key_is(key, klen, "gc_percent")) {
        if (vlen == 3 && memcmp(val, "off", 3) == 0) {
            sa_store_relaxed(&sa_gc_percent, -1);
        } else {
            int x = 0;
            if (vlen == 0 || vlen > 6)
                return -1;
            for (size_t i = 0; i < vlen; i++) {
                if (val[i] < '0' || val[i] > '9')
                    return -1;
                x = x * 10 + (val[i] - '0');
            }
            sa_store_relaxed(&sa_gc_percent, x);
        }
        if (ready)
            sa_gc_set_percent(sa_load_relaxed(&sa_gc_percent));
        return 0;
    }
    if (key_is(key, klen, "gctrace")) {
        if (vlen != 1 || (val[0] != '0' && val[0] != '1'))
            return -1;
        sa_store_relaxed(&sa_gc_trace, val[0] - '0');
        return 0;
    }
    if (key_is(key, klen, "gc_markers")) {
        if (vlen != 1 || (val[0] != '1' && val[0] != '2'))
            return -1;
        sa_store_relaxed(&sa_gc_markers, val[0] - '0');
        return 0;
    }
    if (key_is(key, klen, "gc_mode")) {
        if (vlen == 3 && memcmp(val, "stw", 3) == 0)
            sa_store_relaxed(&sa_gc_concurrent, 0);
        else if (vlen == 10 && memcmp(val, "concurrent", 10) == 0)
            sa_store_relaxed(&sa_gc_concurrent, 1);
        else
            return -1;
        if (ready)
            sa_gc_set_percent(sa_load_relaxed(&sa_gc_percent));
        return 0;
    }
    return -2;
}

/* ---- fork ----------------------------------------------------------------------------- */

static void fork_prepare(void)
{
    pthread_mutex_lock(&cycle_lock);
    pthread_mutex_lock(&ctl_lock);
    sa_gc_threads_lock();
    sa_gc_heap_lock();
    sa_gc_roots_lock();
    sa_gc_fin_lock();
    sa_gc_wbuf_lock();
}

static void fork_parent(void)
{
    sa_gc_wbuf_unlock();
    sa_gc_fin_unlock();
    sa_gc_roots_unlock();
    sa_gc_heap_unlock();
    sa_gc_threads_unlock();
    pthread_mutex_unlock(&ctl_lock);
    pthread_mutex_unlock(&cycle_lock);
}

static void fork_child(void)
{
    pthread_mutex_init(&cycle_lock, NULL);
    pthread_mutex_init(&ctl_lock, NULL);
    sem_destroy(&collector_sem);
    sem_init(&collector_sem, 0, 0);
    pthread_cond_init(&done_cond, NULL);
    sa_gc_wbuf_fork_child();
    sa_gc_fin_fork_child();
    sa_gc_roots_fork_child();
    sa_gc_heap_fork_child();
    sa_gc_threads_fork_child(sa_gc_heap_fork_dead_thread);
    sa_gc_mark_reset();
    sa_gc_helper_fork_child();
    collector_started = 0;
    requested = 0;
    cycle_active = 0;
}
