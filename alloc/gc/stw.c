/*
 * stw.c — registered threads, critical sections, and stopping the world.
 *
 * Owns: the list of registered threads (sa_gcthread), the suspend and
 * restart signal handlers, and the stop generation.
 *
 * Stopping (Boehm's scheme, see docs/gc.md): the collector thread, holding
 * the threads lock, makes stop_gen odd and sends SIG_SUSPEND (SIGPWR) to each
 * registered thread. The handler spills the callee-saved registers
 * (__builtin_unwind_init; the interrupted context itself is in the signal
 * frame on the same stack), records its stack pointer, counts an
 * acknowledgement (atomic add) and waits in sigsuspend until stop_gen
 * changes; the collector spins until it has one acknowledgement per
 * signalled thread, then scans
 * [stop_sp, stack_hi) of each. Starting makes stop_gen even and sends
 * SIG_RESTART (SIGXCPU), which the suspended threads leave unblocked only
 * inside sigsuspend, so a restart that arrives early stays pending.
 * Time-to-stop (signals out to the last acknowledgement) is measured apart
 * from the pause.
 *
 * Critical sections: a thread inside sa_gc_enter/sa_gc_leave (allocating,
 * running the barrier, touching collector lists) is never stopped there: the
 * handler only sets stop_pending, and sa_gc_leave stops the thread when it
 * leaves the outermost section. So a stopped thread never holds a collector
 * lock and is never half-way through an allocation or a barrier.
 *
 * Safepoints: leaving the outermost critical section also checks whether
 * stop_gen is odd and stops there if so. A thread that allocates or stores
 * pointers in a loop thus stops within nanoseconds of the request instead of
 * after the signal's delivery (an IPI and a kernel entry: ~25 us here, most
 * of the pause); the signal still reaches threads that are blocked or
 * computing. Each thread acknowledges a stop generation once (acked_gen), so
 * the signal that arrives after the thread stopped at a safepoint is a no-op.
 *
 * Parking (Go's threads in system calls): a thread that blocks waiting for
 * the collector (sa_gc_collect, an allocation past the hard goal) records
 * its stack pointer and publishes park = 1 first. A stop claims it with a
 * compare-and-swap (1 -> 2) and scans it without a signal; the thread, woken,
 * can only unpark (1 -> 0) once the world has been started again and the
 * claim released (2 -> 1). Signalling a blocked thread would cost the stop
 * the spin, the system call and the wake-up.
 *
 * Locking: threads_lock guards the list. The collector holds it from before
 * the stop until after the start, so the list cannot change while stopped.
 * A registered thread that needs it (unregistering) spins on trylock so it
 * stays stoppable while it waits; an unregistered thread registering simply
 * blocks (nobody signals it yet).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "gc_internal.h"

#ifdef SA_GC_HAVE_MEMCHECK
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND RUNNING_ON_VALGRIND
#else
#define UNDER_VALGRIND 0
#endif

#define SIG_SUSPEND SIGPWR
#define SIG_RESTART SIGXCPU

SA_HIDDEN __thread sa_gcthread *sa_gc_self;

static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static sa_gcthread *threads;     /* threads_lock */
static size_t nthreads;          /* threads_lock */
static sa_fixalloc thread_pool = {.size = sizeof(sa_gcthread)}; /* threads_lock */
static uint64_t nacks;           /* atomic: acknowledgements, ever */
SA_HIDDEN uint64_t sa_gc_stop_gen; /* atomic: odd while the world is stopped */
#define stop_gen sa_gc_stop_gen
static pthread_key_t exit_key;

/* The stack pointer of the calling frame: inlined, so the frame it
 * describes is still live (memcheck rejects reads below the stack pointer).
 * Everything the frame spilled lies at or above it. */
static inline __attribute__((always_inline)) uintptr_t current_sp(void)
{
#if defined(__x86_64__)
    uintptr_t sp;
    __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
    return sp;
#elif defined(__aarch64__)
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
#else
    volatile uintptr_t here = 0;
    return (uintptr_t)&here;
#endif
}

/* Acknowledges a stop and waits for the restart. Signals SIG_SUSPEND and
 * SIG_RESTART are blocked by the caller. */
