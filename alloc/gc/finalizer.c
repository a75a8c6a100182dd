/*
 * finalizer.c — sa_gc_set_finalizer, the finalizer queue and its thread.
 *
 * Owns: a hash table of (object, fn, arg) for live objects, and the queue of
 * finalizers due to run.
 *
 * The rule (Go's, mfinal.go; docs/gc.md): each cycle, the contents of every
 * object that has a finalizer are marked as roots -- what it points to stays
 * alive -- but not the object itself. At mark termination an entry whose
 * object is still unmarked is moved to the queue and its object is marked
 * (resurrected until the finalizer has run; its contents are already
 * marked). So:
 *   - a finalizer runs exactly once: its entry leaves the table when queued
 *     and the queue pops under the lock;
 *   - if A points to B and both have finalizers, A's runs first and B's only
 *     in a later cycle, once A is gone (topological order along chains);
 *   - an object on a cycle that passes through itself or another finalizable
 *     object is never finalized (a leak, as in Go and Boehm's default);
 *   - the object is freed by the first cycle after its finalizer returned,
 *     unless the finalizer stored it somewhere reachable.
 * Queued and running entries are roots (object and arg), so nothing a
 * pending finalizer needs can be freed under it.
 *
 * Finalizers run outside every allocator and collector lock: on the
 * finalizer thread (started at the first queued finalizer, woken through a
 * semaphore so it never sleeps holding a lock or inside a critical section,
 * ended after a second without work or when no program thread is left)
 * or in whichever thread calls sa_gc_run_finalizers. A finalizer may
 * allocate, set finalizers and call sa_gc_collect.
 *
 * Locking: fin_lock; registered threads take it inside critical sections.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <string.h>

#include "../helper.h"
#include "gc_internal.h"

typedef struct fin_entry {
    uintptr_t obj;
    void (*fn)(void *obj, void *arg);
    void *arg;
    struct fin_entry *next;
    bool running;
} fin_entry;

#define FIN_BUCKETS 4096
static pthread_mutex_t fin_lock = PTHREAD_MUTEX_INITIALIZER;
static fin_entry *table[FIN_BUCKETS]; /* fin_lock */
static size_t ntable;                  /* fin_lock */
static fin_entry *queue, *queue_tail;  /* fin_lock: due, oldest first */
static size_t nqueued;                 /* fin_lock: not yet started */
static sa_fixalloc fin_pool = {.size = sizeof(fin_entry)}; /* fin_lock */
static sem_t fin_sem;
static bool fin_thread_started;        /* fin_lock */

static inline size_t bucket_of(uintptr_t obj)
{
    return (size_t)((obj >> 4) * 0x9e3779b97f4a7c15ull >> 52) & (FIN_BUCKETS - 1);
}

void sa_gc_fin_init(void)
{
    sem_init(&fin_sem, 0, 0);
}

void sa_gc_fin_lock(void)
{
    pthread_mutex_lock(&fin_lock);
}

void sa_gc_fin_unlock(void)
{
    pthread_mutex_unlock(&fin_lock);
}

void sa_gc_fin_fork_child(void)
{
    pthread_mutex_init(&fin_lock, NULL);
    fin_thread_started = false;
    sem_destroy(&fin_sem);
    sem_init(&fin_sem, 0, 0);
    /* A finalizer that was running in a thread that did not survive is
     * dropped from the queue in the child (it ran, or runs, in the parent). */
    fin_entry **pp = &queue;
    queue_tail = NULL;
    while (*pp) {
        if ((*pp)->running) {
            fin_entry *e = *pp;
            *pp = e->next;
            sa_fixalloc_free(&fin_pool, e);
        } else {
            queue_tail = *pp;
            pp = &(*pp)->next;
        }
    }
}

SA_API int sa_gc_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg)
{
    size_t size;
    sa_gc_init();
    if (!obj || sa_gc_object_start((uintptr_t)obj, &size) != (uintptr_t)obj)
        return -1;
    sa_gcthread *t = sa_gc_enter_self();
    pthread_mutex_lock(&fin_lock);
    size_t b = bucket_of((uintptr_t)obj);
    fin_entry **pp = &table[b];
    while (*pp && (*pp)->obj != (uintptr_t)obj)
        pp = &(*pp)->next;
    int r = 0;
    if (*pp) {
        if (fn) {
            (*pp)->fn = fn;
            (*pp)->arg = arg;
        } else {
            fin_entry *e = *pp;
            *pp = e->next;
            sa_fixalloc_free(&fin_pool, e);
            ntable--;
        }
    } else if (fn) {
        fin_entry *e = sa_fixalloc_alloc(&fin_pool);
        if (!e) {
            r = -1;
        } else {
            e->obj = (uintptr_t)obj;
            e->fn = fn;
            e->arg = arg;
            e->running = false;
            e->next = table[b];
            table[b] = e;
            ntable++;
        }
    }
    pthread_mutex_unlock(&fin_lock);
    sa_gc_leave_self(t);
    return r;
}

/* STW #1, with the other roots: queued and running finalizers' objects and
 * args. In the snapshot, because a finalizer may move its object from the
 * queue into a root range (stores there have no barrier) while the cycle
 * marks. */
void sa_gc_fin_mark_queue(sa_gcwork *w)
{
    pthread_mutex_lock(&fin_lock);
    for (fin_entry *e = queue; e; e = e->next) {
        sa_gc_shade(e->obj, w);
        sa_gc_shade((uintptr_t)e->arg, w);
    }
    pthread_mutex_unlock(&fin_lock);
}

/* Concurrent phase: what finalizable objects point to is a root (the
 * objects themselves are held by the program, hence in the snapshot, or
 * unreachable). */
void sa_gc_fin_mark_roots(sa_gcwork *w)
{
    pthread_mutex_lock(&fin_lock);
    if (ntable) {
        for (size_t b = 0; b < FIN_BUCKETS; b++) {
            for (fin_entry *e = table[b]; e; e = e->next) {
                size_t size;
                uintptr_t obj = sa_gc_object_start(e->obj, &size);
                sa_span *s = sa_span_of(e->obj);
                if (obj && !(s->spanclass & SA_SPANCLASS_NOSCAN))
                    sa_gc_scan_range(obj, obj + size, w, false);
                sa_gc_shade((uintptr_t)e->arg, w);
            }
        }
    }
    pthread_mutex_unlock(&fin_lock);
}

/* Mark termination, world stopped: queues the finalizers of unmarked
 * objects and resurrects them. Returns how many were queued. */
size_t sa_gc_fin_collect(uint64_t *bytes)
{
    size_t n = 0;
    pthread_mutex_lock(&fin_lock);
    if (ntable) {
        for (size_t b = 0; b < FIN_BUCKETS; b++) {
            fin_entry **pp = &table[b];
            while (*pp) {
                fin_entry *e = *pp;
                if (sa_gc_is_marked(e->obj)) {
                    pp = &e->next;
                    continue;
                }
                *pp = e->next;
                ntable--;
                sa_gc_set_mark(e->obj, bytes);
                e->next = NULL;
                if (queue_tail)
                    queue_tail->next = e;
                else
                    queue = e;
                queue_tail = e;
                nqueued++;
                n++;
            }
        }
    }
    pthread_mutex_unlock(&fin_lock);
    return n;
}

/* Overwrites the stack below the caller, where finalizers left the
 * addresses of the objects they were given. */
static SA_NOINLINE void clear_stack(void)
{
    volatile char buf[16384];
    memset((char *)buf, 0, sizeof buf);
    __asm__ volatile("" ::"r"(buf) : "memory");
}

#define FIN_WAIT_NS (100 * 1000000ull)       /* an idle finalizer thread looks around */
#define FIN_IDLE_STOP_NS (1000 * 1000000ull) /* ... and ends after this long idle */

/* Waits for finalizers to run. Returns false when the thread should end:
 * idle for FIN_IDLE_STOP_NS (decided under fin_lock, where the collector
 * looks whether to start one) or no program thread left (*orphaned). */
static bool fin_wait(uint64_t *idle_since, uint64_t *checked, bool *orphaned)
{
    for (;;) {
        if (sa_helper_wait(&fin_sem, FIN_WAIT_NS))
            return true;
        *orphaned = sa_helper_orphaned(checked);
        if (!*orphaned && sa_os_nanotime() - *idle_since < FIN_IDLE_STOP_NS)
            continue;
        pthread_mutex_lock(&fin_lock);
        bool end = *orphaned || nqueued == 0;
        if (end)
            fin_thread_started = false;
        pthread_mutex_unlock(&fin_lock);
        if (end)
            return false;
    }
}

/* Unregistered, so its stack is no root; a finalizer that allocates
 * registers it, and it unregisters again after the batch. A helper
 * (helper.h): started at the first finalizer due, ended when idle. */
static void *fin_thread(void *arg)
{
    (void)arg;
    sa_helper_enter();
    uint64_t idle_since = sa_os_nanotime(), checked = idle_since;
    bool orphaned = false;
    while (fin_wait(&idle_since, &checked, &orphaned)) {
        sa_gc_run_finalizers();
        if (sa_gc_self)
            sa_gc_unregister_self();
        clear_stack();
        idle_since = sa_os_nanotime();
    }
    sa_helper_leave(SA_HELPER_FINALIZER, orphaned);
    return NULL;
}

/* After a cycle (collector thread, world running): hands queued finalizers
 * to the finalizer thread. */
void sa_gc_fin_wake(void)
{
    pthread_mutex_lock(&fin_lock);
    bool due = nqueued > 0;
    bool start = due && !fin_thread_started;
    if (start)
        fin_thread_started = true;
    pthread_mutex_unlock(&fin_lock);
    if (start) {
        /* it may register (a finalizer that allocates): it must take the
         * collector's stop signals */
        sigset_t keep;
        sa_gc_stop_signals(&keep);
        if (sa_helper_start(SA_HELPER_FINALIZER, fin_thread, NULL, 0, &keep, NULL) != 0) {
            pthread_mutex_lock(&fin_lock);
            fin_thread_started = false;
            pthread_mutex_unlock(&fin_lock);
        }
    }
    if (due)
        sem_post(&fin_sem);
}

SA_API size_t sa_gc_run_finalizers(void)
{
    size_t ran = 0;
    for (;;) {
        sa_gcthread *t = sa_gc_enter_self();
        pthread_mutex_lock(&fin_lock);
        fin_entry *e = queue;
        while (e && e->running)
            e = e->next;
        if (e) {
            e->running = true;
            nqueued--;
        }
        pthread_mutex_unlock(&fin_lock);
        sa_gc_leave_self(t);
        if (!e)
            break;
        e->fn((void *)e->obj, e->arg);
        ran++;
        t = sa_gc_enter_self();
        pthread_mutex_lock(&fin_lock);
        fin_entry **pp = &queue;
        queue_tail = NULL;
        while (*pp) {
            if (*pp == e) {
                *pp = e->next;
                continue;
            }
            queue_tail = *pp;
            pp = &(*pp)->next;
        }
        sa_fixalloc_free(&fin_pool, e);
        pthread_mutex_unlock(&fin_lock);
        sa_gc_leave_self(t);
    }
    return ran;
}