static SA_NOINLINE void stop_here(sa_gcthread *t)
{
    __builtin_unwind_init(); /* callee-saved registers into this frame */
    uint64_t gen = sa_load_sc(&stop_gen);
    /* A signal that arrives after the thread stopped at a safepoint (or
     * after the world restarted) finds nothing to do. */
    if (!(gen & 1) || sa_load_relaxed(&t->acked_gen) == gen)
        return;
    t->stop_sp = current_sp();
    sa_store_relaxed(&t->acked_gen, gen);
    sigset_t m;
    pthread_sigmask(SIG_SETMASK, NULL, &m);
    sigaddset(&m, SIG_SUSPEND);
    sigdelset(&m, SIG_RESTART);
    __atomic_fetch_add(&nacks, 1, __ATOMIC_SEQ_CST);
    while (sa_load_sc(&stop_gen) == gen)
        sigsuspend(&m);
    __asm__ volatile("" ::: "memory");
}

static void suspend_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    int saved = errno;
    sa_gcthread *t = sa_gc_self;
    if (t && t->registered) {
        if (t->incrit)
            t->stop_pending = 1;
        else
            stop_here(t);
    }
    errno = saved;
}

static void restart_handler(int sig)
{
    (void)sig;
}

void sa_gc_stop_deferred(sa_gcthread *t)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIG_SUSPEND);
    sigaddset(&block, SIG_RESTART);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    t->stop_pending = 0;
    stop_here(t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void link_main_thread(void);
static sa_gcthread main_rec;
static bool main_gone; /* threads_lock: the main thread ended (pthread_exit) */

static void thread_exit(void *arg)
{
    sa_gcthread *t = arg;
    if (t == &main_rec) {
        pthread_mutex_lock(&threads_lock);
        main_gone = true; /* never linked from now on */
        pthread_mutex_unlock(&threads_lock);
    }
    if (t && sa_gc_self == t)
        sa_gc_unregister_self();
}

static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void create_exit_key(void)
{
    if (pthread_key_create(&exit_key, thread_exit) != 0)
        sa_report_fatal("gc: cannot create the thread-exit key");
}

void sa_gc_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIG_SUSPEND);
    sigaddset(set, SIG_RESTART);
}

void sa_gc_stw_init(void)
{
    pthread_once(&exit_key_once, create_exit_key);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = suspend_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIG_RESTART); /* only sigsuspend lets it in */
    if (sigaction(SIG_SUSPEND, &sa, NULL) != 0)
        sa_report_fatal("gc: cannot install the suspend handler");
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = restart_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIG_RESTART, &sa, NULL) != 0)
        sa_report_fatal("gc: cannot install the restart handler");
    link_main_thread();
}

static uintptr_t stack_top(void)
{
    pthread_attr_t a;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &addr, &size);
        pthread_attr_destroy(&a);
    }
    if (!addr) /* no way to know: scan a generous window above us */
        return current_sp() + ((size_t)1 << 20);
    return (uintptr_t)addr + size;
}

/* The main thread's record: noted by the load-time constructor (no signal
 * handler, no thread) and linked into the list by the collector's
 * initialisation, so the main thread is registered without a program that
 * never uses the collector paying for it. Never freed. Its thread-exit key
 * is set here, on the main thread itself: a main that ends with
 * pthread_exit leaves the list like any thread (a stop would otherwise
 * signal its zombie and wait for an acknowledgement forever). */
void sa_gc_note_main_thread(void)
{
    main_rec.tid = pthread_self();
    main_rec.stack_hi = stack_top();
    main_rec.explicit_reg = true;
    sa_gc_self = &main_rec;
    pthread_once(&exit_key_once, create_exit_key);
    pthread_setspecific(exit_key, &main_rec);
}

static void link_thread(sa_gcthread *t)
{
    t->prev = NULL;
    t->next = threads;
    if (threads)
        threads->prev = t;
    threads = t;
    nthreads++;
    t->registered = true;
}

/* From the collector's initialisation, after the handlers are installed. */
static void link_main_thread(void)
{
    if (!main_rec.tid)
        return;
    pthread_mutex_lock(&threads_lock);
    if (!main_rec.registered && !main_gone)
        link_thread(&main_rec);
    pthread_mutex_unlock(&threads_lock);
}

static void free_thread(sa_gcthread *t)
{
    if (t != &main_rec)
        sa_fixalloc_free(&thread_pool, t);
}

int sa_gc_register_self(bool explicit_reg)
{
    sa_gcthread *t = sa_gc_self;
    if (t && t->registered) {
        t->explicit_reg |= explicit_reg;
        return 0;
    }
    uintptr_t hi = stack_top();
    pthread_mutex_lock(&threads_lock);
    t = sa_fixalloc_alloc(&thread_pool);
    if (!t) {
        pthread_mutex_unlock(&threads_lock);
        return -1;
    }
    memset(t, 0, sizeof *t);
    t->tid = pthread_self();
    t->stack_hi = hi;
    t->explicit_reg = explicit_reg;
    sa_gc_self = t; /* before it can be signalled */
    link_thread(t);
    pthread_mutex_unlock(&threads_lock);
    pthread_setspecific(exit_key, t);
    return 0;
}

static void unlink_thread(sa_gcthread *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
    nthreads--;
    t->registered = false;
}

void sa_gc_unregister_self(void)
{
    sa_gcthread *t = sa_gc_self;
    if (!t || !t->registered)
        return;
    /* Give back the cached spans and the barrier buffer while still
     * registered (critical section: takes collector locks). */
    sa_gc_enter(t);
    sa_gc_flush_cache(t);
    sa_gc_release_thread_buf(t);
    sa_gc_leave(t);
    /* Its counts join the exited threads' in the same step as it leaves
     * the list (both under the threads lock: readers see one or the other). */
    sa_gc_threads_lock_stoppable();
    sa_gc_enter(t);
    sa_gc_heap_lock();
    sa_gc_exited_nalloc += t->nalloc;
    sa_gc_exited_nalloc_bytes += t->nalloc_bytes;
    sa_gc_heap_unlock();
    sa_gc_leave(t);
    unlink_thread(t);
    sa_gc_self = NULL;
    free_thread(t);
    pthread_mutex_unlock(&threads_lock);
    pthread_setspecific(exit_key, NULL);
}

sa_gcthread *sa_gc_thread_attach(void)
{
    sa_gc_init();
    if (sa_gc_register_self(false) != 0)
        return NULL;
    return sa_gc_self;
}

/* For the entry points that take collector locks: a registered caller
 * enters a critical section; an unregistered one needs none (it is never
 * stopped) and is not registered by this: registering would make its stack
 * a root for good (the finalizer thread's stale words would retain
 * objects). Returns the thread to pass to sa_gc_leave_self, or NULL. */
sa_gcthread *sa_gc_enter_self(void)
{
    sa_gc_init();
    sa_gcthread *t = sa_gc_self;
    if (!t || !t->registered)
        return NULL;
    sa_gc_enter(t);
    return t;
}

void sa_gc_leave_self(sa_gcthread *t)
{
    if (t)
        sa_gc_leave(t);
}

void sa_gc_threads_lock(void)
{
    pthread_mutex_lock(&threads_lock);
}

/* For a registered thread: waits for the lock the collector holds across a
 * stop without blocking the stop (the signal is handled while spinning). */
void sa_gc_threads_lock_stoppable(void)
{
    while (pthread_mutex_trylock(&threads_lock) != 0)
        sched_yield();
}

void sa_gc_threads_unlock(void)
{
    pthread_mutex_unlock(&threads_lock);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits for the acknowledgements: a short spin, then sched_yield, then
 * sleeps. Sleeping on a semaphore instead (a futex wake-up per
 * acknowledgement) was tens of microseconds per stop, most of the pause; a
 * long spin starves the very thread it waits for when both share a CPU
 * (seen as 3-4 ms stops, a scheduler tick, on a loaded 2-CPU machine).
 * Under valgrind, which runs one thread at a time, it yields at once. */
static void wait_acks(uint64_t want)
{
    unsigned spin = UNDER_VALGRIND ? 0 : 2000;
    for (unsigned i = 0; sa_load_sc(&nacks) < want; i++) {
        if (i < spin) {
            cpu_relax();
        } else if (i < spin + 20000) {
            sched_yield();
        } else {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
}

/* Signals go only to the threads that did not stop at a safepoint within
 * SAFEPOINT_NS: a signal costs the collector a system call per thread and
 * the thread an interrupt. Each thread acknowledges once per generation, so
 * it is counted once, either as already stopped or as signalled. */
#define SAFEPOINT_NS 20000

uint64_t sa_gc_stop_world(void)
{
    uint64_t t0 = sa_gc_nanotime();
    uint64_t base = sa_load_sc(&nacks);
    uint64_t gen = sa_load_sc(&stop_gen) + 1;
    sa_store_sc(&stop_gen, gen);
    /* Parked threads are claimed: they stay stopped without a signal. */
    size_t claimed = 0;
    for (sa_gcthread *t = threads; t; t = t->next) {
        int one = 1;
        if (__atomic_compare_exchange_n(&t->park, &one, 2, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            claimed++;
    }
    if (!UNDER_VALGRIND)
        for (unsigned i = 0; sa_load_sc(&nacks) - base < nthreads - claimed; i++) {
            if (i < 500)
                cpu_relax();
            else
                sched_yield();
            if ((i & 15) == 15 && sa_gc_nanotime() - t0 > SAFEPOINT_NS)
                break;
        }
    size_t n = 0;
    for (sa_gcthread *t = threads; t; t = t->next) {
        if (sa_load_relaxed(&t->park) == 2)
            continue;
        if (sa_load_sc(&t->acked_gen) == gen || pthread_kill(t->tid, SIG_SUSPEND) == 0)
            n++;
    }
    wait_acks(base + n);
    return sa_gc_nanotime() - t0;
}

/* Returns when the world was released: a pause ends there. Sending the
 * restart signals can wake a thread onto this CPU and preempt the
 * collector, which would otherwise count the thread's running time as
 * pause (seen as 2-4 ms "pauses" whose stop and scan took 25 us). */
uint64_t sa_gc_start_world(void)
{
    sa_store_sc(&stop_gen, sa_load_sc(&stop_gen) + 1);
    uint64_t released = sa_gc_nanotime();
    for (sa_gcthread *t = threads; t; t = t->next) {
        if (sa_load_relaxed(&t->park) == 2)
            sa_store_sc(&t->park, 1); /* release the claim */
        else
            pthread_kill(t->tid, SIG_RESTART);
    }
    return released;
}

/* A parked thread's stack is scanned from stop_sp, recorded here with the
 * callee-saved registers spilled into this frame, which stays live while
 * the thread blocks below it. Unparking waits while a stop has claimed it. */
SA_NOINLINE void sa_gc_park_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    sa_gcthread *t = sa_gc_self;
    if (!t || !t->registered || t->incrit) {
        pthread_cond_wait(c, m);
        return;
    }
    __builtin_unwind_init();
    t->stop_sp = current_sp();
    sa_store_sc(&t->park, 1);
    pthread_cond_wait(c, m);
    for (;;) {
        int one = 1;
        if (__atomic_compare_exchange_n(&t->park, &one, 0, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            break;
        struct timespec ts = {0, 1000};
        nanosleep(&ts, NULL);
    }
    __asm__ volatile("" ::: "memory");
}

void sa_gc_each_thread(void (*fn)(sa_gcthread *, void *), void *arg)
{
    for (sa_gcthread *t = threads; t; t = t->next)
        fn(t, arg);
}

size_t sa_gc_nthreads(void)
{
    return nthreads;
}

/* Fork child: only the forking thread survived. dead() gets each other
 * thread's record before it is dropped. */
void sa_gc_threads_fork_child(void (*dead)(sa_gcthread *))
{
    pthread_mutex_init(&threads_lock, NULL);
    sa_gcthread *t = threads;
    while (t) {
        sa_gcthread *next = t->next;
        if (t != sa_gc_self) {
            dead(t);
            unlink_thread(t);
            free_thread(t);
        } else {
            t->tid = pthread_self();
            t->park = 0;
        }
        t = next;
    }
}
